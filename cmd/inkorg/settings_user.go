package main

import (
	"errors"
	"fmt"
	"strings"

	"inkorg/internal/settings"
	"inkorg/internal/store"
)

const userSetUsage = `usage: inkorg settings user set NAME [flags]

Changes a user's e-mail settings. A field the user sets overrides the system setting; --inherit FIELD
(or --email-method inherit) goes back to the system setting. The user WEBSHOP is the webshop's.

Example:
  inkorg settings user set WEBSHOP --email-method exchange-online --email-address webshop@contoso.com \
    --exchange-username webshop@contoso.com --exchange-password-file - < password.txt
`

// newUser is a user without e-mail settings of its own; the webshop's user is always named WEBSHOP.
func newUser(name string) settings.User {
	if settings.IsWebshopUser(name) {
		return settings.User{Name: settings.WebshopUser}
	}
	return settings.User{Name: name}
}

func userSet(e *env, args []string) error {
	f := newFlags(e, "settings user set", userSetUsage)
	db := dbFlag(f)
	method := f.String("email-method", "", "E-mail method, or inherit")
	address := f.String("email-address", "", "E-mail address")
	username := f.String("exchange-username", "", "User name (Exchange)")
	passwordFile := f.String("exchange-password-file", "", "a file holding the Password (Exchange) (- for standard input)")
	copyTo := f.String("copy-to-self", "", "Send copy to own e-mail address: none, cc or bcc")
	sigFile := f.String("signature-file", "", "a file holding the e-mail signature")
	inherit := f.String("inherit", "", "comma-separated fields to inherit from the system settings again (e.g. email-method,exchange-password)")
	name, err := f.parseNamed(args, "user NAME")
	if err != nil {
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
	u, err := st.User(e.ctx, name)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		u = newUser(strings.TrimSpace(name))
	}
	var changed []string
	if g["email-method"] {
		changed = append(changed, "emailMethod")
		if *method == "inherit" {
			u.EmailMethod = nil
		} else {
			u.EmailMethod = settings.Ptr(settings.EmailMethod(*method))
		}
	}
	if g["email-address"] {
		changed, u.EmailAddress = append(changed, "emailAddress"), settings.Ptr(strings.TrimSpace(*address))
	}
	if g["exchange-username"] {
		changed, u.ExchangeUsername = append(changed, "exchangeUsername"), settings.Ptr(strings.TrimSpace(*username))
	}
	if g["exchange-password-file"] {
		pw, err := readSecret(e, "exchange-password-file", *passwordFile)
		if err != nil {
			return err
		}
		changed, u.ExchangePassword = append(changed, "exchangePassword"), &pw
	}
	if g["copy-to-self"] {
		changed, u.CopyToSelf = append(changed, "copyToSelf"), settings.Ptr(settings.CopyToSelf(*copyTo))
	}
	if g["signature-file"] {
		sig, err := readText("signature-file", *sigFile)
		if err != nil {
			return err
		}
		changed, u.Signature = append(changed, "signature"), &sig
	}
	if g["inherit"] {
		for _, n := range strings.Split(*inherit, ",") {
			switch strings.TrimSpace(n) {
			case "email-method":
				u.EmailMethod = nil
			case "email-address":
				u.EmailAddress = nil
			case "exchange-username":
				u.ExchangeUsername = nil
			case "exchange-password":
				u.ExchangePassword = nil
			case "copy-to-self":
				u.CopyToSelf = nil
			case "signature":
				u.Signature = nil
			default:
				return f.usageErr("--inherit: unknown field %q; use email-method, email-address, exchange-username, exchange-password, copy-to-self or signature", n)
			}
		}
	}
	sys, err := st.System(e.ctx)
	if err != nil {
		return err
	}
	if ps := settings.CheckUser(sys, u, changed); ps.HasErrors() {
		return refuse(e, "the e-mail settings of "+u.Name, ps.Errors())
	}
	if err := st.PutUser(e.ctx, u, e.actor); err != nil {
		return err
	}
	return afterSave(e, st, "the e-mail settings of "+u.Name)
}

const userShowUsage = `usage: inkorg settings user show NAME [--effective] [--json] [--db …]

Shows a user's own e-mail settings, or with --effective the settings the user's mail goes out with:
every field with its value and where it comes from (system, user, default).

Example:
  inkorg settings user show WEBSHOP --effective
`

