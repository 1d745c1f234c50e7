package main

import (
	"fmt"
	"strings"

	"inkorg/internal/settings"
	"inkorg/internal/store"
	"inkorg/internal/webhook"
)

const webhookUsage = `usage: inkorg webhook set|list|remove [ARGS]

The ERP's push side: a URL per incoming type to which inkorg POSTs each new message of that type as
JSON, signed with HMAC-SHA256 (header Inkorg-Signature), retried with backoff until the ERP answers 2xx.
  webhook set --type T --url U --secret-file P|-   set (or change) the webhook of a type
  webhook list [--json]                            the webhooks (the secret shows as set / not set)
  webhook remove --type T                          stop pushing a type

Example:
  openssl rand -hex 32 > webhook-secret.txt
  inkorg webhook set --type monitor-to-monitor --url https://erp.example.com/inkorg/m2m --secret-file webhook-secret.txt

All commands take --db (default $INKORG_DB, else ./inkorg.db).
Exit codes: 0 done, 1 refused, 2 usage error.
`

func cmdWebhook(e *env, args []string) error {
	return dispatchActions(e, "webhook", webhookUsage, args,
		action{"set", webhookSet}, action{"list", webhookList}, action{"remove", webhookRemove})
}

// minWebhookSecret is the shortest secret accepted: HMAC keys shorter than this are guessable.
const minWebhookSecret = 16

const webhookSetUsage = `usage: inkorg webhook set --type T [--url U] [--secret-file P|-] [--db …]

Sets the webhook of an incoming type: every message of that type stored from now on is POSTed to the
URL as JSON, with the headers Inkorg-Id, Idempotency-Key (both the message id), Inkorg-Timestamp and
Inkorg-Signature: v1=hex(HMAC-SHA256(secret, timestamp + "." + body)). The ERP checks the signature,
answers 2xx, and deduplicates by Idempotency-Key (delivery is at least once).

The URL must be https (plain http only to 127.0.0.1 or localhost). The secret is read from a file or
standard input (-), never from the command line; use at least 16 random characters. A new webhook needs
both; changing one keeps the other.

Example:
  openssl rand -hex 32 > webhook-secret.txt
  inkorg webhook set --type monitor-to-monitor --url https://erp.example.com/inkorg/m2m --secret-file webhook-secret.txt
`

func webhookTypeChoices() string {
	var names []string
	for _, t := range settings.IncomingTypes() {
		names = append(names, string(t))
	}
	return strings.Join(names, ", ")
}

// webhookType checks --type.
func webhookType(f *cmdFlags, t string) (settings.IncomingType, error) {
	if t == "" {
		return "", f.usageErr("--type is required: one of %s", webhookTypeChoices())
	}
	if !settings.IncomingType(t).Valid() {
		return "", f.usageErr("--type: unknown type %q; use one of %s", t, webhookTypeChoices())
	}
	return settings.IncomingType(t), nil
}

func findWebhook(e *env, st store.Store, t settings.IncomingType) (store.Webhook, bool, error) {
	list, err := st.Webhooks(e.ctx)
	if err != nil {
		return store.Webhook{}, false, err
	}
	for _, w := range list {
		if w.Type == t {
			return w, true, nil
		}
	}
	return store.Webhook{Type: t}, false, nil
}

