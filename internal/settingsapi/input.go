package settingsapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"inkorg/internal/settings"
)

// Value is one field of a change: a text (numbers and booleans as their text), a list, or null.
// Null means "inherit" for an override (a user's or an account's field) and "clear" elsewhere.
type Value struct {
	Null bool
	Text string
	List []string
}

// Input is a change to one settings record: the fields present are changed, the fields absent keep
// their values. A secret's field sets the secret; the text "set" keeps it (so what GET shows can be
// sent back unchanged), and "" or "not set" clears it.
type Input map[string]Value

// InputError is a malformed change (unknown field, wrong JSON type, unparsable number): 400.
type InputError struct{ Field, Message string }

func (e *InputError) Error() string {
	if e.Field == "" {
		return e.Message
	}
	return e.Field + ": " + e.Message
}

// ParseJSON reads an Input from a JSON object.
func ParseJSON(body []byte) (Input, error) {
	var raw map[string]json.RawMessage
	d := json.NewDecoder(bytes.NewReader(body))
	if err := d.Decode(&raw); err != nil {
		return nil, &InputError{Message: "the body is not a JSON object: " + err.Error()}
	}
	if raw == nil {
		return nil, &InputError{Message: "the body is not a JSON object"}
	}
	in := Input{}
	for k, v := range raw {
		v = bytes.TrimSpace(v)
		switch {
		case bytes.Equal(v, []byte("null")):
			in[k] = Value{Null: true}
		case len(v) > 0 && v[0] == '"':
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return nil, &InputError{Field: k, Message: err.Error()}
			}
			in[k] = Value{Text: s}
		case len(v) > 0 && v[0] == '[':
			var l []string
			if err := json.Unmarshal(v, &l); err != nil {
				return nil, &InputError{Field: k, Message: "a list of strings is expected"}
			}
			in[k] = Value{List: l}
		case len(v) > 0 && v[0] == '{':
			return nil, &InputError{Field: k, Message: "an object is not a value here"}
		default: // numbers and booleans
			in[k] = Value{Text: string(v)}
		}
	}
	return in, nil
}

func (in Input) check(allowed ...string) error {
	var bad []string
	for k := range in {
		if !slices.Contains(allowed, k) {
			bad = append(bad, k)
		}
	}
	if len(bad) > 0 {
		slices.Sort(bad)
		return &InputError{Field: bad[0], Message: fmt.Sprintf("unknown field; the fields are %s", strings.Join(allowed, ", "))}
	}
	return nil
}

func parseBool(field, s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "on", "yes", "1":
		return true, nil
	case "false", "off", "no", "0", "":
		return false, nil
	}
	return false, &InputError{Field: field, Message: fmt.Sprintf("%q is not true or false", s)}
}

func parseInt(field, s string) (int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, &InputError{Field: field, Message: fmt.Sprintf("%q is not a whole number", s)}
	}
	return n, nil
}

func parseDate(field, s string) (settings.Date, error) {
	if strings.TrimSpace(s) == "" {
		return settings.Date{}, nil
	}
	d, err := settings.ParseDate(strings.TrimSpace(s))
	if err != nil {
		return d, &InputError{Field: field, Message: fmt.Sprintf("%q is not a date (YYYY-MM-DD)", s)}
	}
	return d, nil
}

// secretChange applies a secret's Value to old: "set" keeps it, ""/"not set"/null clears it.
func secretChange(v Value, old settings.Secret) (settings.Secret, bool) {
	switch {
	case v.Null || v.Text == "" || v.Text == "not set":
		return settings.Secret{}, old.IsSet()
	case v.Text == "set":
		return old, false
	}
	return settings.NewSecret(v.Text), v.Text != old.Reveal()
}

// applier applies an Input to one settings record's fields. It collects the names of the fields whose
// values changed, in the order applied (the order settings.Check* reports their problems in), and
// stops at the first malformed value: after an error it applies nothing more.
type applier struct {
	in      Input
	changed []string
	err     error
}

// get returns field f's value, if the Input has one and nothing failed before.
func (a *applier) get(f string) (Value, bool) {
	if a.err != nil {
		return Value{}, false
	}
	v, ok := a.in[f]
	return v, ok
}

