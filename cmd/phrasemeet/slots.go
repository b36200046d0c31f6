package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/phrasemeet/discovery/slotdiscovery"
)

// The slots command shows where a passphrase's group lives: each slot's
// public key and, read from the relays (or the DHT), what it holds. It is
// the diagnostic behind join: "are we in the same group?" is "do we print
// the same keys?", and "why don't we see each other?" often shows in the
// table.

// defaultKeysShown is how many default-profile slot keys --keys-only
// prints unless --slots says otherwise: levels 0 to 2, where a group of up
// to a few dozen peers lives. Slot 0 alone holds a small group.
const defaultKeysShown = 7

// maxKeysShown is the whole default-profile slot space, levels 0 to 16:
// no peer claims beyond it.
const maxKeysShown = 1<<17 - 1

// maxSlotsRead caps --slots when the slots are read: levels 0 to 4, 31
// GETs per backend in five bursts, within the read burst of
// `phrasemeet relay` (50). Beyond that a relay answers 429 and the table
// fills with "unreadable". Levels a group actually fills are read anyway,
// --slots or not.
const maxSlotsRead = 31

// canSyncStaleAfter is when the slots table calls a can-sync slot stale.
// can-sync itself never judges staleness (failure 4 of the notes) and
// republishes every 60 s; the table uses the default profile's stale
// bound, so a crashed peer's leftover ID stands out from a live one.
const canSyncStaleAfter = 150 * time.Second

// canSyncFutureBound is how far ahead a can-sync slot's packet may be
// stamped before the table calls the slot locked: the can-sync profile's
// default future bound, beyond which it never claims a slot (no write of
// its own could replace the packet).
const canSyncFutureBound = 2 * time.Minute

