package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The headers of a delivery.
const (
	HeaderID             = "Inkorg-Id"        // the message id
	HeaderIdempotencyKey = "Idempotency-Key"  // the message id again: the same on every attempt
	HeaderTimestamp      = "Inkorg-Timestamp" // unix seconds when the attempt was signed
	HeaderSignature      = "Inkorg-Signature" // "v1=" + hex HMAC-SHA256(secret, timestamp + "." + body)
)

// DefaultTolerance is how far a delivery's timestamp may be from the receiver's clock.
const DefaultTolerance = 5 * time.Minute

// Errors of Verify; the receiver answers any of them with 401 (inkorg retries, and the delivery's
// last error shows the status).
var (
	ErrNoSignature       = errors.New("webhook: no v1 signature in the Inkorg-Signature header")
	ErrBadTimestamp      = errors.New("webhook: Inkorg-Timestamp is not unix seconds")
	ErrTimestampTooOld   = errors.New("webhook: Inkorg-Timestamp is outside the tolerance (a replay, or a clock off)")
	ErrSignatureMismatch = errors.New("webhook: the signature does not match (a wrong secret, or a changed body)")
)

// Sign is the Inkorg-Signature header value for body, signed at timestamp (unix seconds) with secret.
func Sign(secret string, timestamp int64, body []byte) string {
	return "v1=" + hex.EncodeToString(mac(secret, strconv.FormatInt(timestamp, 10), body))
}

func mac(secret, timestamp string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify is what the ERP does with a delivery before trusting it: timestamp and signature are the
// Inkorg-Timestamp and Inkorg-Signature headers, body the request body exactly as received (before any
// JSON parsing), now the receiver's clock, tolerance how old (or how far ahead) the timestamp may be
// (0 = DefaultTolerance). It recomputes HMAC-SHA256(secret, timestamp + "." + body), compares it in
// constant time with every v1= value of the header (there are several while a secret is rotated),
// and refuses a timestamp outside the tolerance, so a captured delivery cannot be replayed later.
//
// In another language the same check is:
//
//	expected = hex(hmac_sha256(key=secret, msg=timestamp + "." + body))
//	ok = any(constant_time_equal(expected, v[3:]) for v in header.split(",") if v.strip().startswith("v1="))
//	     and abs(now - int(timestamp)) <= 300
//
// A delivery is at least once: the ERP deduplicates by the Idempotency-Key (the message id).
func Verify(secret, timestamp string, body []byte, signature string, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil || ts < 0 || len(timestamp) > 12 {
		return fmt.Errorf("%w: %q", ErrBadTimestamp, clip(timestamp))
	}
	diff := now.Unix() - ts
	if diff < 0 {
		diff = -diff
	}
	if time.Duration(diff)*time.Second > tolerance {
		return fmt.Errorf("%w: %s, %s from the receiver's clock (tolerance %s)", ErrTimestampTooOld, timestamp, time.Duration(diff)*time.Second, tolerance)
	}
	want := mac(secret, timestamp, body)
	found := false
	for _, part := range strings.Split(signature, ",") {
		v, ok := strings.CutPrefix(strings.TrimSpace(part), "v1=")
		if !ok {
			continue
		}
		found = true
		got, err := hex.DecodeString(v)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	if !found {
		return ErrNoSignature
	}
	return ErrSignatureMismatch
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
