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

// SystemFields are the fields of the system settings an Input may hold.
var systemFields = []string{"emailMethod", "serverAddress", "port", "useSsl", "username", "password", "clientId", "tenantId",
	"authFlow", "clientSecret", "clientSecretExpires", "clientCertificate", "clientKey", "sendTransport"}

// ApplySystem applies in to the system settings s and returns the result and the names of the fields
// whose values changed (for settings.CheckSystem).
func ApplySystem(s settings.System, in Input) (settings.System, []string, error) {
	if err := in.check(systemFields...); err != nil {
		return s, nil, err
	}
	var changed []string
	mark := func(f string, c bool) {
		if c {
			changed = append(changed, f)
		}
	}
	str := func(f string, p *string) {
		if v, ok := in[f]; ok {
			t := strings.TrimSpace(v.Text)
			mark(f, t != *p)
			*p = t
		}
	}
	sec := func(f string, p *settings.Secret) {
		if v, ok := in[f]; ok {
			var c bool
			*p, c = secretChange(v, *p)
			mark(f, c)
		}
	}
	if v, ok := in["emailMethod"]; ok {
		m := settings.EmailMethod(strings.TrimSpace(v.Text))
		mark("emailMethod", m != s.EmailMethod)
		s.EmailMethod = m
	}
	str("serverAddress", &s.ServerAddress)
	if v, ok := in["port"]; ok {
		n, err := parseInt("port", v.Text)
		if err != nil {
			return s, nil, err
		}
		mark("port", n != s.Port)
		s.Port = n
	}
	if v, ok := in["useSsl"]; ok {
		b, err := parseBool("useSsl", v.Text)
		if err != nil {
			return s, nil, err
		}
		mark("useSsl", b != s.UseSSL)
		s.UseSSL = b
	}
	str("username", &s.Username)
	sec("password", &s.Password)
	str("clientId", &s.ClientID)
	str("tenantId", &s.TenantID)
	if v, ok := in["authFlow"]; ok {
		f := settings.AuthFlow(strings.TrimSpace(v.Text))
		mark("authFlow", f != s.AuthFlow)
		s.AuthFlow = f
	}
	sec("clientSecret", &s.ClientSecret)
	if v, ok := in["clientSecretExpires"]; ok {
		d, err := parseDate("clientSecretExpires", v.Text)
		if err != nil {
			return s, nil, err
		}
		mark("clientSecretExpires", d != s.ClientSecretExpires)
		s.ClientSecretExpires = d
	}
	if v, ok := in["clientCertificate"]; ok {
		mark("clientCertificate", v.Text != s.ClientCertificate)
		s.ClientCertificate = v.Text
	}
	sec("clientKey", &s.ClientKey)
	if v, ok := in["sendTransport"]; ok {
		t := settings.SendTransport(strings.TrimSpace(v.Text))
		mark("sendTransport", t != s.SendTransport)
		s.SendTransport = t
	}
	return s, changed, nil
}

var userFields = []string{"emailMethod", "emailAddress", "exchangeUsername", "exchangePassword", "copyToSelf", "signature"}

// ApplyUser applies in to user u's overrides: null (or, for the choices, "") inherits the system
// setting, a value overrides it.
func ApplyUser(u settings.User, in Input) (settings.User, []string, error) {
	if err := in.check(userFields...); err != nil {
		return u, nil, err
	}
	var changed []string
	opt := func(f string, p **string, inheritEmpty bool) {
		v, ok := in[f]
		if !ok {
			return
		}
		old := *p
		if v.Null || (inheritEmpty && strings.TrimSpace(v.Text) == "") {
			*p = nil
		} else {
			t := v.Text
			if f != "signature" {
				t = strings.TrimSpace(t)
			}
			*p = &t
		}
		if (old == nil) != (*p == nil) || (old != nil && *old != **p) {
			changed = append(changed, f)
		}
	}
	method := (*string)(nil)
	if u.EmailMethod != nil {
		method = settings.Ptr(string(*u.EmailMethod))
	}
	opt("emailMethod", &method, true)
	u.EmailMethod = nil
	if method != nil {
		u.EmailMethod = settings.Ptr(settings.EmailMethod(*method))
	}
	opt("emailAddress", &u.EmailAddress, false)
	opt("exchangeUsername", &u.ExchangeUsername, false)
	copySelf := (*string)(nil)
	if u.CopyToSelf != nil {
		copySelf = settings.Ptr(string(*u.CopyToSelf))
	}
	opt("copyToSelf", &copySelf, true)
	u.CopyToSelf = nil
	if copySelf != nil {
		u.CopyToSelf = settings.Ptr(settings.CopyToSelf(*copySelf))
	}
	opt("signature", &u.Signature, false)
	if v, ok := in["exchangePassword"]; ok {
		switch {
		case v.Null:
			if u.ExchangePassword != nil {
				changed = append(changed, "exchangePassword")
			}
			u.ExchangePassword = nil
		case v.Text == "set":
		default:
			var old settings.Secret
			if u.ExchangePassword != nil {
				old = *u.ExchangePassword
			}
			s, c := secretChange(v, old)
			if c || u.ExchangePassword == nil {
				changed = append(changed, "exchangePassword")
			}
			u.ExchangePassword = &s
		}
	}
	return u, changed, nil
}

