package store

import (
	"fmt"
	"strconv"
	"strings"

	"inkorg/internal/settings"
)

// Change is one changed field, ready for the audit log.
type Change struct {
	Field, Old, New string
}

// fieldValue is a field's value as the audit log shows it, and what decides whether it changed (for
// secrets the plain text, which is compared in memory and never written).
type fieldValue struct{ shown, compare string }

// auditField is one named field of a settings record.
type auditField struct {
	name string
	v    fieldValue
}

func plain(s string) fieldValue { return fieldValue{s, s} }

func opt[T any](p *T, show func(T) string) fieldValue {
	if p == nil {
		return fieldValue{"(inherited)", "\x00inherit"}
	}
	v := show(*p)
	return fieldValue{v, "=" + v}
}

func secret(s settings.Secret) fieldValue { return fieldValue{s.State(), s.Reveal()} }

func optSecret(p *settings.Secret) fieldValue {
	if p == nil {
		return fieldValue{"(inherited)", "\x00inherit"}
	}
	return fieldValue{p.State(), "=" + p.Reveal()}
}

func str[T ~string](v T) string { return string(v) }

func systemFields(s settings.System) []auditField {
	return []auditField{
		{"emailMethod", plain(string(s.EmailMethod))},
		{"serverAddress", plain(s.ServerAddress)},
		{"port", plain(strconv.Itoa(s.Port))},
		{"useSsl", plain(strconv.FormatBool(s.UseSSL))},
		{"username", plain(s.Username)},
		{"password", secret(s.Password)},
		{"clientId", plain(s.ClientID)},
		{"tenantId", plain(s.TenantID)},
		{"authFlow", plain(string(s.AuthFlow))},
		{"clientSecret", secret(s.ClientSecret)},
		{"clientSecretExpires", plain(s.ClientSecretExpires.String())},
		{"clientCertificate", certificate(s.ClientCertificate)},
		{"clientKey", secret(s.ClientKey)},
		{"sendTransport", plain(string(s.SendTransport))},
	}
}

// certificate shows a certificate by its thumbprint, not its PEM.
func certificate(pemText string) fieldValue {
	if pemText == "" {
		return plain("")
	}
	c, _, err := settings.ParseCertificate(pemText)
	if err != nil {
		return fieldValue{"unreadable certificate", pemText}
	}
	return fieldValue{"thumbprint " + c.Thumbprint, pemText}
}

func userFields(u settings.User) []auditField {
	return []auditField{
		{"emailMethod", opt(u.EmailMethod, str)},
		{"emailAddress", opt(u.EmailAddress, str)},
		{"exchangeUsername", opt(u.ExchangeUsername, str)},
		{"exchangePassword", optSecret(u.ExchangePassword)},
		{"copyToSelf", opt(u.CopyToSelf, str)},
		{"signature", opt(u.Signature, str)},
	}
}

func accountFields(a settings.IncomingAccount) []auditField {
	return []auditField{
		{"address", plain(a.Address)},
		{"type", plain(string(a.Type))},
		{"exchangeUsername", plain(a.ExchangeUsername)},
		{"exchangePassword", secret(a.ExchangePassword)},
		{"availableTo", plain(strings.Join(a.AvailableTo, ", "))},
		{"clientId", opt(a.ClientID, str)},
		{"tenantId", opt(a.TenantID, str)},
		{"authFlow", opt(a.AuthFlow, str)},
		{"clientSecret", optSecret(a.ClientSecret)},
		{"clientSecretExpires", opt(a.ClientSecretExpires, settings.Date.String)},
		{"folder", plain(a.Folder)},
		{"processedFolder", plain(a.ProcessedFolder)},
		{"failedFolder", plain(a.FailedFolder)},
		{"leaveInPlace", plain(strconv.FormatBool(a.LeaveInPlace))},
		{"pollInterval", plain(a.PollInterval.String())},
	}
}

func diff(old, new []auditField) []Change {
	var out []Change
	for i := range new {
		o, n := old[i].v, new[i].v
		if o.compare == n.compare {
			continue
		}
		c := Change{Field: new[i].name, Old: o.shown, New: n.shown}
		if c.Old == c.New { // a secret replaced by another
			c.New = "changed"
		}
		out = append(out, c)
	}
	return out
}

// SystemChanges lists what changed between two versions of the system settings.
func SystemChanges(old, new settings.System) []Change {
	return diff(systemFields(old), systemFields(new))
}

// UserChanges lists what changed between two versions of a user's settings; a nil old is a new user.
func UserChanges(old *settings.User, new settings.User) []Change {
	if old == nil {
		old = &settings.User{}
	}
	return diff(userFields(*old), userFields(new))
}

// AccountChanges lists what changed between two versions of an incoming account; nil is "absent".
func AccountChanges(old, new *settings.IncomingAccount) []Change {
	empty := settings.IncomingAccount{}
	o, n := &empty, &empty
	if old != nil {
		o = old
	}
	if new != nil {
		n = new
	}
	return diff(accountFields(*o), accountFields(*n))
}

// WebshopChanges lists what changed in Webshop – Administration.
func WebshopChanges(old, new settings.Webshop) []Change {
	if old == new {
		return nil
	}
	return []Change{{Field: "emailMethod", Old: string(old.EmailMethod), New: string(new.EmailMethod)}}
}

// WebhookChanges lists what a write of a webhook changes: its URL, and (unless the write removes it,
// with an empty URL) its secret, which a write always replaces. oldSecretSet says whether the old
// webhook had one.
func WebhookChanges(oldURL string, oldSecretSet bool, newURL string) []Change {
	var out []Change
	if oldURL != newURL {
		out = append(out, Change{Field: "url", Old: oldURL, New: newURL})
	}
	if newURL != "" {
		old := "not set"
		if oldSecretSet {
			old = "set"
		}
		out = append(out, Change{Field: "secret", Old: old, New: "changed"})
	}
	return out
}

// String renders a change for logs: "field: old → new".
func (c Change) String() string { return fmt.Sprintf("%s: %q → %q", c.Field, c.Old, c.New) }
