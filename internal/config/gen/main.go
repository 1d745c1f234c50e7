// Command gen writes docs/configuration.md from internal/config's Serve struct. Run it from the
// repository's root after changing a setting: go run ./internal/config/gen
package main

import (
	"flag"
	"fmt"
	"os"

	"inkorg/internal/config"
)

func main() {
	out := flag.String("o", config.DocPath, "the file to write")
	flag.Parse()
	if err := os.WriteFile(*out, config.Markdown(), 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "gen: %v\n", err)
		os.Exit(1)
	}
}
