// guard.mjs keeps the JS side on loopback, whatever the libraries default
// to: pkarr 1.3.0 and k-rpc fall back to public DHT routers and pkarr's
// DHT loads a routing table saved under the home directory. Every UDP
// datagram, DNS lookup and fetch goes through a check here; a refusal is
// recorded (the Go test fails on any) and the operation fails instead of
// leaving the machine.

import dgram from 'node:dgram'
import nodedns from 'node:dns'
import net from 'node:net'
import { createRequire } from 'node:module'

export const violations = []

function refuse (what) {
  violations.push(what)
  process.stderr.write(`GUARD: refused ${what}\n`)
  return new Error(`jsinterop guard: refused ${what}`)
}

export function isLoopbackIP (host) {
  if (typeof host !== 'string') return false
  if (net.isIPv4(host)) return host.startsWith('127.')
  if (net.isIPv6(host)) return host === '::1' || /^::ffff:127\./i.test(host)
  return false
}

// No name is ever looked up: k-rpc-socket resolves host names with
// dns.lookup (the public routers are names), and so would fetch. Numeric
// addresses pass (dgram's bind "looks up" its address; that never leaves
// the process).
const realLookup = nodedns.lookup
const guardedLookup = function (host, options, cb) {
  if (net.isIP(host)) return realLookup.apply(this, arguments)
  if (typeof options === 'function') cb = options
  const err = refuse(`DNS lookup of ${JSON.stringify(host)}`)
  err.code = 'EREFUSED'
  if (typeof cb === 'function') process.nextTick(cb, err)
}
const refusedResolve = function (host, ...rest) {
  const cb = rest[rest.length - 1]
  const err = refuse(`DNS query for ${JSON.stringify(host)}`)
  err.code = 'EREFUSED'
  if (typeof cb === 'function') process.nextTick(cb, err)
}
nodedns.lookup = guardedLookup
for (const f of ['resolve', 'resolve4', 'resolve6', 'resolveAny', 'resolveTxt']) nodedns[f] = refusedResolve

// fetch may only reach a numeric loopback address.
const realFetch = globalThis.fetch
const guardedFetch = async function (input, init) {
  const url = new URL(typeof input === 'string' ? input : input.url)
  const host = url.hostname.replace(/^\[|\]$/g, '')
  if (!isLoopbackIP(host)) throw refuse(`fetch of ${url.origin}`)
  return realFetch(input, init)
}
globalThis.fetch = guardedFetch

// udpSocket returns a UDP socket whose send refuses every destination but
// a numeric loopback address. bittorrent-dht hands it to k-rpc-socket
// (option `socket`), which sends everything through it.
export function udpSocket () {
  const sock = dgram.createSocket('udp4')
  const send = sock.send.bind(sock)
  // dgram.send(msg[, offset, length], port[, address][, callback]); a
  // socket not yet bound re-enters send with (list, port, address, cb).
  sock.send = function (...args) {
    const [port, host] = typeof args[2] === 'number' ? [args[3], args[4]] : [args[1], args[2]]
    if (!isLoopbackIP(host)) {
      const err = refuse(`datagram to ${host}:${port}`)
      const cb = args[args.length - 1]
      if (typeof cb === 'function') process.nextTick(cb, err)
      return
    }
    return send(...args)
  }
  return sock
}

// selfTest checks that every guard is in place and refuses, in a way that
// cannot reach the network even if a guard's check were wrong: the datagram
// goes to a closed socket, the fetch carries an already aborted signal (so
// the real fetch would reject before connecting), and the lookup is of
// "localhost" (answered from the hosts file). The refusals it provokes are
// not kept as violations.
export async function selfTest () {
  const before = violations.length
  const require = createRequire(import.meta.url)
  const out = {
    lookupGuarded: require('dns').lookup === guardedLookup && nodedns.lookup === guardedLookup,
    fetchGuarded: globalThis.fetch === guardedFetch,
    datagramRefused: false,
    lookupRefused: false,
    fetchRefused: false
  }
  const sock = udpSocket()
  sock.close()
  try {
    sock.send(Buffer.from('x'), 0, 1, 9, '192.0.2.1')
    out.datagramRefused = violations.length > before
  } catch {}
  if (out.lookupGuarded) {
    const n = violations.length
    await new Promise(resolve => require('dns').lookup('localhost', () => resolve()))
    out.lookupRefused = violations.length > n
  }
  if (out.fetchGuarded) {
    const n = violations.length
    await globalThis.fetch('http://192.0.2.1:9/', { signal: AbortSignal.abort() }).catch(() => {})
    out.fetchRefused = violations.length > n
  }
  violations.splice(before)
  return out
}
