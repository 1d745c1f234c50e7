package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"inkorg/internal/settings"
	"inkorg/internal/store"
)

const settingsUsage = `usage: inkorg settings PROCEDURE ACTION [ARGS]

The e-mail settings, in the procedures of the ERP's help page:
  settings system set|show                     System settings
  settings user set|show|list|remove           Users: per-user e-mail settings (and the user WEBSHOP)
  settings incoming add|set|list|show|remove   Settings for incoming e-mail: the e-mail accounts
  settings webshop set|show                    Webshop – Administration
  settings validate                            every problem across the procedures at once
  settings audit                               who changed which setting when

Secrets are read from a file or standard input (--client-secret-file -), never from the command line.
All commands take --db (default $INKORG_DB, else ./inkorg.db).
Exit codes: 0 done, 1 refused or problems found, 2 usage error.

Example:
  inkorg settings system show
  inkorg settings incoming add --address m2m@contoso.com --type monitor-to-monitor
  inkorg settings validate
`

func cmdSettings(e *env, args []string) error {
	if len(args) == 0 {
		return usagef(settingsUsage, "missing procedure")
	}
	proc, rest := args[0], args[1:]
	switch proc {
	case "validate":
		return validateCmd(e, rest)
	case "audit":
		return auditCmd(e, rest)
	}
	action := ""
	if len(rest) > 0 {
		action, rest = rest[0], rest[1:]
	}
	switch proc + " " + action {
	case "system set":
		return systemSet(e, rest)
	case "system show":
		return systemShow(e, rest)
	case "user set":
		return userSet(e, rest)
	case "user show":
		return userShow(e, rest)
	case "user list":
		return userList(e, rest)
	case "user remove":
		return userRemove(e, rest)
	case "incoming add":
		return incomingAdd(e, rest)
	case "incoming set":
		return incomingSet(e, rest)
	case "incoming list":
		return incomingList(e, rest)
	case "incoming show":
		return incomingShow(e, rest)
	case "incoming remove":
		return incomingRemove(e, rest)
	case "webshop set":
		return webshopSet(e, rest)
	case "webshop show":
		return webshopShow(e, rest)
	}
	if proc == "-h" || proc == "--help" || proc == "help" || action == "-h" || action == "--help" || action == "help" {
		fmt.Fprint(e.stdout, settingsUsage)
		return errHelp
	}
	if action == "" {
		return usagef(settingsUsage, "missing action for %q", proc)
	}
	return usagef(settingsUsage, "unknown settings command %q", proc+" "+action)
}

// readSecret reads a secret from a file, or from standard input for "-". One trailing line break is
// dropped (echo and editors add one); an empty secret is refused.
func readSecret(e *env, flagName, path string) (settings.Secret, error) {
	var b []byte
	var err error
	if path == "-" {
		b, err = io.ReadAll(io.LimitReader(e.stdin, 64<<10))
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return settings.Secret{}, fmt.Errorf("--%s: %w", flagName, err)
	}
	v := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if v == "" {
		return settings.Secret{}, fmt.Errorf("--%s: %s is empty", flagName, map[bool]string{true: "standard input", false: path}[path == "-"])
	}
	return settings.NewSecret(v), nil
}

