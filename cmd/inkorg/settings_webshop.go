package main

import (
	"fmt"

	"inkorg/internal/settings"
	"inkorg/internal/store"
)

const webshopSetUsage = `usage: inkorg settings webshop set --email-method according-to-user-settings|none [--db …]

Webshop – Administration: with according-to-user-settings the webshop's mail goes out with the
effective settings of the user WEBSHOP.

Example:
  inkorg settings webshop set --email-method according-to-user-settings
`

func webshopSet(e *env, args []string) error {
	f := newFlags(e, "settings webshop set", webshopSetUsage)
	db := dbFlag(f)
	method := f.String("email-method", "", "according-to-user-settings, or none")
	if err := f.parse(args); err != nil {
		return err
	}
	if !f.given()["email-method"] {
		return f.usageErr("--email-method is required")
	}
	w := settings.Webshop{EmailMethod: settings.WebshopMethod(*method)}
	if *method == "none" {
		w.EmailMethod = settings.WebshopNotSet
	}
	if ps := settings.CheckWebshop(w); ps.HasErrors() {
		return refuse(e, "Webshop – Administration", ps)
	}
	st, err := openStore(e, *db, false)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.PutWebshop(e.ctx, w, e.actor); err != nil {
		return err
	}
	return afterSave(e, st, "Webshop – Administration")
}

const webshopShowUsage = `usage: inkorg settings webshop show [--json] [--db …]

Shows the webshop's e-mail method and, under according-to-user-settings, the effective settings of
the user WEBSHOP that its mail goes out with.

Example:
  inkorg settings webshop show
`

func webshopShow(e *env, args []string) error {
	st, asJSON, err := openToShow(e, "settings webshop show", webshopShowUsage, args)
	if err != nil {
		return err
	}
	defer st.Close()
	c, err := st.Config(e.ctx)
	if err != nil {
		return err
	}
	w := settings.ResolveWebshop(c)
	if asJSON {
		return printJSON(e, w)
	}
	if w.User == nil {
		fmt.Fprintln(e.stdout, "Webshop – Administration: E-mail method not set (the webshop sends no mail through inkorg).")
		return nil
	}
	fmt.Fprintln(e.stdout, "Webshop – Administration: E-mail method according to user settings (according-to-user-settings)")
	printEffectiveUser(newTable(e, "The webshop's mail goes out with the effective settings of WEBSHOP:"), *w.User)
	return nil
}

const validateUsage = `usage: inkorg settings validate [--json] [--db …]

Checks every procedure's settings together and lists every problem at once, each with its field and
what to do. Exit 1 when there is an error; warnings (a client secret expiring soon) alone exit 0.

Example:
  inkorg settings validate || echo "fix the errors above"
`

func validateCmd(e *env, args []string) error {
	st, asJSON, err := openToShow(e, "settings validate", validateUsage, args)
	if err != nil {
		return err
	}
	defer st.Close()
	c, err := st.Config(e.ctx)
	if err != nil {
		return err
	}
	ps := settings.Validate(c, settings.DateOf(e.now()))
	if asJSON {
		if ps == nil {
			ps = settings.Problems{}
		}
		if err := printJSON(e, struct {
			OK       bool              `json:"ok"`
			Problems settings.Problems `json:"problems"`
		}{!ps.HasErrors(), ps}); err != nil {
			return err
		}
	} else {
		for _, p := range ps {
			fmt.Fprintf(e.stdout, "%s: %s: %s\n", p.Severity, p.Path, p.Message)
		}
		switch errs, warns := len(ps.Errors()), len(ps.Warnings()); {
		case errs == 0 && warns == 0:
			fmt.Fprintln(e.stdout, "The settings are complete and valid.")
		default:
			fmt.Fprintf(e.stdout, "%s, %s.\n", plural(errs, "error"), plural(warns, "warning"))
		}
	}
	if ps.HasErrors() {
		return problemsError{}
	}
	return nil
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

const auditUsage = `usage: inkorg settings audit [--limit N] [--json] [--db …]

Shows the newest settings changes first: when, who, which field, old → new. Secrets show only as
"set", "not set" or "changed".

Example:
  inkorg settings audit --limit 20
`

func auditCmd(e *env, args []string) error {
	f := newFlags(e, "settings audit", auditUsage)
	db := dbFlag(f)
	limit := f.Int("limit", 50, "how many changes to show")
	asJSON := f.Bool("json", false, "print JSON")
	if err := f.parse(args); err != nil {
		return err
	}
	if *limit < 1 {
		return f.usageErr("--limit must be at least 1")
	}
	st, err := openStore(e, *db, true)
	if err != nil {
		return err
	}
	defer st.Close()
	es, err := st.Audit(e.ctx, *limit)
	if err != nil {
		return err
	}
	if *asJSON {
		if es == nil {
			es = []store.AuditEntry{}
		}
		return printJSON(e, es)
	}
	t := newTable(e, "Settings changes, newest first")
	for _, a := range es {
		fmt.Fprintf(t.w, "  %s\t%s\t%s.%s\t%q → %q\n", a.At.Local().Format("2006-01-02 15:04:05"), a.Actor, a.Entity, a.Field, a.Old, a.New)
	}
	return t.flush()
}
