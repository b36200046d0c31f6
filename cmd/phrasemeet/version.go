package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

func runVersion(_ context.Context, e env, args []string) error {
	fs := newFlagSet("version", "", e.stdout)
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageError("unexpected argument %q", rest[0])
	}
	read := e.buildInfo
	if read == nil {
		read = debug.ReadBuildInfo
	}
	fmt.Fprintln(e.stdout, versionLine(read()))
	return nil
}

// versionLine describes a build in one line: the module version, the VCS
// revision (and whether the tree had uncommitted changes, and the commit's
// time), the Go release and the platform. A bug report needs the revision
// more than the version: a binary built from a checkout is "(devel)" or a
// pseudo-version, and only the revision says which code it ran.
func versionLine(info *debug.BuildInfo, ok bool) string {
	platform := runtime.GOOS + "/" + runtime.GOARCH
	if !ok || info == nil {
		return fmt.Sprintf("phrasemeet version unknown (no build information), %s %s", runtime.Version(), platform)
	}
	version := info.Main.Version
	if version == "" {
		version = "(devel)"
	}
	var revision, when string
	modified := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "phrasemeet %s, ", version)
	if revision == "" {
		b.WriteString("revision unknown (built without VCS stamping)")
	} else {
		var notes []string
		if modified {
			notes = append(notes, "modified")
		}
		if when != "" {
			notes = append(notes, when)
		}
		fmt.Fprintf(&b, "revision %s", revision)
		if len(notes) > 0 {
			fmt.Fprintf(&b, " (%s)", strings.Join(notes, ", "))
		}
	}
	fmt.Fprintf(&b, ", %s %s", info.GoVersion, platform)
	return b.String()
}
