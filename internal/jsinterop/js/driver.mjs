// driver.mjs is the independent pkarr implementation the Go tests talk to:
// pkarr's JS package (1.3.0: signed packets, relay client, relay server,
// its DHT wrapper) and bittorrent-dht, run on 127.0.0.1 only.
//
// Protocol: one JSON request a line on stdin, {"id":N,"op":"...","args":{}};
// one JSON answer a line on stdout, {"id":N,"ok":true,"result":...} or
// {"id":N,"ok":false,"error":"..."}. Requests run one at a time, in order.
// At the end of stdin everything is closed and the process exits, with
// status 3 if the loopback guard refused anything. Byte strings travel as
// hex, timestamps and seq numbers as decimal strings.

import { violations, udpSocket, selfTest } from './guard.mjs'

import readline from 'node:readline'
import util from 'node:util'
import crypto from 'node:crypto'

import BittorrentDHT from 'bittorrent-dht'
import sodium from 'sodium-universal'
import { Pkarr, SignedPacket, z32 } from 'pkarr'
import PkarrDHT from 'pkarr/lib/dht.js'
import RelayServer from 'pkarr/lib/relay.js'
import { encodeSigData, generateKeyPair } from 'pkarr/lib/tools.js'

const verify = sodium.crypto_sign_verify_detached

// stdout carries answers only: pkarr's relay server logs every request
// with console.log.
console.log = (...args) => process.stderr.write(util.format(...args) + '\n')

// Query timeout of every KRPC socket: k-rpc-socket's default is 2 s; a
// loaded two-core machine is given more.
const KRPC_TIMEOUT_MS = 4000

const dhts = new Map() // name -> { dht: bittorrent-dht instance, pkarr?: PkarrDHT }
const servers = new Map() // name -> { server: RelayServer, dhtName }

const hex = (b) => Buffer.from(b).toString('hex')
const unhex = (s) => Buffer.from(s, 'hex')

function parsePeer (addr) {
  const i = addr.lastIndexOf(':')
  return { host: addr.slice(0, i), port: Number(addr.slice(i + 1)) }
}

function keypair (seedHex) {
  const seed = unhex(seedHex)
  if (seed.length !== 32) throw new Error('seed must be 32 bytes')
  return generateKeyPair(seed)
}

// records turns the test's JSON records into dns-packet answers.
function answers (records = []) {
  return records.map(r => ({ name: r.name, type: r.type, ttl: r.ttl ?? 300, class: 'IN', data: r.data }))
}

// sign builds and signs a packet the way pkarr 1.3.0 does
// (SignedPacket.fromPacket), at the given timestamp. With padTo, a TXT
// record "_pad" is added and sized so that the DNS message is exactly padTo
// bytes (dns-packet writes names uncompressed, so the size is measured on a
// first signing, which also normalizes the names).
function sign ({ seed, timestamp, records, padTo }) {
  const kp = keypair(seed)
  const ts = timestamp === undefined ? undefined : Number(timestamp)
  const packet = { id: 0, type: 'response', flags: 0, answers: answers(records) }
  if (!padTo) return SignedPacket.fromPacket(kp, packet, { timestamp: ts })
  const pad = { name: '_pad', type: 'TXT', ttl: 300, class: 'IN', data: [] }
  packet.answers.push(pad)
  const base = SignedPacket.fromPacket(kp, packet, { timestamp: ts }).size()
  const needed = padTo - base
  if (needed < 1) throw new Error(`cannot pad to ${padTo}: ${base} bytes without padding`)
  const chunks = Math.ceil(needed / 256)
  let left = needed - chunks
  for (let i = 0; i < chunks; i++) {
    const n = Math.min(255, left)
    pad.data.push(Buffer.alloc(n, 'x'))
    left -= n
  }
  const sp = SignedPacket.fromPacket(kp, packet, { timestamp: ts })
  if (sp.size() !== padTo) throw new Error(`padded to ${sp.size()} bytes, wanted ${padTo}`)
  return sp
}