func readText(flagName, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--%s: %w", flagName, err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

func parseDateFlag(flagName, v string) (settings.Date, error) {
	if v == "" {
		return settings.Date{}, nil
	}
	d, err := settings.ParseDate(v)
	if err != nil {
		return d, fmt.Errorf("--%s: %q is not a date; write it as YYYY-MM-DD, as Entra ID shows it under Certificates & secrets", flagName, v)
	}
	return d, nil
}

// refuse prints the problems that stop a change and returns the exit-1 error.
func refuse(e *env, what string, ps settings.Problems) error {
	fmt.Fprintf(e.stderr, "Not saved: problems with %s:\n", what)
	for _, p := range ps {
		fmt.Fprintf(e.stderr, "  %s: %s\n", p.Path, p.Message)
	}
	return problemsError{}
}

// afterSave reports what is still incomplete across the procedures, as warnings.
func afterSave(e *env, st store.Store, what string) error {
	fmt.Fprintf(e.stdout, "Saved %s.\n", what)
	c, err := st.Config(e.ctx)
	if err != nil {
		return err
	}
	ps := settings.Validate(c, settings.DateOf(e.now()))
	if len(ps) > 0 {
		fmt.Fprintf(e.stderr, "Still to do before mail can flow (\"inkorg settings validate\" lists these again):\n")
		for _, p := range ps {
			kind := "to do"
			if p.Severity == settings.SeverityWarning {
				kind = "warning"
			}
			fmt.Fprintf(e.stderr, "  %s: %s: %s\n", kind, p.Path, p.Message)
		}
	}
	return nil
}

// openToShow parses the flags of a command that shows what is stored (--db and --json, no arguments)
// and opens the store, which must already exist. The caller closes it.
func openToShow(e *env, name, usage string, args []string) (st store.Store, asJSON bool, err error) {
	f := newFlags(e, name, usage)
	db := dbFlag(f)
	j := f.Bool("json", false, "print JSON")
	if err := f.parse(args); err != nil {
		return nil, false, err
	}
	st, err = openStore(e, *db, true)
	return st, *j, err
}

// openNamed parses "NAME [--db …]" for a command that changes one named record (what names it in
// errors: "operator NAME") and opens the store to write.
func openNamed(e *env, cmd, usage, what string, args []string) (st store.Store, name string, err error) {
	f := newFlags(e, cmd, usage)
	db := dbFlag(f)
	if name, err = f.parseNamed(args, what); err != nil {
		return nil, "", err
	}
	st, err = openStore(e, *db, true)
	return st, name, err
}

func printJSON(e *env, v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// --- System settings ---------------------------------------------------------------------------

const systemSetUsage = `usage: inkorg settings system set [flags]

Changes the system settings; flags not given keep their value. A value the chosen e-mail method or
authentication flow does not use is refused, and nothing is saved.

Example:
  inkorg settings system set --email-method exchange-online \
    --client-id 6f1d3c2a-9b7e-4e2f-8a11-3c5d7e9f0a21 --tenant-id contoso.onmicrosoft.com \
    --auth-flow client-secret --client-secret-file secret.txt --client-secret-expires 2027-06-30
`

func systemSet(e *env, args []string) error {
	f := newFlags(e, "settings system set", systemSetUsage)
	db := dbFlag(f)
	method := f.String("email-method", "", "E-mail method: outlook-client, exchange-server, smtp or exchange-online")
	clientID := f.String("client-id", "", "Application (client) ID (a GUID)")
	tenantID := f.String("tenant-id", "", "Directory (tenant) ID (a GUID or a verified domain)")
	flow := f.String("auth-flow", "", "Authentication flow: client-secret, username-password or certificate")
	secretFile := f.String("client-secret-file", "", "a file holding the client secret's Value (- for standard input)")
	expires := f.String("client-secret-expires", "", "the client secret's expiry date, YYYY-MM-DD")
	server := f.String("server-address", "", "Server address (exchange-server, smtp)")
	port := f.Int("port", 0, "Port (0 = the standard port)")
	useSSL := f.Bool("use-ssl", false, "Use SSL")
	username := f.String("username", "", "User name (exchange-server, smtp)")
	passwordFile := f.String("password-file", "", "a file holding the Password (- for standard input)")
	certFile := f.String("client-certificate-file", "", "the certificate flow: the certificate uploaded to the app registration (PEM)")
	keyFile := f.String("client-key-file", "", "the certificate flow: the certificate's private key (PEM, unencrypted; - for standard input)")
	clear := f.String("clear", "", "comma-separated values to remove: client-secret, client-certificate (with its key), password")
	sendTransport := f.String("send-transport", "", "Send with (exchange-online): smtp (SMTP with XOAUTH2, the default) or graph (Microsoft Graph sendMail)")
	if err := f.parse(args); err != nil {
		return err
	}
	if f.nothingToSet() {
		return f.usageErr("nothing to set")
	}
	g := f.given()
	st, err := openStore(e, *db, false)
	if err != nil {
		return err
	}
	defer st.Close()
	sys, err := st.System(e.ctx)
	if err != nil {
		return err
	}
	var changed []string
	set := func(flagName, field string, apply func() error) error {
		if !g[flagName] {
			return nil
		}
		changed = append(changed, field)
		return apply()
	}
	for _, s := range []struct {
		flag, field string
		apply       func() error
	}{
		{"email-method", "emailMethod", func() error { sys.EmailMethod = settings.EmailMethod(*method); return nil }},
		{"client-id", "clientId", func() error { sys.ClientID = strings.TrimSpace(*clientID); return nil }},
		{"tenant-id", "tenantId", func() error { sys.TenantID = strings.TrimSpace(*tenantID); return nil }},
		{"auth-flow", "authFlow", func() error { sys.AuthFlow = settings.AuthFlow(*flow); return nil }},
		{"send-transport", "sendTransport", func() error {
			sys.SendTransport = settings.SendTransport(strings.TrimSpace(*sendTransport))
			return nil
		}},
		{"client-secret-file", "clientSecret", func() (err error) {
			sys.ClientSecret, err = readSecret(e, "client-secret-file", *secretFile)
			return err
		}},
		{"client-secret-expires", "clientSecretExpires", func() (err error) {
			sys.ClientSecretExpires, err = parseDateFlag("client-secret-expires", *expires)
			return err
		}},
		{"server-address", "serverAddress", func() error { sys.ServerAddress = strings.TrimSpace(*server); return nil }},
		{"port", "port", func() error { sys.Port = *port; return nil }},
		{"use-ssl", "useSsl", func() error { sys.UseSSL = *useSSL; return nil }},
		{"username", "username", func() error { sys.Username = *username; return nil }},
		{"password-file", "password", func() (err error) {
			sys.Password, err = readSecret(e, "password-file", *passwordFile)
			return err
		}},
		{"client-certificate-file", "clientCertificate", func() (err error) {
			sys.ClientCertificate, err = readText("client-certificate-file", *certFile)
			return err
		}},
		{"client-key-file", "clientKey", func() (err error) {
			sys.ClientKey, err = readSecret(e, "client-key-file", *keyFile)
			return err
		}},
	} {
		if err := set(s.flag, s.field, s.apply); err != nil {
			return err
		}
	}
	if g["clear"] {
		for _, n := range strings.Split(*clear, ",") {
			switch strings.TrimSpace(n) {
			case "client-secret":
				sys.ClientSecret, sys.ClientSecretExpires = settings.Secret{}, settings.Date{}
			case "client-certificate", "client-key":
				sys.ClientCertificate, sys.ClientKey = "", settings.Secret{}
			case "password":
				sys.Password = settings.Secret{}
			default:
				return f.usageErr("--clear: unknown value %q; use client-secret, client-certificate or password", n)
			}
		}
	}
	if ps := settings.CheckSystem(sys, changed); ps.HasErrors() {
		return refuse(e, "the system settings", ps.Errors())
	}
	if err := st.PutSystem(e.ctx, sys, e.actor); err != nil {
		return err
	}
	return afterSave(e, st, "the system settings")
}

const systemShowUsage = `usage: inkorg settings system show [--json] [--db …]

Shows the system settings. Secrets show only as "set" or "not set".

Example:
  inkorg settings system show --json --db /var/lib/inkorg/inkorg.db
`

func systemShow(e *env, args []string) error {
	st, asJSON, err := openToShow(e, "settings system show", systemShowUsage, args)
	if err != nil {
		return err
	}
	defer st.Close()
	s, err := st.System(e.ctx)
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(e, s)
	}
	t := newTable(e, "System settings")
	t.row("emailMethod", methodText(s.EmailMethod), "", true)
	for _, r := range []struct {
		field, value string
	}{
		{"serverAddress", s.ServerAddress}, {"port", portText(s.Port)}, {"useSsl", yesNo(s.UseSSL)},
		{"username", s.Username}, {"password", s.Password.State()},
		{"clientId", s.ClientID}, {"tenantId", s.TenantID}, {"authFlow", flowText(s.AuthFlow)},
		{"clientSecret", s.ClientSecret.State()}, {"clientSecretExpires", s.ClientSecretExpires.String()},
		{"clientCertificate", certText(s.ClientCertificate)}, {"clientKey", s.ClientKey.State()},
		{"sendTransport", sendTransportText(s.SendTransport)},
	} {
		t.row(r.field, r.value, "", settings.FieldApplies(s.EmailMethod, s.AuthFlow, r.field))
	}
	return t.flush()
}

// --- output helpers ----------------------------------------------------------------------------

func sendTransportText(t settings.SendTransport) string {
	if t == settings.SendDefault {
		return "smtp (default) — " + t.Label()
	}
	return string(t) + " — " + t.Label()
}

type table struct {
	e *env
	w *tabwriter.Writer
}

func newTable(e *env, title string) *table {
	fmt.Fprintln(e.stdout, title)
	return &table{e: e, w: tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)}
}

