package main

import (
	"fmt"
	"strings"
	"time"

	"inkorg/internal/settings"
)

const incomingAddUsage = `usage: inkorg settings incoming add --address A --type T [flags]

Registers an incoming e-mail account (a mailbox inkorg reads). Types: monitor-to-monitor,
supplier-invoice, customer-order, purchase-order, general. The Exchange Online values (client ID,
tenant ID, flow, client secret) are inherited from the system settings unless given here.

Example:
  inkorg settings incoming add --address m2m@contoso.com --type monitor-to-monitor --available-to SALES,PURCHASE
`

const incomingSetUsage = `usage: inkorg settings incoming set ADDRESS [flags]

Changes an incoming e-mail account; flags not given keep their value. --inherit FIELD goes back to the
system setting for client-id, tenant-id, auth-flow, client-secret (with its expiry).

Example:
  inkorg settings incoming set m2m@contoso.com --processed-folder ERP/Done --poll-interval 2m
  inkorg settings incoming set m2m@contoso.com --inherit client-secret
`

// accountFlags are the flags shared by incoming add and incoming set.
type accountFlags struct {
	address, typ, username, passwordFile, available *string
	clientID, tenantID, flow, secretFile, expires   *string
	inherit                                         *string
	folder, processed, failed                       *string
	leave                                           *bool
	poll                                            *time.Duration
}

func newAccountFlags(f *cmdFlags, withInherit bool) *accountFlags {
	a := &accountFlags{
		address:      f.String("address", "", "E-mail: the mailbox's address"),
		typ:          f.String("type", "", "Type: monitor-to-monitor, supplier-invoice, customer-order, purchase-order or general"),
		username:     f.String("exchange-username", "", "User name (Exchange) (not used with the flow client-secret)"),
		passwordFile: f.String("exchange-password-file", "", "a file holding the Password (Exchange) (- for standard input)"),
		available:    f.String("available-to", "", "comma-separated users and roles that may use the account (empty = all users)"),
		clientID:     f.String("client-id", "", "this account's own Application (client) ID (default: the system's)"),
		tenantID:     f.String("tenant-id", "", "this account's own Directory (tenant) ID (default: the system's)"),
		flow:         f.String("auth-flow", "", "this account's own authentication flow (default: the system's)"),
		secretFile:   f.String("client-secret-file", "", "a file holding this account's own client secret Value (- for standard input)"),
		expires:      f.String("client-secret-expires", "", "the expiry date of this account's own client secret, YYYY-MM-DD"),
		folder:       f.String("folder", "", "the folder read (default INBOX)"),
		processed:    f.String("processed-folder", "", "where stored messages are moved (default "+settings.DefaultProcessedFolder+")"),
		failed:       f.String("failed-folder", "", "where messages that cannot be read are moved (default "+settings.DefaultFailedFolder+")"),
		leave:        f.Bool("leave-in-place", false, "do not move messages after storing them"),
		poll:         f.Duration("poll-interval", 0, "how often to look for new mail when the server has no IDLE (default 1m, at least 10s)"),
	}
	if withInherit {
		a.inherit = f.String("inherit", "", "comma-separated fields to inherit from the system settings again: client-id, tenant-id, auth-flow, client-secret")
	}
	return a
}

