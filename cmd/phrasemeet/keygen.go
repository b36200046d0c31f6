package main

import (
	"context"
	"fmt"

	"github.com/phrasemeet/discovery/pkarrclient"
)

func runKeygen(_ context.Context, e env, args []string) error {
	fs := newFlagSet("keygen", "--out FILE [--json]", e.stdout)
	out := fs.String("out", "", "write the secret seed to this new file (mode 0600; never overwritten)")
	asJSON := fs.Bool("json", false, `print one JSON object, {"key" (the public key),"file"}, instead of the public key alone`)
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
	if *asJSON {
		return newJSONEncoder(e.stdout).Encode(struct {
			Key  string `json:"key"`
			File string `json:"file"`
		}{sk.PublicKey().String(), *out})
	}
	fmt.Fprintln(e.stdout, sk.PublicKey())
	return nil
}