// describe is what the Go side checks of a packet JS holds.
function describe (sp) {
  const args = sp.bep44Args()
  return {
    publicKey: z32.encode(sp.publicKey()),
    timestamp: String(sp.timestamp()),
    signature: hex(sp.signature()),
    dns: hex(args.v),
    payload: hex(sp.bytes()),
    answers: sp.packet().answers.map(a => ({
      name: a.name,
      type: a.type,
      ttl: a.ttl,
      data: a.type === 'TXT' ? [].concat(a.data).map(b => Buffer.from(b).toString('latin1')) : a.data
    }))
  }
}

function listen (dht) {
  return new Promise((resolve, reject) => {
    const onerr = (err) => reject(err)
    dht.once('error', onerr)
    dht.listen(0, '127.0.0.1', () => {
      dht.removeListener('error', onerr)
      resolve()
    })
  })
}

function ready (dht) {
  return new Promise(resolve => {
    if (dht.ready) return resolve()
    dht.once('ready', resolve)
  })
}

function getDHT (name) {
  const d = dhts.get(name)
  if (!d) throw new Error(`no DHT node named ${name}`)
  return d
}

function addr (dht) {
  const a = dht.address()
  return `${a.address}:${a.port}`
}

// startDHT starts a bittorrent-dht node on 127.0.0.1, bootstrapped from the
// given loopback addresses only (an empty list: none; never the library's
// public default), and waits for its bootstrap round to end. With
// kind "pkarr", the node is pkarr 1.3.0's DHT wrapper around bittorrent-dht,
// as pkarr's client and relay run it (no verify function: pkarr does not
// pass one), with its routing-table file turned off.
async function startDHT ({ name, bootstrap, kind = 'bittorrent' }) {
  if (dhts.has(name)) throw new Error(`DHT node ${name} exists`)
  const opts = {
    bootstrap: (bootstrap || []).map(parsePeer),
    socket: udpSocket(),
    timeout: KRPC_TIMEOUT_MS
  }
  let entry
  if (kind === 'pkarr') {
    const p = new PkarrDHT({ ...opts, storage: { loadRoutingTable () {}, saveRoutingTable () {} } })
    entry = { dht: p._dht, pkarr: p }
  } else {
    entry = { dht: new BittorrentDHT({ ...opts, verify }) }
  }
  dhts.set(name, entry)
  entry.dht.on('warning', (err) => process.stderr.write(`dht ${name} warning: ${err.message}\n`))
  entry.dht.on('error', (err) => process.stderr.write(`dht ${name} error: ${err.message}\n`))
  await listen(entry.dht)
  await ready(entry.dht)
  return { addr: addr(entry.dht), id: hex(entry.dht.nodeId) }
}

function nodes ({ name }) {
  return getDHT(name).dht.toJSON().nodes.map(n => `${n.host}:${n.port}`)
}

// bep44Item signs a mutable item (no salt) with the seed, shaped as pkarr
// publishes a packet: v is the DNS message built from the records, seq its
// timestamp; cas is added when given (it is not signed).
function bep44Item ({ seed, seq, records, padTo, cas }) {
  const kp = keypair(seed)
  const v = sign({ seed, timestamp: seq, records, padTo }).bep44Args().v
  const seqN = Number(seq)
  const sig = Buffer.alloc(sodium.crypto_sign_BYTES)
  sodium.crypto_sign_detached(sig, encodeSigData({ seq: seqN, v }), kp.secretKey)
  const item = { k: kp.publicKey, seq: seqN, v, sig }
  if (cas !== undefined) item.cas = Number(cas)
  return item
}

// itemPacket describes an item as pkarr reads it, or is null when it is
// not a valid pkarr packet.
function itemPacket (item) {
  try {
    return describe(SignedPacket.fromBep44Args(item))
  } catch {
    return null
  }
}