func userShow(e *env, args []string) error {
	f := newFlags(e, "settings user show", userShowUsage)
	db := dbFlag(f)
	effective := f.Bool("effective", false, "show the effective settings with their sources")
	asJSON := f.Bool("json", false, "print JSON")
	name, err := f.parseNamed(args, "user NAME")
	if err != nil {
		return err
	}
	st, err := openStore(e, *db, true)
	if err != nil {
		return err
	}
	defer st.Close()
	u, err := st.User(e.ctx, name)
	own := err == nil
	if err != nil && !*effective {
		return notFound(err, "user "+name+" has no e-mail settings of its own")
	}
	if !own {
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		u = newUser(name)
	}
	if !*effective {
		if *asJSON {
			return printJSON(e, u)
		}
		t := newTable(e, "E-mail settings of "+u.Name+" (empty = inherited from the system settings)")
		t.row("emailMethod", optText(u.EmailMethod, methodText), "", true)
		t.row("emailAddress", optText(u.EmailAddress, str), "", true)
		t.row("exchangeUsername", optText(u.ExchangeUsername, str), "", true)
		t.row("exchangePassword", optText(u.ExchangePassword, settings.Secret.State), "", true)
		t.row("copyToSelf", optText(u.CopyToSelf, func(c settings.CopyToSelf) string { return string(c) }), "", true)
		t.row("signature", optText(u.Signature, str), "", true)
		return t.flush()
	}
	sys, err := st.System(e.ctx)
	if err != nil {
		return err
	}
	eu := settings.ResolveUser(sys, u)
	if *asJSON {
		return printJSON(e, eu)
	}
	title := "Effective e-mail settings of " + u.Name
	if !own {
		title += " (no settings of its own: all inherited)"
	}
	printEffectiveUser(newTable(e, title), eu)
	return nil
}

func printEffectiveUser(t *table, eu settings.EffectiveUser) {
	t.row("emailMethod", methodText(eu.EmailMethod.Value), eu.EmailMethod.Source, true)
	t.row("emailAddress", eu.EmailAddress.Value, eu.EmailAddress.Source, true)
	printServer(t, eu.Server)
	t.row("exchangeUsername", eu.ExchangeUsername.Value, eu.ExchangeUsername.Source, !eu.ExchangeUsername.NotApplicable)
	t.row("exchangePassword", eu.ExchangePassword.Value.State(), eu.ExchangePassword.Source, !eu.ExchangePassword.NotApplicable)
	printExchange(t, eu.Exchange)
	t.row("copyToSelf", string(eu.CopyToSelf.Value), eu.CopyToSelf.Source, !eu.CopyToSelf.NotApplicable)
	t.row("signature", eu.Signature.Value, eu.Signature.Source, true)
	t.flush()
}

func printServer(t *table, s settings.Server) {
	t.row("serverAddress", s.ServerAddress.Value, s.ServerAddress.Source, !s.ServerAddress.NotApplicable)
	t.row("port", portText(s.Port.Value), s.Port.Source, !s.Port.NotApplicable)
	t.row("useSsl", yesNo(s.UseSSL.Value), s.UseSSL.Source, !s.UseSSL.NotApplicable)
}

func printExchange(t *table, x settings.Exchange) {
	t.row("clientId", x.ClientID.Value, x.ClientID.Source, !x.ClientID.NotApplicable)
	t.row("tenantId", x.TenantID.Value, x.TenantID.Source, !x.TenantID.NotApplicable)
	t.row("authFlow", flowText(x.AuthFlow.Value), x.AuthFlow.Source, !x.AuthFlow.NotApplicable)
	t.row("clientSecret", x.ClientSecret.Value.State(), x.ClientSecret.Source, !x.ClientSecret.NotApplicable)
	t.row("clientSecretExpires", x.ClientSecretExpires.Value.String(), x.ClientSecretExpires.Source, !x.ClientSecretExpires.NotApplicable)
	t.row("clientCertificate", x.ClientCertificate.Value, x.ClientCertificate.Source, !x.ClientCertificate.NotApplicable)
	t.row("clientKey", x.ClientKey.Value.State(), x.ClientKey.Source, !x.ClientKey.NotApplicable)
}

func str(s string) string { return s }

func optText[T any](p *T, show func(T) string) string {
	if p == nil {
		return "(inherited)"
	}
	return show(*p)
}

const userListUsage = `usage: inkorg settings user list [--json] [--db …]

Lists the users that have e-mail settings of their own.

Example:
  inkorg settings user list --json
`

func userList(e *env, args []string) error {
	st, asJSON, err := openToShow(e, "settings user list", userListUsage, args)
	if err != nil {
		return err
	}
	defer st.Close()
	us, err := st.Users(e.ctx)
	if err != nil {
		return err
	}
	if asJSON {
		if us == nil {
			us = []settings.User{}
		}
		return printJSON(e, us)
	}
	if len(us) == 0 {
		fmt.Fprintln(e.stdout, "No user has e-mail settings of its own: every user inherits the system settings.")
		return nil
	}
	for _, u := range us {
		fmt.Fprintf(e.stdout, "%s\t%s\n", u.Name, optText(u.EmailAddress, str))
	}
	return nil
}

const userRemoveUsage = `usage: inkorg settings user remove NAME [--db …]

Removes a user's own e-mail settings: the user inherits the system settings again.

Example:
  inkorg settings user remove ANNA
`

func userRemove(e *env, args []string) error {
	st, name, err := openNamed(e, "settings user remove", userRemoveUsage, "user NAME", args)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.DeleteUser(e.ctx, name, e.actor); err != nil {
		return notFound(err, "user "+name+" has no e-mail settings")
	}
	return afterSave(e, st, "the removal of "+name+"'s e-mail settings")
}
