package main

import (
	"context"
	"fmt"

	"github.com/phrasemeet/discovery/pkarrclient"
)

func runKeygen(_ context.Context, e env, args []string) error {
	fs := newFlagSet("keygen", "--out FILE", e.stdout)
	out := fs.String("out", "", "write the secret seed to this new file (mode 0600; never overwritten)")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageError("unexpected argument %q", rest[0])
	}
	if *out == "" {
		// The secret is never printed, so a file is the only place for it.
		return usageError("--out FILE is required")
	}
	sk, err := pkarrclient.GenerateSecretKey(nil)
	if err != nil {
		return err
	}
	defer sk.Destroy()
	if err := pkarrclient.SaveSecretKey(*out, sk); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, sk.PublicKey())
	return nil
}