// btPut stores an item through bittorrent-dht's public put(): {n} is how
// many nodes acknowledged, as the library reports it.
function btPut (args) {
  const { dht } = getDHT(args.name)
  const item = bep44Item(args)
  return new Promise((resolve) => {
    try {
      dht.put(item, (err, _key, n) => resolve({ n: n || 0, error: err ? err.message : '', packet: itemPacket(item) }))
    } catch (err) {
      resolve({ n: 0, error: err.message, refusedLocally: true })
    }
  })
}

function query (dht, addr, q, a) {
  return new Promise(resolve => {
    dht._rpc.query(parsePeer(addr), { q, a: { id: dht._rpc.id, ...a } }, (err, res) => resolve({ err, r: res && res.r }))
  })
}

function failure (err) {
  return { ok: false, code: typeof err.code === 'number' ? err.code : 0, error: err.message }
}

// probePut puts an item on each of the given nodes, one by one, and
// reports each node's answer: a get query for the node's write token, then
// the put query bittorrent-dht's own put sends (its k-rpc, its message
// layout). Unlike bittorrent-dht's put it skips the client-side check that
// v is under 1000 bytes, so that values of up to 1000 bytes (which BEP44,
// pkarr's Rust client and bittorrent-dht's own server accept) can be
// offered.
async function probePut (args) {
  const { dht } = getDHT(args.name)
  const item = bep44Item(args)
  const target = crypto.createHash('sha1').update(item.k).digest()
  const results = {}
  for (const addr of args.nodes) {
    const got = await query(dht, addr, 'get', { target })
    if (got.err) { results[addr] = failure(got.err); continue }
    if (!got.r || !got.r.token) { results[addr] = { ok: false, code: 0, error: 'get answer without a token' }; continue }
    const a = { token: got.r.token, v: item.v, k: item.k, seq: item.seq, sig: item.sig }
    if (item.cas !== undefined) a.cas = item.cas
    const put = await query(dht, addr, 'put', a)
    results[addr] = put.err ? failure(put.err) : { ok: true, code: 0, error: '' }
  }
  return { size: item.v.length, results, packet: itemPacket(item) }
}

// probeGet asks each of the given nodes directly what it stores for the
// key: {seq, size, valid} (the signature checked as pkarr does), or null.
async function probeGet ({ name, publicKey, nodes }) {
  const { dht } = getDHT(name)
  const k = z32.decode(publicKey)
  const target = crypto.createHash('sha1').update(k).digest()
  const out = {}
  for (const addr of nodes) {
    const got = await query(dht, addr, 'get', { target })
    if (got.err) { out[addr] = { error: got.err.message }; continue }
    const r = got.r
    if (!r || !r.v || !r.k || !r.sig) { out[addr] = null; continue }
    let valid = false
    try {
      valid = Buffer.from(r.k).equals(k) && verify(r.sig, encodeSigData(r), r.k)
    } catch {}
    out[addr] = { seq: String(r.seq), size: r.v.length, valid }
  }
  return out
}

// btGet resolves a mutable item through bittorrent-dht's public get()
// (it keeps the highest seq of all answers) and checks it as pkarr does.
function btGet ({ name, publicKey }) {
  const { dht } = getDHT(name)
  const k = z32.decode(publicKey)
  const target = crypto.createHash('sha1').update(k).digest()
  return new Promise((resolve, reject) => {
    dht.get(target, { verify, cache: false }, (err, res) => {
      if (err) return reject(err)
      if (!res) return resolve(null)
      try {
        resolve(describe(SignedPacket.fromBep44Args({ k: res.k, seq: res.seq, v: res.v, sig: res.sig })))
      } catch (e) {
        reject(e)
      }
    })
  })
}

// pkarrPublish publishes a packet with pkarr 1.3.0's DHT wrapper (what
// Pkarr.publish does, on a node given loopback bootstrap addresses).
async function pkarrPublish (args) {
  const d = getDHT(args.name)
  if (!d.pkarr) throw new Error(`${args.name} is not a pkarr DHT node`)
  const sp = sign(args)
  const res = await d.pkarr.put(sp.bep44Args())
  return { packet: describe(sp), nodes: res.nodes.map(n => `${n.host}:${n.port}`) }
}