func (a *applier) mark(f string, changed bool) {
	if changed {
		a.changed = append(a.changed, f)
	}
}

// text sets a text field to the value, trimmed (null clears it).
func text[T ~string](a *applier, f string, p *T) {
	if v, ok := a.get(f); ok {
		t := T(strings.TrimSpace(v.Text))
		a.mark(f, t != *p)
		*p = t
	}
}

// parsed sets a field to the value as parse reads it.
func parsed[T comparable](a *applier, f string, p *T, parse func(field, s string) (T, error)) {
	if v, ok := a.get(f); ok {
		x, err := parse(f, v.Text)
		if err != nil {
			a.err = err
			return
		}
		a.mark(f, x != *p)
		*p = x
	}
}

// secret sets a secret field (secretChange).
func (a *applier) secret(f string, p *settings.Secret) {
	if v, ok := a.get(f); ok {
		var c bool
		*p, c = secretChange(v, *p)
		a.mark(f, c)
	}
}

// override sets an optional text field: null, or a blank text when blankInherits, makes it nil
// (inherit); trim trims the text.
func override[T ~string](a *applier, f string, p **T, blankInherits, trim bool) {
	v, ok := a.get(f)
	if !ok {
		return
	}
	old := *p
	if v.Null || (blankInherits && strings.TrimSpace(v.Text) == "") {
		*p = nil
	} else {
		t := v.Text
		if trim {
			t = strings.TrimSpace(t)
		}
		*p = settings.Ptr(T(t))
	}
	a.mark(f, (old == nil) != (*p == nil) || (old != nil && *old != **p))
}

// SystemFields are the fields of the system settings an Input may hold.
func SystemFields() []string {
	return []string{"emailMethod", "serverAddress", "port", "useSsl", "username", "password", "clientId", "tenantId",
		"authFlow", "clientSecret", "clientSecretExpires", "clientCertificate", "clientKey", "sendTransport"}
}

// ApplySystem applies in to the system settings s and returns the result and the names of the fields
// whose values changed (for settings.CheckSystem).
func ApplySystem(s settings.System, in Input) (settings.System, []string, error) {
	if err := in.check(SystemFields()...); err != nil {
		return s, nil, err
	}
	a := &applier{in: in}
	text(a, "emailMethod", &s.EmailMethod)
	text(a, "serverAddress", &s.ServerAddress)
	parsed(a, "port", &s.Port, parseInt)
	parsed(a, "useSsl", &s.UseSSL, parseBool)
	text(a, "username", &s.Username)
	a.secret("password", &s.Password)
	text(a, "clientId", &s.ClientID)
	text(a, "tenantId", &s.TenantID)
	text(a, "authFlow", &s.AuthFlow)
	a.secret("clientSecret", &s.ClientSecret)
	parsed(a, "clientSecretExpires", &s.ClientSecretExpires, parseDate)
	if v, ok := a.get("clientCertificate"); ok { // a PEM, kept as given
		a.mark("clientCertificate", v.Text != s.ClientCertificate)
		s.ClientCertificate = v.Text
	}
	a.secret("clientKey", &s.ClientKey)
	text(a, "sendTransport", &s.SendTransport)
	if a.err != nil {
		return s, nil, a.err
	}
	return s, a.changed, nil
}

// UserFields are the fields of a user's e-mail settings an Input may hold.
func UserFields() []string {
	return []string{"emailMethod", "emailAddress", "exchangeUsername", "exchangePassword", "copyToSelf", "signature"}
}

// ApplyUser applies in to user u's overrides: null (or, for the choices, "") inherits the system
// setting, a value overrides it.
func ApplyUser(u settings.User, in Input) (settings.User, []string, error) {
	if err := in.check(UserFields()...); err != nil {
		return u, nil, err
	}
	a := &applier{in: in}
	override(a, "emailMethod", &u.EmailMethod, true, true)
	override(a, "emailAddress", &u.EmailAddress, false, true)
	override(a, "exchangeUsername", &u.ExchangeUsername, false, true)
	override(a, "copyToSelf", &u.CopyToSelf, true, true)
	override(a, "signature", &u.Signature, false, false)
	// The password is an override too: null inherits it, "" or "not set" overrides it with no password.
	if v, ok := a.get("exchangePassword"); ok {
		switch {
		case v.Null:
			a.mark("exchangePassword", u.ExchangePassword != nil)
			u.ExchangePassword = nil
		case v.Text == "set":
		default:
			var old settings.Secret
			if u.ExchangePassword != nil {
				old = *u.ExchangePassword
			}
			s, c := secretChange(v, old)
			a.mark("exchangePassword", c || u.ExchangePassword == nil)
			u.ExchangePassword = &s
		}
	}
	return u, a.changed, nil
}

