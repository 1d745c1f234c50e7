// Command inkorg is the e-mail subsystem of an ERP: it reads incoming mail from Microsoft Exchange Online
// (and plain IMAP servers) with OAuth 2.0, stores it durably, hands it to the ERP by type, and sends the
// ERP's mail as the right user. One binary holds the service and its tools:
//
//	inkorg demo                      the emulator plus the service, seeded, working end to end
//	inkorg settings …                the seeds' settings: system, users, incoming accounts, webshop
//	inkorg emulator --dir DIR        a local Entra ID + Exchange Online for tests and demos
//	inkorg version                   the version and commit
//
// Exit codes: 0 success, 1 a problem with the settings or the work, 2 a usage error.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// env is what a command gets from the process: no command reads os.* itself, so tests can run them
// in-process as well as through the built binary.
type env struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
	now    func() time.Time
	actor  string // who is changing settings, for the audit log
}

// usageError is a mistake in the command line: exit 2, with the command's usage.
type usageError struct {
	msg   string
	usage string
}

func (e *usageError) Error() string { return e.msg }

func usagef(usage, format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...), usage: usage}
}

// exitCode is a command's own exit code, its reasons already printed.
type exitCode int

func (c exitCode) Error() string { return fmt.Sprintf("exit %d", int(c)) }

// problemsError means the work was refused or found problems that are already printed: exit 1.
type problemsError struct{}

func (problemsError) Error() string { return "problems found" }

const mainUsage = `usage: inkorg COMMAND [ARGS]

Commands:
  demo       run the emulator and the service, seeded, working end to end
  serve      run the service: incoming mail workers, the ERP's API and webhooks
  settings   show, change and validate the e-mail settings (system, user, incoming, webshop, validate)
  doctor     check step by step that an account, a user or the webshop can reach Exchange
  send       send a message as a user or as the webshop, through the outbox
  token      create, list and revoke the ERP's API bearer tokens
  admin      create, list and remove the operators of the admin web UI
  webhook    set, list and remove the webhook URL of each incoming type
  emulator   run a local Entra ID + Exchange Online emulator
  backup     write a consistent copy of the SQLite database while the service runs
  version    print the version and commit

Run "inkorg COMMAND --help" for a command's flags.

Example:
  inkorg demo
  inkorg serve --help
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	e := &env{ctx: ctx, stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, now: time.Now, actor: cliActor()}
	code := run(e, os.Args[1:])
	stop()
	os.Exit(code)
}

func cliActor() string {
	if u := os.Getenv("USER"); u != "" {
		return "cli:" + u
	}
	return "cli"
}

// run executes one command line and returns the exit code.
func run(e *env, args []string) int { return exitStatus(e, dispatch(e, args)) }

// exitStatus prints what a command's error leaves to say and returns the exit code for it.
func exitStatus(e *env, err error) int {
	var ue *usageError
	var code exitCode
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(e.stderr, "inkorg: %s\n\n%s", ue.msg, ue.usage)
		return 2
	case errors.Is(err, errHelp):
		return 0
	case errors.As(err, &code):
		return int(code)
	case errors.As(err, new(problemsError)):
		return 1
	default:
		fmt.Fprintf(e.stderr, "inkorg: %v\n", err)
		return 1
	}
}

func dispatch(e *env, args []string) error {
	if len(args) == 0 {
		return usagef(mainUsage, "no command given")
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "version":
		return cmdVersion(e, rest)
	case "settings":
		return cmdSettings(e, rest)
	case "demo":
		return cmdDemo(e, rest)
	case "serve":
		return cmdServe(e, rest)
	case "doctor":
		return cmdDoctor(e, rest)
	case "send":
		return cmdSend(e, rest)
	case "token":
		return cmdToken(e, rest)
	case "admin":
		return cmdAdmin(e, rest)
	case "webhook":
		return cmdWebhook(e, rest)
	case "backup":
		return cmdBackup(e, rest)
	case "emulator":
		if code := cmdEmulator(e.ctx, rest, e.stdout, e.stderr); code != 0 {
			return exitCode(code)
		}
		return nil
	case "help", "-h", "--help", "-help":
		fmt.Fprint(e.stdout, mainUsage)
		return nil
	default:
		return usagef(mainUsage, "unknown command %q", cmd)
	}
}