// apply applies the given flags to a and returns the changed field names.
func (af *accountFlags) apply(e *env, f *cmdFlags, a *settings.IncomingAccount) ([]string, error) {
	g := f.given()
	var changed []string
	if g["address"] {
		changed, a.Address = append(changed, "address"), strings.TrimSpace(*af.address)
	}
	if g["type"] {
		changed, a.Type = append(changed, "type"), settings.IncomingType(*af.typ)
	}
	if g["exchange-username"] {
		changed, a.ExchangeUsername = append(changed, "exchangeUsername"), strings.TrimSpace(*af.username)
	}
	if g["exchange-password-file"] {
		pw, err := readSecret(e, "exchange-password-file", *af.passwordFile)
		if err != nil {
			return nil, err
		}
		changed, a.ExchangePassword = append(changed, "exchangePassword"), pw
	}
	if g["available-to"] {
		a.AvailableTo = []string{}
		for _, n := range strings.Split(*af.available, ",") {
			if n = strings.TrimSpace(n); n != "" {
				a.AvailableTo = append(a.AvailableTo, n)
			}
		}
		changed = append(changed, "availableTo")
	}
	if g["client-id"] {
		changed, a.ClientID = append(changed, "clientId"), settings.Ptr(strings.TrimSpace(*af.clientID))
	}
	if g["tenant-id"] {
		changed, a.TenantID = append(changed, "tenantId"), settings.Ptr(strings.TrimSpace(*af.tenantID))
	}
	if g["auth-flow"] {
		changed, a.AuthFlow = append(changed, "authFlow"), settings.Ptr(settings.AuthFlow(*af.flow))
	}
	if g["client-secret-file"] {
		s, err := readSecret(e, "client-secret-file", *af.secretFile)
		if err != nil {
			return nil, err
		}
		changed, a.ClientSecret = append(changed, "clientSecret"), &s
	}
	if g["client-secret-expires"] {
		d, err := parseDateFlag("client-secret-expires", *af.expires)
		if err != nil {
			return nil, err
		}
		changed, a.ClientSecretExpires = append(changed, "clientSecretExpires"), &d
	}
	if g["folder"] {
		changed, a.Folder = append(changed, "folder"), strings.TrimSpace(*af.folder)
	}
	if g["processed-folder"] {
		changed, a.ProcessedFolder = append(changed, "processedFolder"), strings.TrimSpace(*af.processed)
	}
	if g["failed-folder"] {
		changed, a.FailedFolder = append(changed, "failedFolder"), strings.TrimSpace(*af.failed)
	}
	if g["leave-in-place"] {
		changed, a.LeaveInPlace = append(changed, "leaveInPlace"), *af.leave
	}
	if g["poll-interval"] {
		changed, a.PollInterval = append(changed, "pollInterval"), *af.poll
	}
	if af.inherit != nil && g["inherit"] {
		for _, n := range strings.Split(*af.inherit, ",") {
			switch strings.TrimSpace(n) {
			case "client-id":
				a.ClientID = nil
			case "tenant-id":
				a.TenantID = nil
			case "auth-flow":
				a.AuthFlow = nil
			case "client-secret", "client-secret-expires":
				a.ClientSecret, a.ClientSecretExpires = nil, nil
			default:
				return nil, f.usageErr("--inherit: unknown field %q; use client-id, tenant-id, auth-flow or client-secret", n)
			}
		}
	}
	return changed, nil
}

func incomingAdd(e *env, args []string) error {
	f := newFlags(e, "settings incoming add", incomingAddUsage)
	db := dbFlag(f)
	af := newAccountFlags(f, false)
	if err := f.parse(args); err != nil {
		return err
	}
	g := f.given()
	if !g["address"] || !g["type"] {
		return f.usageErr("--address and --type are required")
	}
	st, err := openStore(e, *db, false)
	if err != nil {
		return err
	}
	defer st.Close()
	var a settings.IncomingAccount
	changed, err := af.apply(e, f, &a)
	if err != nil {
		return err
	}
	sys, err := st.System(e.ctx)
	if err != nil {
		return err
	}
	if ps := settings.CheckAccount(sys, a, changed); ps.HasErrors() {
		return refuse(e, "the incoming e-mail account "+a.Address, ps.Errors())
	}
	if _, err := st.IncomingAccount(e.ctx, a.Address); err == nil {
		return refuse(e, "the incoming e-mail account "+a.Address, settings.Problems{{Path: settings.AccountPath(a.Address) + "address",
			Message: "an account with this address is already registered; change it with \"inkorg settings incoming set " + a.Address + "\""}})
	}
	if _, err := st.AddIncomingAccount(e.ctx, a, e.actor); err != nil {
		return err
	}
	return afterSave(e, st, "the incoming e-mail account "+a.Address)
}

func incomingSet(e *env, args []string) error {
	f := newFlags(e, "settings incoming set", incomingSetUsage)
	db := dbFlag(f)
	af := newAccountFlags(f, true)
	address, err := f.parseNamed(args, "account ADDRESS")
	if err != nil {
		return err
	}
	if f.nothingToSet() {
		return f.usageErr("nothing to set")
	}
	st, err := openStore(e, *db, true)
	if err != nil {
		return err
	}
	defer st.Close()
	a, err := st.IncomingAccount(e.ctx, address)
	if err != nil {
		return notFound(err, "incoming e-mail account "+address)
	}
	changed, err := af.apply(e, f, &a)
	if err != nil {
		return err
	}
	sys, err := st.System(e.ctx)
	if err != nil {
		return err
	}
	if ps := settings.CheckAccount(sys, a, changed); ps.HasErrors() {
		return refuse(e, "the incoming e-mail account "+a.Address, ps.Errors())
	}
	if err := st.PutIncomingAccount(e.ctx, a, e.actor); err != nil {
		return err
	}
	return afterSave(e, st, "the incoming e-mail account "+a.Address)
}

const incomingListUsage = `usage: inkorg settings incoming list [--json] [--db …]

Lists the incoming e-mail accounts. --json gives each account's effective settings with their sources.

Example:
  inkorg settings incoming list
`