func runSlots(ctx context.Context, e env, args []string) error {
	if err := refusePassphraseArg(args); err != nil {
		return err
	}
	fs := newFlagSet("slots", "[--profile default|can-sync] [--keys-only] [--json] [--relay URL|none]... [--dht [--bootstrap HOST:PORT]...] "+
		"[--app NAME] [--namespace NAME] [--slots N] [--passphrase-file PATH]", e.stdout)
	keysOnly := fs.Bool("keys-only", false, "print each slot's index and public key, and touch no network")
	asJSON := fs.Bool("json", false, `print one JSON object per slot and line: {"index","key","state","packet","age_seconds","members":[{"id","addrs","state","seen","age_seconds"}],"time"}; `+
		`with --keys-only just {"index","key"}`)
	var relays listFlag
	fs.Var(&relays, "relay", relayHelp)
	dhtf := addDHTFlags(fs, "read the slots from the Mainline DHT too (--relay none: the DHT alone)")
	grpf := addGroupFlags(fs)
	passf := addPassphraseFlags(fs)
	nSlots := fs.Int("slots", 0, fmt.Sprintf("default profile: with --keys-only, how many keys to print (default %d, at most %d); "+
		"else read at least this many slots (at most %d; default: slots 0-6, where a group that starts together spreads, and deeper levels while the ones above are full)",
		defaultKeysShown, maxKeysShown, maxSlotsRead))
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if err := noArguments(rest); err != nil {
		return err
	}
	if err := dhtf.check(fs); err != nil {
		return err
	}
	pr, err := grpf.check(fs)
	if err != nil {
		return err
	}
	switch {
	case *nSlots != 0 && pr == profileCanSync:
		return usageError("--slots is for the default profile: can-sync has exactly %d slots", slotdiscovery.CanSyncSlots)
	case *keysOnly && (*nSlots < 0 || *nSlots > maxKeysShown):
		return usageError("--slots %d: want 1 to %d, the whole slot space", *nSlots, maxKeysShown)
	case !*keysOnly && (*nSlots < 0 || *nSlots > maxSlotsRead):
		// Reading is a burst of GETs per level to every relay: thousands
		// of slots would be a flood, and mostly 429s.
		return usageError("--slots %d: want 1 to %d when reading the slots (--keys-only prints up to %d keys)", *nSlots, maxSlotsRead, maxKeysShown)
	}
	if !*keysOnly {
		// Settle the relays before asking for a passphrase: a typo in a
		// URL should not cost the user a prompt.
		if _, err := networkURLs(e, relays, dhtf); err != nil {
			return err
		}
	}

	pass, err := passf.read(ctx, e)
	if err != nil {
		return err
	}
	defer clear(pass)
	if err := checkPassphrase(pr, pass); err != nil {
		return err
	}

	// The slot keys: can-sync's eight come straight from the passphrase;
	// the default profile's from the group the KDF derives, on demand.
	var group *slotdiscovery.Group
	var canSyncKeys []pkarrclient.PublicKey
	switch pr {
	case profileCanSync:
		for i := range slotdiscovery.CanSyncSlots {
			sk := slotdiscovery.CanSyncSlotKey(pass, i)
			canSyncKeys = append(canSyncKeys, sk.PublicKey())
			sk.Destroy()
		}
	default:
		// --json keeps standard error quiet, as join --json does, for
		// programs that treat anything there as a failure.
		if !*asJSON {
			fmt.Fprintln(e.stderr, kdfStatus())
		}
		if group, err = grpf.derive(pass); err != nil {
			return err
		}
	}
	clear(pass)

	if *keysOnly {
		keys := canSyncKeys
		if pr != profileCanSync {
			n := *nSlots
			if n == 0 {
				n = defaultKeysShown
			}
			for i := range n {
				keys = append(keys, group.SlotKey(i).PublicKey())
			}
		}
		printKeys(e.stdout, keys, *asJSON)
		return nil
	}

	backends, dht, err := clientBackends(e, relays, dhtf)
	if err != nil {
		return err
	}
	defer closeDHT(e, "slots", dht)
	client, err := pkarrclient.NewClient(backends)
	if err != nil {
		return err
	}
	var table []slotRow
	truncated := false
	if pr == profileCanSync {
		table = readCanSyncTable(ctx, client, canSyncKeys)
	} else {
		// ReadTable's errors with a partial table are ctx's, checked
		// below, and a walk cut at its slot bound, told after the table.
		topts := []slotdiscovery.TableOption{slotdiscovery.TableIDSchemes(idSchemes()...)}
		if *nSlots > 0 {
			topts = append(topts, slotdiscovery.TableMinSlots(*nSlots))
		}
		infos, err := slotdiscovery.ReadTable(ctx, client, group, topts...)
		if err != nil && len(infos) == 0 && ctx.Err() == nil {
			return err
		}
		truncated = errors.Is(err, slotdiscovery.ErrTableTruncated)
		table = defaultTable(infos)
	}
	if ctx.Err() != nil {
		// A table cut short by Ctrl-C would show slots as unreadable
		// that were merely not read.
		return errInterrupted
	}
	now := time.Now()
	if *asJSON {
		printTableJSON(e.stdout, table, now)
	} else {
		printTable(e.stdout, table, now)
	}
	if truncated {
		fmt.Fprintf(e.stderr, "every slot of the %d read is full or locked; deeper levels were not read\n", len(table))
	}
	if len(table) == 0 {
		return errors.New("no slot was read") // ReadTable returns at least slot 0; a backstop
	}
	var firstErr error
	for _, r := range table {
		if r.state != slotdiscovery.SlotUnreadable {
			return nil
		}
		if firstErr == nil {
			firstErr = r.err
		}
	}
	// Every slot failed alike, as a rule (relays down, a wrong URL): one
	// reason is enough, and the table above has them all.
	return fmt.Errorf("no slot could be read: %s", oneLine(firstErr.Error()))
}

// printKeys prints --keys-only: "INDEX  KEY" lines, or JSON objects.
func printKeys(w io.Writer, keys []pkarrclient.PublicKey, asJSON bool) {
	enc := newJSONEncoder(w)
	for i, k := range keys {
		if asJSON {
			enc.Encode(struct {
				Index int    `json:"index"`
				Key   string `json:"key"`
			}{i, k.String()})
			continue
		}
		fmt.Fprintf(w, "%d  %s\n", i, k)
	}
}

// networkURLs checks the relay and DHT settings without opening
// anything, as clientBackends will.
func networkURLs(e env, relays []string, f *dhtFlags) ([]string, error) {
	urls, err := relayURLs(relays, e)
	if err != nil {
		return nil, err
	}
	if len(urls) == 0 && !f.on {
		return nil, usageError(`relays are "none" and --dht is not given: nothing to talk to`)
	}
	for _, u := range urls {
		if _, err := pkarrclient.NewRelay(u); err != nil {
			return nil, usageError("%v", err) // names the URL without its password
		}
	}
	if f.on {
		if _, err := bootstrapAddrs(f.bootstrap, e); err != nil {
			return nil, err
		}
	}
	return urls, nil
}