// pkarrResolve resolves with pkarr 1.3.0's DHT wrapper (what
// Pkarr.resolve does) and returns the packet and the nodes that served it.
async function pkarrResolve ({ name, publicKey, fullLookup = true }) {
  const d = getDHT(name)
  if (!d.pkarr) throw new Error(`${name} is not a pkarr DHT node`)
  const res = await d.pkarr.get(z32.decode(publicKey), { fullLookup })
  if (!res) return null
  return {
    packet: describe(SignedPacket.fromBep44Args(res)),
    nodes: res.nodes.map(n => `${n.host}:${n.port}`)
  }
}

// relayPut publishes a packet signed by pkarr to a relay with
// Pkarr.relayPut.
async function relayPut (args) {
  const sp = sign(args)
  const res = await Pkarr.relayPut(args.url, sp)
  return { status: res.status, body: await res.text(), packet: describe(sp) }
}

// relayGet resolves with Pkarr.relayGet, which verifies the signature.
async function relayGet ({ url, publicKey }) {
  const sp = await Pkarr.relayGet(url, z32.decode(publicKey))
  return describe(sp)
}

// relayServe starts pkarr 1.3.0's relay server (lib/relay.js) on
// 127.0.0.1, backed by a pkarr DHT node bootstrapped from the given
// loopback addresses: it stores nothing itself, a PUT is a DHT put and a
// GET a DHT get.
async function relayServe ({ name, bootstrap = [] }) {
  if (servers.has(name)) throw new Error(`relay ${name} exists`)
  const dhtName = `relay:${name}`
  const started = await startDHT({ name: dhtName, bootstrap, kind: 'pkarr' })
  const pdht = getDHT(dhtName).pkarr
  const server = new RelayServer({ dht: pdht })
  await new Promise((resolve, reject) => {
    server._server.once('error', reject)
    // Server.listen(port) would bind every interface; bind loopback only.
    server._server.listen(0, '127.0.0.1', resolve)
  })
  servers.set(name, { server, dhtName })
  return { url: `http://127.0.0.1:${server.port}`, dhtAddr: started.addr }
}

async function closeAll () {
  for (const { server } of servers.values()) {
    const closed = new Promise(resolve => server._server.close(() => resolve()))
    server._server.closeAllConnections() // idle keep-alive connections would hold close() for seconds
    await closed
  }
  servers.clear()
  for (const d of dhts.values()) {
    await new Promise(resolve => d.dht.destroy(() => resolve()))
  }
  dhts.clear()
}

const ops = {
  keypair: ({ seed }) => ({ publicKey: z32.encode(keypair(seed).publicKey) }),
  sign: (args) => describe(sign(args)),
  startDHT,
  nodes,
  btPut,
  btGet,
  probePut,
  probeGet,
  pkarrPublish,
  pkarrResolve,
  relayPut,
  relayGet,
  relayServe,
  guardSelfTest: selfTest
}

function reply (msg) {
  process.stdout.write(JSON.stringify(msg) + '\n')
}

const rl = readline.createInterface({ input: process.stdin })
let queue = Promise.resolve()
rl.on('line', (line) => {
  queue = queue.then(async () => {
    let req
    try {
      req = JSON.parse(line)
    } catch (err) {
      return reply({ id: 0, ok: false, error: `bad request: ${err.message}` })
    }
    const op = ops[req.op]
    if (!op) return reply({ id: req.id, ok: false, error: `unknown op ${req.op}` })
    try {
      const result = await op(req.args || {})
      reply({ id: req.id, ok: true, result: result === undefined ? null : result })
    } catch (err) {
      reply({ id: req.id, ok: false, error: err && err.message ? err.message : String(err) })
    }
  })
})
rl.on('close', () => {
  queue.then(closeAll).finally(() => {
    process.exitCode = violations.length > 0 ? 3 : 0
    // graceful-goodbye (pkarr's DHT) holds exit hooks; leave at once.
    setImmediate(() => process.exit())
  })
})

process.stdout.write(JSON.stringify({ id: 0, ok: true, result: 'ready' }) + '\n')