func webhookSet(e *env, args []string) error {
	f := newFlags(e, "webhook set", webhookSetUsage)
	db := dbFlag(f)
	typ := f.String("type", "", "the incoming type: "+webhookTypeChoices())
	url := f.String("url", "", "where to POST: https://… (http only to 127.0.0.1 or localhost)")
	secretFile := f.String("secret-file", "", "a file holding the signing secret (- for standard input)")
	if err := f.parse(args); err != nil {
		return err
	}
	t, err := webhookType(f, *typ)
	if err != nil {
		return err
	}
	g := f.given()
	if !g["url"] && !g["secret-file"] {
		return f.usageErr("nothing to set: give --url, --secret-file or both")
	}
	var problems []string
	if g["url"] {
		if err := webhook.CheckURL(strings.TrimSpace(*url)); err != nil {
			problems = append(problems, "url: "+err.Error())
		}
	}
	var secret settings.Secret
	if g["secret-file"] {
		if secret, err = readSecret(e, "secret-file", *secretFile); err != nil {
			return err
		}
		if n := len([]rune(secret.Reveal())); n < minWebhookSecret {
			problems = append(problems, fmt.Sprintf("secret: it is %d characters; use at least %d random characters (e.g. openssl rand -hex 32 > webhook-secret.txt)", n, minWebhookSecret))
		}
	}
	if len(problems) > 0 {
		return refuseWebhook(e, t, problems)
	}
	st, err := openStore(e, *db, false)
	if err != nil {
		return err
	}
	defer st.Close()
	w, exists, err := findWebhook(e, st, t)
	if err != nil {
		return err
	}
	if !exists && !g["url"] {
		problems = append(problems, "url: there is no webhook for "+string(t)+" yet: give --url as well")
	}
	if !exists && !g["secret-file"] {
		problems = append(problems, "secret: a new webhook needs --secret-file (the key the ERP checks the signatures with)")
	}
	if len(problems) > 0 {
		return refuseWebhook(e, t, problems)
	}
	if g["url"] {
		w.URL = strings.TrimSpace(*url)
	}
	if g["secret-file"] {
		w.Secret = secret
	}
	if err := st.PutWebhook(e.ctx, w, e.actor); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "Saved the webhook for %s: messages of this type stored from now on are POSTed to %s.\n", t, w.URL)
	if !exists {
		fmt.Fprintf(e.stdout, "Messages stored before now are not pushed; the ERP reads them with GET /api/v1/messages?type=%s.\n", t)
	}
	accounts, err := st.IncomingAccounts(e.ctx)
	if err != nil {
		return err
	}
	for _, a := range accounts {
		if a.Type == t {
			return nil
		}
	}
	fmt.Fprintf(e.stderr, "Note: no incoming e-mail account has the type %s yet; add one with \"inkorg settings incoming add --address A --type %s\".\n", t, t)
	return nil
}

func refuseWebhook(e *env, t settings.IncomingType, problems []string) error {
	fmt.Fprintf(e.stderr, "Not saved: problems with the webhook for %s:\n", t)
	for _, p := range problems {
		fmt.Fprintf(e.stderr, "  %s\n", p)
	}
	return problemsError{}
}

const webhookListUsage = `usage: inkorg webhook list [--json] [--db …]

Lists the webhooks: type, URL, and whether the signing secret is set (never the secret).

Example:
  inkorg webhook list
`

func webhookList(e *env, args []string) error {
	st, asJSON, err := openToShow(e, "webhook list", webhookListUsage, args)
	if err != nil {
		return err
	}
	defer st.Close()
	list, err := st.Webhooks(e.ctx)
	if err != nil {
		return err
	}
	if list == nil {
		list = []store.Webhook{}
	}
	if asJSON {
		return printJSON(e, list) // the secret marshals as "set" / "not set"
	}
	if len(list) == 0 {
		fmt.Fprintln(e.stdout, "No webhooks. Set one with \"inkorg webhook set --type T --url U --secret-file P\".")
		return nil
	}
	t := newTable(e, "Webhooks")
	fmt.Fprintf(t.w, "  Type\tURL\tSecret\n")
	for _, w := range list {
		fmt.Fprintf(t.w, "  %s\t%s\t%s\n", w.Type, w.URL, w.Secret.State())
	}
	return t.flush()
}

const webhookRemoveUsage = `usage: inkorg webhook remove --type T [--db …]

Stops pushing the messages of a type. Deliveries still owed stay in the database and are sent if a
webhook for the type is set again; the ERP can always read the messages with the API.

Example:
  inkorg webhook remove --type monitor-to-monitor
`

func webhookRemove(e *env, args []string) error {
	f := newFlags(e, "webhook remove", webhookRemoveUsage)
	db := dbFlag(f)
	typ := f.String("type", "", "the incoming type: "+webhookTypeChoices())
	if err := f.parse(args); err != nil {
		return err
	}
	t, err := webhookType(f, *typ)
	if err != nil {
		return err
	}
	st, err := openStore(e, *db, true)
	if err != nil {
		return err
	}
	defer st.Close()
	if _, exists, err := findWebhook(e, st, t); err != nil {
		return err
	} else if !exists {
		return fmt.Errorf("webhook for %s: not found (\"inkorg webhook list\" shows the webhooks)", t)
	}
	if err := st.PutWebhook(e.ctx, store.Webhook{Type: t}, e.actor); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "Removed the webhook for %s.\n", t)
	return nil
}