// AccountFields are the fields of an incoming account an Input may hold.
func AccountFields() []string {
	return []string{"address", "type", "exchangeUsername", "exchangePassword", "availableTo", "clientId", "tenantId",
		"authFlow", "clientSecret", "clientSecretExpires", "folder", "processedFolder", "failedFolder", "leaveInPlace", "pollSeconds"}
}

// ApplyAccount applies in to incoming account acc. The Exchange Online values (clientId, tenantId,
// authFlow, clientSecret, clientSecretExpires) inherit the system settings when null or "".
func ApplyAccount(acc settings.IncomingAccount, in Input) (settings.IncomingAccount, []string, error) {
	if err := in.check(AccountFields()...); err != nil {
		return acc, nil, err
	}
	a := &applier{in: in}
	text(a, "address", &acc.Address)
	text(a, "type", &acc.Type)
	text(a, "exchangeUsername", &acc.ExchangeUsername)
	a.secret("exchangePassword", &acc.ExchangePassword)
	if v, ok := a.get("availableTo"); ok {
		l := v.List
		if l == nil && !v.Null {
			for _, x := range strings.Split(v.Text, ",") {
				if x = strings.TrimSpace(x); x != "" {
					l = append(l, x)
				}
			}
		}
		a.mark("availableTo", !slices.Equal(l, acc.AvailableTo))
		acc.AvailableTo = l
	}
	override(a, "clientId", &acc.ClientID, true, true)
	override(a, "tenantId", &acc.TenantID, true, true)
	override(a, "authFlow", &acc.AuthFlow, true, true)
	if v, ok := a.get("clientSecret"); ok && v.Text != "set" {
		if v.Null || v.Text == "" || v.Text == "not set" {
			a.mark("clientSecret", acc.ClientSecret != nil)
			acc.ClientSecret = nil
		} else {
			a.mark("clientSecret", acc.ClientSecret == nil || acc.ClientSecret.Reveal() != v.Text)
			acc.ClientSecret = settings.Ptr(settings.NewSecret(v.Text))
		}
	}
	if v, ok := a.get("clientSecretExpires"); ok {
		d, err := parseDate("clientSecretExpires", v.Text)
		if err != nil {
			return acc, nil, err
		}
		old := acc.ClientSecretExpires
		acc.ClientSecretExpires = nil
		if !v.Null && !d.IsZero() {
			acc.ClientSecretExpires = &d
		}
		a.mark("clientSecretExpires", (old == nil) != (acc.ClientSecretExpires == nil) || (old != nil && *old != *acc.ClientSecretExpires))
	}
	text(a, "folder", &acc.Folder)
	text(a, "processedFolder", &acc.ProcessedFolder)
	text(a, "failedFolder", &acc.FailedFolder)
	parsed(a, "leaveInPlace", &acc.LeaveInPlace, parseBool)
	if v, ok := a.get("pollSeconds"); ok { // changes the account's pollInterval
		n, err := parseInt("pollSeconds", v.Text)
		if err != nil {
			return acc, nil, err
		}
		d := time.Duration(n) * time.Second
		a.mark("pollInterval", d != acc.PollInterval)
		acc.PollInterval = d
	}
	if a.err != nil {
		return acc, nil, a.err
	}
	return acc, a.changed, nil
}

// ApplyWebshop applies in to Webshop – Administration's settings.
func ApplyWebshop(w settings.Webshop, in Input) (settings.Webshop, error) {
	if err := in.check("emailMethod"); err != nil {
		return w, err
	}
	if v, ok := in["emailMethod"]; ok {
		w.EmailMethod = settings.WebshopMethod(strings.TrimSpace(v.Text))
	}
	return w, nil
}