var accountFields = []string{"address", "type", "exchangeUsername", "exchangePassword", "availableTo", "clientId", "tenantId",
	"authFlow", "clientSecret", "clientSecretExpires", "folder", "processedFolder", "failedFolder", "leaveInPlace", "pollSeconds"}

// ApplyAccount applies in to incoming account a. The Exchange Online values (clientId, tenantId,
// authFlow, clientSecret, clientSecretExpires) inherit the system settings when null or "".
func ApplyAccount(a settings.IncomingAccount, in Input) (settings.IncomingAccount, []string, error) {
	if err := in.check(accountFields...); err != nil {
		return a, nil, err
	}
	var changed []string
	mark := func(f string, c bool) {
		if c {
			changed = append(changed, f)
		}
	}
	str := func(f string, p *string) {
		if v, ok := in[f]; ok {
			t := strings.TrimSpace(v.Text)
			mark(f, t != *p)
			*p = t
		}
	}
	inherit := func(f string, p **string) {
		if v, ok := in[f]; ok {
			old := *p
			if v.Null || strings.TrimSpace(v.Text) == "" {
				*p = nil
			} else {
				*p = settings.Ptr(strings.TrimSpace(v.Text))
			}
			mark(f, (old == nil) != (*p == nil) || (old != nil && *old != **p))
		}
	}
	str("address", &a.Address)
	if v, ok := in["type"]; ok {
		t := settings.IncomingType(strings.TrimSpace(v.Text))
		mark("type", t != a.Type)
		a.Type = t
	}
	str("exchangeUsername", &a.ExchangeUsername)
	if v, ok := in["exchangePassword"]; ok {
		var c bool
		a.ExchangePassword, c = secretChange(v, a.ExchangePassword)
		mark("exchangePassword", c)
	}
	if v, ok := in["availableTo"]; ok {
		l := v.List
		if l == nil && !v.Null {
			for _, x := range strings.Split(v.Text, ",") {
				if x = strings.TrimSpace(x); x != "" {
					l = append(l, x)
				}
			}
		}
		mark("availableTo", !slices.Equal(l, a.AvailableTo))
		a.AvailableTo = l
	}
	inherit("clientId", &a.ClientID)
	inherit("tenantId", &a.TenantID)
	flow := (*string)(nil)
	if a.AuthFlow != nil {
		flow = settings.Ptr(string(*a.AuthFlow))
	}
	inherit("authFlow", &flow)
	a.AuthFlow = nil
	if flow != nil {
		a.AuthFlow = settings.Ptr(settings.AuthFlow(*flow))
	}
	if v, ok := in["clientSecret"]; ok && v.Text != "set" {
		if v.Null || v.Text == "" || v.Text == "not set" {
			mark("clientSecret", a.ClientSecret != nil)
			a.ClientSecret = nil
		} else {
			mark("clientSecret", a.ClientSecret == nil || a.ClientSecret.Reveal() != v.Text)
			a.ClientSecret = settings.Ptr(settings.NewSecret(v.Text))
		}
	}
	if v, ok := in["clientSecretExpires"]; ok {
		d, err := parseDate("clientSecretExpires", v.Text)
		if err != nil {
			return a, nil, err
		}
		old := a.ClientSecretExpires
		a.ClientSecretExpires = nil
		if !v.Null && !d.IsZero() {
			a.ClientSecretExpires = &d
		}
		mark("clientSecretExpires", (old == nil) != (a.ClientSecretExpires == nil) || (old != nil && *old != *a.ClientSecretExpires))
	}
	str("folder", &a.Folder)
	str("processedFolder", &a.ProcessedFolder)
	str("failedFolder", &a.FailedFolder)
	if v, ok := in["leaveInPlace"]; ok {
		b, err := parseBool("leaveInPlace", v.Text)
		if err != nil {
			return a, nil, err
		}
		mark("leaveInPlace", b != a.LeaveInPlace)
		a.LeaveInPlace = b
	}
	if v, ok := in["pollSeconds"]; ok {
		n, err := parseInt("pollSeconds", v.Text)
		if err != nil {
			return a, nil, err
		}
		d := time.Duration(n) * time.Second
		mark("pollInterval", d != a.PollInterval)
		a.PollInterval = d
	}
	return a, changed, nil
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
