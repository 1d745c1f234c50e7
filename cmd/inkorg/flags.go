package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

var errHelp = errors.New("help shown")

// cmdFlags is a command's flag set with its usage text; --help prints both and exits 0, a bad flag
// gives the usage and exit 2.
type cmdFlags struct {
	*flag.FlagSet
	usage string
	e     *env
}

func newFlags(e *env, name, usage string) *cmdFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &cmdFlags{FlagSet: fs, usage: usage, e: e}
}

func (f *cmdFlags) usageErr(format string, args ...any) error {
	return usagef(f.usage, format, args...)
}

// parse parses flags and refuses positional arguments.
func (f *cmdFlags) parse(args []string) error {
	if err := f.parseAny(args); err != nil {
		return err
	}
	if f.NArg() > 0 {
		return f.usageErr("unexpected argument %q", f.Arg(0))
	}
	return nil
}

func (f *cmdFlags) parseAny(args []string) error {
	err := f.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		var b strings.Builder
		b.WriteString(f.usage)
		b.WriteString("\nFlags:\n")
		f.SetOutput(&b)
		f.PrintDefaults()
		f.SetOutput(io.Discard)
		fmt.Fprint(f.e.stdout, b.String())
		return errHelp
	}
	if err != nil {
		return f.usageErr("%v", err)
	}
	return nil
}

// parseNamed parses "NAME [flags]" or "[flags] NAME" and returns NAME.
func (f *cmdFlags) parseNamed(args []string, what string) (string, error) {
	var name string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	if err := f.parseAny(args); err != nil {
		return "", err
	}
	rest := f.Args()
	if name == "" && len(rest) > 0 {
		name, rest = rest[0], rest[1:]
	}
	if name == "" {
		return "", f.usageErr("missing %s", what)
	}
	if len(rest) > 0 {
		return "", f.usageErr("unexpected argument %q", rest[0])
	}
	return name, nil
}

// given reports which flags appeared on the command line.
func (f *cmdFlags) given() map[string]bool {
	m := map[string]bool{}
	f.Visit(func(fl *flag.Flag) { m[fl.Name] = true })
	return m
}

// nothingToSet reports whether no flag but --db appeared: a set command given nothing to change.
func (f *cmdFlags) nothingToSet() bool {
	g := f.given()
	delete(g, "db")
	return len(g) == 0
}

// action is one subcommand of a command group (token create, admin list…).
type action struct {
	name string
	run  func(*env, []string) error
}

// dispatchActions runs the action args[0] names; --help prints the group's usage, anything else is a
// usage error naming the actions.
func dispatchActions(e *env, group, usage string, args []string, actions ...action) error {
	names := make([]string, len(actions))
	for i, a := range actions {
		names[i] = a.name
	}
	list := strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
	if len(args) == 0 {
		return usagef(usage, "missing action: %s", list)
	}
	for _, a := range actions {
		if a.name == args[0] {
			return a.run(e, args[1:])
		}
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(e.stdout, usage)
		return errHelp
	}
	return usagef(usage, "unknown %s command %q", group, args[0])
}
