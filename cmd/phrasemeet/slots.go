package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

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

// canSyncStaleAfter is when the slots table calls a can-sync slot stale.
// can-sync itself never judges staleness (failure 4 of the notes); the
// table uses the default profile's bound, two and a half republish
// periods, so a crashed peer's leftover ID stands out from a live one.
const canSyncStaleAfter = 150 * time.Second

func runSlots(ctx context.Context, e env, args []string) error {
	if err := refusePassphraseArg(args); err != nil {
		return err
	}
	fs := newFlagSet("slots", "[--profile default|can-sync] [--keys-only] [--relay URL|none]... [--dht [--bootstrap HOST:PORT]...] "+
		"[--app NAME] [--namespace NAME] [--slots N] [--passphrase-file PATH]", e.stderr)
	keysOnly := fs.Bool("keys-only", false, "print each slot's index and public key, and touch no network")
	var relays listFlag
	fs.Var(&relays, "relay", `relay base URL (repeatable; default $PHRASEMEET_RELAYS, else the public relays; "none": no relay, the DHT alone)`)
	dhtf := addDHTFlags(fs, "read the slots from the Mainline DHT too (--relay none: the DHT alone)")
	grpf := addGroupFlags(fs)
	passf := addPassphraseFlags(fs)
	nSlots := fs.Int("slots", 0, fmt.Sprintf("default profile: with --keys-only, how many keys to print (default %d); else read at least this many slots "+
		"(default: slot 0, and deeper levels only while the ones above are full)", defaultKeysShown))
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
	case *nSlots < 0 || *nSlots > 1<<17:
		return usageError("--slots %d: want 1 to %d", *nSlots, 1<<17)
	case *nSlots != 0 && pr == profileCanSync:
		return usageError("--slots is for the default profile: can-sync has exactly %d slots", slotdiscovery.CanSyncSlots)
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
		fmt.Fprintln(e.stderr, kdfStatus())
		if group, err = grpf.derive(pass); err != nil {
			return err
		}
	}
	clear(pass)

	if *keysOnly {
		if pr == profileCanSync {
			for i, k := range canSyncKeys {
				fmt.Fprintf(e.stdout, "%d  %s\n", i, k)
			}
			return nil
		}
		n := *nSlots
		if n == 0 {
			n = defaultKeysShown
		}
		for i := range n {
			fmt.Fprintf(e.stdout, "%d  %s\n", i, group.SlotKey(i).PublicKey())
		}
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
	if pr == profileCanSync {
		table = readCanSyncTable(ctx, client, canSyncKeys)
	} else {
		infos, err := slotdiscovery.ReadTable(ctx, client, group, slotdiscovery.TableMinSlots(max(*nSlots, 1)))
		if err != nil && len(infos) == 0 {
			return err
		}
		table = defaultTable(infos)
	}
	now := time.Now()
	printTable(e.stdout, table, now)
	if err := ctx.Err(); err != nil {
		return err
	}
	readable := 0
	for _, r := range table {
		if r.state != slotdiscovery.SlotUnreadable {
			readable++
		}
	}
	if readable == 0 {
		return fmt.Errorf("no slot could be read: %s", oneLine(table[0].err.Error()))
	}
	return nil
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
	index   int
	key     pkarrclient.PublicKey
	state   slotdiscovery.SlotState
	packet  time.Time // zero without a packet
	members []memberRow
	foreign int
	err     error
}

type memberRow struct {
	id    string
	addrs []string
	state string // live, stale or left
	time  time.Time
}

func defaultTable(infos []slotdiscovery.SlotInfo) []slotRow {
	rows := make([]slotRow, 0, len(infos))
	for _, si := range infos {
		r := slotRow{index: si.Index, key: si.Key, state: si.State, packet: si.Packet, foreign: si.Foreign, err: si.Err}
		for _, m := range si.Members {
			state := "live"
			switch {
			case m.Left:
				state = "left"
			case m.Stale:
				state = "stale"
			}
			r.members = append(r.members, memberRow{id: m.Record.ID, addrs: m.Record.Addrs, state: state, time: m.Time})
		}
		rows = append(rows, r)
	}
	return rows
}

// readCanSyncTable reads the eight slots at once (a diagnostic, run once,
// unlike can-sync's sequential scan) as can-sync reads them.
func readCanSyncTable(ctx context.Context, client *pkarrclient.Client, keys []pkarrclient.PublicKey) []slotRow {
	rows := make([]slotRow, len(keys))
	now := time.Now()
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
				if now.Sub(r.packet) > canSyncStaleAfter {
					state, r.state = "stale", slotdiscovery.SlotStale
				}
				r.members = []memberRow{{id: id, state: state, time: r.packet}}
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
		if r.err != nil {
			line += "  " + oneLine(r.err.Error())
		}
		fmt.Fprintln(w, strings.TrimRight(line, " "))
		for _, m := range r.members {
			fmt.Fprintf(w, "      - %-5s  %6s  %s%s\n", m.state, age(now, m.time), m.id, bracketed(m.addrs))
		}
	}
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
	return " [" + strings.Join(addrs, " ") + "]"
}