// slotRow is one slot as the table prints it, for either profile.
type slotRow struct {
	index    int
	key      pkarrclient.PublicKey
	state    slotdiscovery.SlotState
	packet   time.Time // zero without a packet
	members  []memberRow
	foreign  int
	unproven int // entries about a key without a valid proof by it: ignored
	err      error
}

type memberRow struct {
	id    string
	addrs []string
	meta  []byte
	state string    // live, stale or left
	time  time.Time // the entry's signed time (can-sync: the packet's)
}

func defaultTable(infos []slotdiscovery.SlotInfo) []slotRow {
	rows := make([]slotRow, 0, len(infos))
	for _, si := range infos {
		r := slotRow{index: si.Index, key: si.Key, state: si.State, packet: si.Packet, foreign: si.Foreign, unproven: si.Unproven, err: si.Err}
		for _, m := range si.Members {
			state := "live"
			switch {
			case m.Left:
				state = "left"
			case m.Stale:
				state = "stale"
			}
			r.members = append(r.members, memberRow{id: m.Record.ID, addrs: m.Record.Addrs, meta: m.Record.Meta, state: state, time: m.Time})
		}
		rows = append(rows, r)
	}
	return rows
}

// readCanSyncTable reads the eight slots at once (a diagnostic, run once,
// unlike can-sync's sequential scan) as can-sync reads them.
func readCanSyncTable(ctx context.Context, client *pkarrclient.Client, keys []pkarrclient.PublicKey) []slotRow {
	rows := make([]slotRow, len(keys))
	var wg sync.WaitGroup
	for i, k := range keys {
		wg.Go(func() {
			r := slotRow{index: i, key: k, state: slotdiscovery.SlotEmpty}
			id, ts, err := slotdiscovery.ReadCanSyncSlot(ctx, client, k)
			if ts != 0 {
				r.packet = ts.Time()
			}
			switch {
			case errors.Is(err, pkarrclient.ErrNotFound):
			case err != nil:
				r.state, r.err = slotdiscovery.SlotUnreadable, err
			default:
				state := "live"
				r.state = slotdiscovery.SlotLive
				if time.Since(r.packet) > canSyncStaleAfter {
					state, r.state = "stale", slotdiscovery.SlotStale
				}
				r.members = []memberRow{{id: id, state: state, time: r.packet}}
			}
			if r.state != slotdiscovery.SlotUnreadable && ts.After(time.Now().Add(canSyncFutureBound)) {
				r.state = slotdiscovery.SlotLocked
			}
			rows[i] = r
		})
	}
	wg.Wait()
	return rows
}

// printTable prints one line per slot (index, key, state, age of its
// packet) and under it one indented line per member (state, age of its
// entry, ID, addresses).
func printTable(w io.Writer, rows []slotRow, now time.Time) {
	fmt.Fprintf(w, "%-4s  %-52s  %-10s  %s\n", "slot", "key", "state", "age")
	for _, r := range rows {
		line := fmt.Sprintf("%-4d  %-52s  %-10s  %s", r.index, r.key, r.state, age(now, r.packet))
		if r.foreign > 0 {
			line += fmt.Sprintf("  (%d foreign entries)", r.foreign)
		}
		if r.unproven > 0 {
			line += fmt.Sprintf("  (%d unproven entries ignored)", r.unproven)
		}
		if r.err != nil {
			line += "  " + oneLine(r.err.Error())
		}
		fmt.Fprintln(w, strings.TrimRight(line, " "))
		for _, m := range r.members {
			fmt.Fprintf(w, "      - %-5s  %6s  %s%s\n", m.state, age(now, m.time), printable(m.id), bracketed(m.addrs))
		}
	}
}

