package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"inkorg/internal/api"
	"inkorg/internal/store"
)

const tokenUsage = `usage: inkorg token create|list|revoke [ARGS]

The ERP's bearer tokens for the REST API (/api/v1/…). A token is shown once, when it is made;
inkorg keeps only its SHA-256, so a lost token is revoked and replaced, never recovered.
  token create NAME [--db …]          make a token for the ERP and print it
  token list [--json] [--db …]        the tokens: name, when made, when last used
  token revoke NAME [--db …]          delete a token: requests with it are refused at once

Example:
  inkorg token create erp-production
  curl -H "Authorization: Bearer ink_…" http://127.0.0.1:8025/api/v1/messages?type=monitor-to-monitor

All commands take --db (default $INKORG_DB, else ./inkorg.db).
Exit codes: 0 done, 1 refused, 2 usage error.
`

func cmdToken(e *env, args []string) error {
	return dispatchActions(e, "token", tokenUsage, args,
		action{"create", tokenCreate}, action{"list", tokenList}, action{"revoke", tokenRevoke})
}

// newAPIToken is "ink_" and 43 characters of base64url: 256 random bits.
func newAPIToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("make a random token: %w", err)
	}
	return "ink_" + base64.RawURLEncoding.EncodeToString(b), nil
}

// checkTokenName refuses a token's or an operator's name that would be awkward in a list or a shell:
// 1–64 letters, digits, ".", "_", "-".
func checkTokenName(what, name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("%s %q: use 1 to 64 characters", what, name)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%s %q: use only letters, digits, \".\", \"_\" and \"-\", e.g. erp-production", what, name)
		}
	}
	return nil
}

const tokenCreateUsage = `usage: inkorg token create NAME [--db …]

Makes a bearer token for the REST API and prints it once, on standard output (the hint goes to
standard error, so TOKEN=$(inkorg token create erp) captures just the token). Only its SHA-256 is stored.

Example:
  inkorg token create erp-production
`

func tokenCreate(e *env, args []string) error {
	f := newFlags(e, "token create", tokenCreateUsage)
	db := dbFlag(f)
	name, err := f.parseNamed(args, "token NAME")
	if err != nil {
		return err
	}
	if err := checkTokenName("token name", name); err != nil {
		return f.usageErr("%v", err)
	}
	st, err := openStore(e, *db, false)
	if err != nil {
		return err
	}
	defer st.Close()
	token, err := newAPIToken()
	if err != nil {
		return err
	}
	if _, err := st.CreateAPIToken(e.ctx, name, api.HashToken(token)); errors.Is(err, store.ErrExists) {
		fmt.Fprintf(e.stderr, "Not created: a token named %s already exists. Pick another name, or replace it:\n  inkorg token revoke %s && inkorg token create %s\n", name, name, name)
		return problemsError{}
	} else if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, token)
	fmt.Fprintf(e.stderr, "Created the API token %s. Send it on every request to /api/v1/ as the header \"Authorization: Bearer %s\"; it is not shown again (inkorg keeps only its SHA-256).\n", name, token)
	return nil
}

const tokenListUsage = `usage: inkorg token list [--json] [--db …]

Lists the API tokens (never the tokens themselves): name, when made, when last used.

Example:
  inkorg token list --json
`

// tokenView is a token's record for token list --json.
type tokenView struct {
	Name      string     `json:"name"`
	CreatedAt time.Time  `json:"createdAt"`
	LastUsed  *time.Time `json:"lastUsed"`
}

func tokenList(e *env, args []string) error {
	st, asJSON, err := openToShow(e, "token list", tokenListUsage, args)
	if err != nil {
		return err
	}
	defer st.Close()
	toks, err := st.APITokens(e.ctx)
	if err != nil {
		return err
	}
	views := make([]tokenView, 0, len(toks))
	for _, t := range toks {
		v := tokenView{Name: t.Name, CreatedAt: t.CreatedAt.UTC()}
		if !t.LastUsed.IsZero() {
			u := t.LastUsed.UTC()
			v.LastUsed = &u
		}
		views = append(views, v)
	}
	if asJSON {
		return printJSON(e, views)
	}
	if len(views) == 0 {
		fmt.Fprintln(e.stdout, "No API tokens. Make one with \"inkorg token create NAME\".")
		return nil
	}
	t := newTable(e, "API tokens")
	fmt.Fprintf(t.w, "  Name\tCreated\tLast used\n")
	for _, v := range views {
		used := "never"
		if v.LastUsed != nil {
			used = v.LastUsed.Format(time.RFC3339)
		}
		fmt.Fprintf(t.w, "  %s\t%s\t%s\n", v.Name, v.CreatedAt.Format(time.RFC3339), used)
	}
	return t.flush()
}

const tokenRevokeUsage = `usage: inkorg token revoke NAME [--db …]

Deletes an API token: every request with it is refused from now on (401).

Example:
  inkorg token revoke erp-production
`

func tokenRevoke(e *env, args []string) error {
	st, name, err := openNamed(e, "token revoke", tokenRevokeUsage, "token NAME", args)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.RevokeAPIToken(e.ctx, name); err != nil {
		return notFound(err, "API token "+name+" (\"inkorg token list\" shows the tokens)")
	}
	fmt.Fprintf(e.stdout, "Revoked the API token %s: requests with it are refused from now on.\n", name)
	return nil
}
