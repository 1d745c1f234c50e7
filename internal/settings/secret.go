package settings

import (
	"encoding/json"
	"log/slog"
	"time"
)

// Secret holds a client secret or a password in memory. It never shows its value: printing, logging
// or marshalling it gives "set" or "not set". Only Reveal returns the plain text, for the one place that
// needs it (sealing it at rest, or handing it to the token endpoint).
type Secret struct{ v string }

// NewSecret wraps a plain-text secret.
func NewSecret(plain string) Secret { return Secret{v: plain} }

// IsSet reports whether the secret has a value.
func (s Secret) IsSet() bool { return s.v != "" }

// Reveal returns the plain text. Call it only where the secret leaves inkorg's hands on purpose.
func (s Secret) Reveal() string { return s.v }

// State is "set" or "not set".
func (s Secret) State() string {
	if s.IsSet() {
		return "set"
	}
	return "not set"
}

// String implements fmt.Stringer without the value.
func (s Secret) String() string { return s.State() }

// GoString keeps %#v from showing the value.
func (s Secret) GoString() string { return "settings.Secret(" + s.State() + ")" }

// LogValue implements slog.LogValuer without the value.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.State()) }

// MarshalJSON writes the state, never the value.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.State()) }

// MarshalText writes the state, never the value.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.State()), nil }

// Date is a calendar date without a time of day (a client secret's expiry, as Entra ID shows it).
// The zero Date means "not given".
type Date struct{ t time.Time }

// DateLayout is how dates are written in flags, JSON and messages.
const DateLayout = "2006-01-02"

// ParseDate parses YYYY-MM-DD.
func ParseDate(s string) (Date, error) {
	t, err := time.Parse(DateLayout, s)
	if err != nil {
		return Date{}, err
	}
	return Date{t: t}, nil
}

// DateOf is the calendar date of t in UTC.
func DateOf(t time.Time) Date {
	y, m, d := t.UTC().Date()
	return Date{t: time.Date(y, m, d, 0, 0, 0, 0, time.UTC)}
}

// IsZero reports whether no date is given.
func (d Date) IsZero() bool { return d.t.IsZero() }

// String is YYYY-MM-DD, or "" for the zero Date.
func (d Date) String() string {
	if d.IsZero() {
		return ""
	}
	return d.t.Format(DateLayout)
}

// DaysFrom is the number of days from today to d (negative when d has passed).
func (d Date) DaysFrom(today Date) int { return int(d.t.Sub(today.t).Hours() / 24) }

// MarshalJSON writes "YYYY-MM-DD" or null.
func (d Date) MarshalJSON() ([]byte, error) {
	if d.IsZero() {
		return []byte("null"), nil
	}
	return json.Marshal(d.String())
}