// jsonSlot is one line of slots --json. Its names follow join --json: id,
// addrs and meta as announced, seen for a signed time, time for when the
// command looked.
type jsonSlot struct {
	Index int    `json:"index"`
	Key   string `json:"key"`
	State string `json:"state"` // empty, live, stale, locked or unreadable
	// Packet is the slot packet's timestamp and AgeSeconds how long
	// before Time it was (negative: ahead of our clock); both null when
	// the slot has no packet. A time past the year 9999, which JSON
	// cannot carry (a slot locked at 2^63 µs or beyond), shows as the
	// last instant of 9999, as does a member's seen.
	Packet     *time.Time   `json:"packet"`
	AgeSeconds *int64       `json:"age_seconds"`
	Members    []jsonMember `json:"members"`
	// Foreign counts records that do not open with the group key.
	Foreign int `json:"foreign"`
	// Unproven counts entries about a key (an Ed25519 key in hex, a
	// libp2p peer ID) without a valid signature by it: forgeries, which
	// readers ignore and which are not among Members.
	Unproven int       `json:"unproven"`
	Error    string    `json:"error,omitempty"`
	Time     time.Time `json:"time"`
}

// jsonMember is one entry of a slot: the can-sync profile's only entry
// carries an ID alone and the packet's time.
type jsonMember struct {
	ID         string    `json:"id"`
	Addrs      []string  `json:"addrs"`
	Meta       []byte    `json:"meta,omitempty"`
	State      string    `json:"state"` // live, stale or left
	Seen       time.Time `json:"seen"`
	AgeSeconds int64     `json:"age_seconds"`
}

// printTableJSON prints the table as one jsonSlot per line. Arrays are
// empty rather than null, so consumers need no special case.
func printTableJSON(w io.Writer, rows []slotRow, now time.Time) {
	enc := newJSONEncoder(w)
	now = now.UTC()
	for _, r := range rows {
		js := jsonSlot{Index: r.index, Key: r.key.String(), State: string(r.state), Members: []jsonMember{}, Foreign: r.foreign,
			Unproven: r.unproven, Time: now}
		if !r.packet.IsZero() {
			p, a := jsonTime(r.packet), ageSeconds(now, r.packet)
			js.Packet, js.AgeSeconds = &p, &a
		}
		if r.err != nil {
			js.Error = oneLine(r.err.Error())
		}
		for _, m := range r.members {
			js.Members = append(js.Members, jsonMember{ID: m.id, Addrs: nonNil(m.addrs), Meta: m.meta, State: m.state,
				Seen: jsonTime(m.time), AgeSeconds: ageSeconds(now, m.time)})
		}
		enc.Encode(js)
	}
}

// jsonTime is t in UTC, saturated to the years JSON's RFC 3339 can carry:
// encoding a time outside them fails, and would drop the slot's whole
// line.
func jsonTime(t time.Time) time.Time {
	first := time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)
	last := time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC)
	switch {
	case t.Before(first):
		return first
	case t.After(last):
		return last
	}
	return t.UTC()
}

// newJSONEncoder returns the encoder of the --json outputs: one object
// per line, and "<" or "&" in an address left as they are rather than
// escaped for HTML, which no consumer of a command's output is.
func newJSONEncoder(w io.Writer) *json.Encoder {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc
}

// ageSeconds is age in whole seconds, rounded as the table rounds it.
func ageSeconds(now, t time.Time) int64 {
	return int64(now.Sub(t).Round(time.Second) / time.Second)
}

// age is how long before now t was, to the second; "-" for no time, and
// "+5s" for a time ahead of our clock.
func age(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t).Round(time.Second)
	if d < 0 {
		return "+" + (-d).String()
	}
	return d.String()
}

// bracketed is " [a b]", or "" for no addresses.
func bracketed(addrs []string) string {
	if len(addrs) == 0 {
		return ""
	}
	shown := make([]string, len(addrs))
	for i, a := range addrs {
		shown[i] = printable(a)
	}
	return " [" + strings.Join(shown, " ") + "]"
}

// printable returns s as it is when it is valid UTF-8 of printable
// characters and no space, else Go-quoted. IDs and addresses come from
// other peers (anyone with the passphrase; for can-sync anyone who
// guesses it), and printed raw, a newline would forge an output line and
// an escape sequence would take over the user's terminal. A space would
// make one address read as two.
func printable(s string) string {
	if s == "" || !utf8.ValidString(s) {
		return strconv.Quote(s)
	}
	for _, r := range s {
		if r == ' ' || !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}
