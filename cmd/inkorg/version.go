package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Stamped at build time: go build -ldflags "-X main.version=1.2.3 -X main.commit=$(git rev-parse HEAD)".
var (
	version = "dev"
	commit  = ""
)

const versionUsage = `usage: inkorg version

Prints inkorg's version, the commit it was built from and the Go version.

Example:
  inkorg version
`

func cmdVersion(e *env, args []string) error {
	if err := newFlags(e, "version", versionUsage).parse(args); err != nil {
		return err
	}
	c := commit
	if c == "" {
		c = "unknown"
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" {
					c = s.Value
				}
			}
		}
	}
	fmt.Fprintf(e.stdout, "inkorg %s (commit %s, %s)\n", version, c, runtime.Version())
	return nil
}