// row prints "  Label  value  (source)"; a field that does not apply shows as such.
func (t *table) row(field, value string, source settings.Source, applies bool) {
	if !applies {
		fmt.Fprintf(t.w, "  %s\t—\t(not used by this e-mail method or flow)\n", settings.FieldLabel(field))
		return
	}
	if value == "" {
		value = "(empty)"
	}
	value = strings.ReplaceAll(value, "\n", " ⏎ ")
	if source != "" {
		fmt.Fprintf(t.w, "  %s\t%s\t(%s)\n", settings.FieldLabel(field), value, source)
	} else {
		fmt.Fprintf(t.w, "  %s\t%s\n", settings.FieldLabel(field), value)
	}
}

func (t *table) flush() error { return t.w.Flush() }

func methodText(m settings.EmailMethod) string {
	if m == "" {
		return ""
	}
	return fmt.Sprintf("%s (%s)", m.Label(), m)
}

func flowText(f settings.AuthFlow) string {
	if f == "" {
		return ""
	}
	return fmt.Sprintf("%s (%s)", f.Label(), f)
}

func portText(p int) string {
	if p == 0 {
		return "0 (the standard port)"
	}
	return fmt.Sprint(p)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func notFound(err error, what string) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%s: not found", what)
	}
	return err
}

func certText(pemText string) string {
	if pemText == "" {
		return ""
	}
	c, _, err := settings.ParseCertificate(pemText)
	if err != nil {
		return "unreadable: " + err.Error()
	}
	return c.String()
}
