package main

import (
	"log/slog"

	"inkorg/internal/cloud"
	"inkorg/internal/doctor"
	"inkorg/internal/entra"
)

const doctorUsage = `usage: inkorg doctor (--account ADDRESS | --user NAME | --webshop) [--cloud FILE] [--send-to ADDRESS] [--json] [--db …]

Checks, one step at a time, that mail can flow: settings valid → token → claims → connect/TLS →
authenticate → select INBOX (an incoming account) or test send (a user or the webshop, with --send-to).
For a failure it prints what is wrong and what the tenant administrator must do, with the real IDs.
Exit 0 when every step passes, 1 otherwise.

Example:
  inkorg doctor --account m2m@contoso.com
  inkorg doctor --webshop --send-to me@contoso.com --cloud emulator.json
`

// cloudFlag adds --cloud to a command.
func cloudFlag(f *cmdFlags) *string {
	return f.String("cloud", "", "a cloud file (emulator.json format) with the Entra ID, IMAP, SMTP and Graph addresses and their CA (default $INKORG_CLOUD, else Microsoft's global cloud)")
}

func loadCloud(e *env, flagValue string) (cloud.Endpoints, error) {
	p := flagValue
	if p == "" {
		p = e.getenv("INKORG_CLOUD")
	}
	if p == "" {
		return cloud.Global(), nil
	}
	return cloud.Load(p)
}

func cmdDoctor(e *env, args []string) error {
	f := newFlags(e, "doctor", doctorUsage)
	db := dbFlag(f)
	cloudFile := cloudFlag(f)
	account := f.String("account", "", "check the incoming e-mail account with this address")
	user := f.String("user", "", "check the mail of this user")
	webshop := f.Bool("webshop", false, "check the webshop's mail (the user WEBSHOP's settings)")
	sendTo := f.String("send-to", "", "with --user or --webshop: send a test message to this address")
	asJSON := f.Bool("json", false, "print JSON")
	if err := f.parse(args); err != nil {
		return err
	}
	n := 0
	for _, set := range []bool{*account != "", *user != "", *webshop} {
		if set {
			n++
		}
	}
	if n != 1 {
		return f.usageErr("give exactly one of --account, --user and --webshop")
	}
	if *sendTo != "" && *account != "" {
		return f.usageErr("--send-to goes with --user or --webshop")
	}
	cl, err := loadCloud(e, *cloudFile)
	if err != nil {
		return err
	}
	st, err := openStore(e, *db, true)
	if err != nil {
		return err
	}
	defer st.Close()
	c, err := st.Config(e.ctx)
	if err != nil {
		return err
	}
	log := slog.New(slog.DiscardHandler)
	d := &doctor.Doctor{Tokens: entra.New(entra.Config{Cloud: cl, Logger: log, Clock: e.now}), Cloud: cl, Clock: e.now, Logger: log}
	var rep doctor.Report
	switch {
	case *account != "":
		rep = d.CheckAccount(e.ctx, c, *account)
	case *user != "":
		rep = d.CheckUser(e.ctx, c, *user, *sendTo)
	default:
		rep = d.CheckWebshop(e.ctx, c, *sendTo)
	}
	if *asJSON {
		if err := printJSON(e, rep); err != nil {
			return err
		}
	} else {
		rep.WriteText(e.stdout)
	}
	if !rep.OK {
		return problemsError{}
	}
	return nil
}
