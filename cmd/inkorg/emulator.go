package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"inkorg/internal/emulator"
)

// cmdEmulator runs `inkorg emulator --dir DIR [--scenario FILE] [--host 127.0.0.1]`: a local Entra ID
// and Exchange Online until ctx is cancelled (SIGINT/SIGTERM). Exit codes: 0 after a clean stop, 1 when
// the emulator cannot start, 2 on usage errors.
func cmdEmulator(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "directory for ca.pem and emulator.json (required; created if missing)")
	scenarioFile := fs.String("scenario", "", "scenario JSON file (default: the built-in demo scenario with fresh random secrets)")
	host := fs.String("host", "127.0.0.1", "address every front end listens on (ports are chosen by the kernel)")
	verbose := fs.Bool("v", false, "log at debug level")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: inkorg emulator --dir DIR [--scenario FILE] [--host 127.0.0.1] [-v]")
		fmt.Fprintln(stderr, "Runs a local Microsoft Entra ID + Exchange Online (IMAP, SMTP) until interrupted;")
		fmt.Fprintln(stderr, "DIR/emulator.json tells clients where everything listens and which credentials work.")
		fmt.Fprintln(stderr, "\nExample:\n  inkorg emulator --dir ./emu\n  inkorg doctor --account m2m@contoso.example --cloud ./emu/emulator.json\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "inkorg emulator: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	if *dir == "" {
		fmt.Fprintln(stderr, "inkorg emulator: --dir is required")
		fs.Usage()
		return 2
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	emu, err := emulator.New(emulator.Config{Dir: *dir, ScenarioFile: *scenarioFile, Host: *host, Logger: logger})
	if err != nil {
		fmt.Fprintf(stderr, "inkorg emulator: %v\n", err)
		return 1
	}
	if err := emu.Start(ctx); err != nil {
		fmt.Fprintf(stderr, "inkorg emulator: %v\n", err)
		return 1
	}
	info := emu.Info()
	fmt.Fprintf(stdout, "emulator ready: %s\n", emu.InfoFile())
	fmt.Fprintf(stdout, "  authority %s/%s\n  imap      %s (implicit TLS)\n  smtp      %s (STARTTLS)\n  admin     %s\n  CA        %s\n",
		info.Authority, info.TenantID, info.IMAP, info.SMTP, info.Admin, info.CAFile)
	<-ctx.Done()
	if err := emu.Close(); err != nil {
		fmt.Fprintf(stderr, "inkorg emulator: close: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, "emulator stopped")
	return 0
}