func incomingList(e *env, args []string) error {
	st, asJSON, err := openToShow(e, "settings incoming list", incomingListUsage, args)
	if err != nil {
		return err
	}
	defer st.Close()
	c, err := st.Config(e.ctx)
	if err != nil {
		return err
	}
	effective := make([]settings.EffectiveAccount, 0, len(c.Accounts))
	for _, a := range c.Accounts {
		effective = append(effective, settings.ResolveAccount(c.System, a))
	}
	if asJSON {
		return printJSON(e, effective)
	}
	if len(effective) == 0 {
		fmt.Fprintln(e.stdout, "No incoming e-mail accounts. Add one with \"inkorg settings incoming add --address A --type T\".")
		return nil
	}
	t := newTable(e, "Incoming e-mail accounts")
	fmt.Fprintf(t.w, "  ID\tE-mail\tType\tAvailable\tOwn values\n")
	for _, a := range effective {
		avail := strings.Join(a.AvailableTo.Value, ", ")
		if avail == "" {
			avail = "all users"
		}
		fmt.Fprintf(t.w, "  %d\t%s\t%s\t%s\t%s\n", a.ID, a.Address.Value, a.Type.Value, avail, ownValues(a))
	}
	return t.flush()
}

// ownValues names the Exchange Online values an account overrides.
func ownValues(a settings.EffectiveAccount) string {
	var own []string
	for _, f := range []struct {
		name string
		src  settings.Source
	}{{"client ID", a.ClientID.Source}, {"tenant ID", a.TenantID.Source}, {"flow", a.AuthFlow.Source}, {"client secret", a.ClientSecret.Source}} {
		if f.src == settings.SourceAccount {
			own = append(own, f.name)
		}
	}
	if len(own) == 0 {
		return "none: all from the system settings"
	}
	return strings.Join(own, ", ")
}

const incomingShowUsage = `usage: inkorg settings incoming show ADDRESS [--json] [--db …]

Shows an incoming e-mail account's effective settings, each with where it comes from.

Example:
  inkorg settings incoming show m2m@contoso.com --json
`

func incomingShow(e *env, args []string) error {
	f := newFlags(e, "settings incoming show", incomingShowUsage)
	db := dbFlag(f)
	asJSON := f.Bool("json", false, "print JSON")
	address, err := f.parseNamed(args, "account ADDRESS")
	if err != nil {
		return err
	}
	st, err := openStore(e, *db, true)
	if err != nil {
		return err
	}
	defer st.Close()
	a, err := st.IncomingAccount(e.ctx, address)
	if err != nil {
		return notFound(err, "incoming e-mail account "+address)
	}
	sys, err := st.System(e.ctx)
	if err != nil {
		return err
	}
	ea := settings.ResolveAccount(sys, a)
	if *asJSON {
		return printJSON(e, ea)
	}
	t := newTable(e, "Incoming e-mail account "+a.Address)
	t.row("address", ea.Address.Value, ea.Address.Source, true)
	t.row("type", string(ea.Type.Value), ea.Type.Source, true)
	avail := strings.Join(ea.AvailableTo.Value, ", ")
	if avail == "" {
		avail = "all users"
	}
	t.row("availableTo", avail, ea.AvailableTo.Source, true)
	t.row("emailMethod", methodText(ea.EmailMethod.Value), ea.EmailMethod.Source, true)
	printServer(t, ea.Server)
	t.row("exchangeUsername", ea.ExchangeUsername.Value, ea.ExchangeUsername.Source, !ea.ExchangeUsername.NotApplicable)
	t.row("exchangePassword", ea.ExchangePassword.Value.State(), ea.ExchangePassword.Source, !ea.ExchangePassword.NotApplicable)
	printExchange(t, ea.Exchange)
	m := ea.Mailbox
	t.row("folder", m.Folder.Value, m.Folder.Source, true)
	t.row("processedFolder", m.ProcessedFolder.Value, m.ProcessedFolder.Source, !m.ProcessedFolder.NotApplicable)
	t.row("failedFolder", m.FailedFolder.Value, m.FailedFolder.Source, true)
	t.row("leaveInPlace", yesNo(m.LeaveInPlace.Value), m.LeaveInPlace.Source, true)
	t.row("pollInterval", (time.Duration(m.PollSeconds.Value) * time.Second).String(), m.PollSeconds.Source, true)
	return t.flush()
}

const incomingRemoveUsage = `usage: inkorg settings incoming remove ADDRESS [--db …]

Removes an incoming e-mail account.

Example:
  inkorg settings incoming remove m2m@contoso.com
`

func incomingRemove(e *env, args []string) error {
	st, address, err := openNamed(e, "settings incoming remove", incomingRemoveUsage, "account ADDRESS", args)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.RemoveIncomingAccount(e.ctx, address, e.actor); err != nil {
		return notFound(err, "incoming e-mail account "+address)
	}
	return afterSave(e, st, "the removal of the incoming e-mail account "+address)
}
