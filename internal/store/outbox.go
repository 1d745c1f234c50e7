package store

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"time"
)

// Outbox is the outgoing-mail half of the store: messages the ERP posted, composed to their exact bytes
// at posting time, and the state of each on its way to the server.
//
// A message's life: queued → sending → sent, or back to queued (a temporary failure, with the next
// attempt's time), or failed (a permanent one, with the typed reason). ClaimOutgoing records "sending"
// durably before the transport talks to the server, and OutgoingSent records the server's acceptance
// before the sender does anything else. A message found in "sending" whose lease has run out — the
// process that claimed it died — is not resent: RecoverOutgoing marks it unknown, because the server may
// have accepted it in the instant before the crash; an operator (or the ERP) resolves it with
// ResolveOutgoing.
type Outbox interface {
	// EnqueueOutgoing stores a composed message, queued and due at once, and returns its record (ID,
	// CreatedAt, NextAt and Size filled in; an ID given by the caller is kept).
	EnqueueOutgoing(ctx context.Context, m Outgoing) (Outgoing, error)
	// Outgoing returns one message's record (not its bytes); ErrNotFound.
	Outgoing(ctx context.Context, id string) (Outgoing, error)
	// OutgoingRaw returns the message's bytes exactly as composed; ErrNotFound.
	OutgoingRaw(ctx context.Context, id string) ([]byte, error)
	// OutgoingList lists messages in a state ("" = every state), newest first, at most limit.
	OutgoingList(ctx context.Context, state OutgoingState, limit int) ([]Outgoing, error)
	// DueOutgoing returns queued messages whose next attempt is due at now, oldest first.
	DueOutgoing(ctx context.Context, now time.Time, limit int) ([]Outgoing, error)
	// ClaimOutgoing moves a queued message to sending (attempts + 1, the transport used, the lease) in
	// one durable statement; ErrOutgoingState when it is not queued (another worker has it).
	ClaimOutgoing(ctx context.Context, id, transport string, now, leaseUntil time.Time) (Outgoing, error)
	// OutgoingSent records the server's acceptance of a message in sending; ErrOutgoingState otherwise.
	OutgoingSent(ctx context.Context, id string, at time.Time, reply string) error
	// OutgoingRetry puts a message in sending back in the queue, due at next, with the error.
	OutgoingRetry(ctx context.Context, id string, next time.Time, e ErrorRecord) error
	// OutgoingFailed records a permanent failure of a message in sending.
	OutgoingFailed(ctx context.Context, id string, e ErrorRecord) error
	// OutgoingUnknown records that a message in sending may or may not have been accepted (the
	// connection broke after the message was handed over, before the server's answer).
	OutgoingUnknown(ctx context.Context, id string, e ErrorRecord) error
	// RecoverOutgoing marks every message in sending whose lease ended at or before now as unknown, and
	// returns their ids.
	RecoverOutgoing(ctx context.Context, now time.Time) ([]string, error)
	// ResolveOutgoing settles a message in unknown (or failed, with resend): resend queues it again, due
	// at at; otherwise it is recorded as sent (someone checked that it arrived). ErrOutgoingState for
	// any other state.
	ResolveOutgoing(ctx context.Context, id string, resend bool, at time.Time) error
}

// OutgoingState is where an outgoing message is.
type OutgoingState string

// The states.
const (
	OutQueued  OutgoingState = "queued"  // waiting for its (next) attempt
	OutSending OutgoingState = "sending" // a worker is talking to the server
	OutSent    OutgoingState = "sent"    // the server accepted it
	OutFailed  OutgoingState = "failed"  // permanently refused; LastError says why and what to do
	OutUnknown OutgoingState = "unknown" // the process died while sending: it may or may not have gone out
)

// ErrOutgoingState means an outgoing message is not in the state the operation needs.
var ErrOutgoingState = errors.New("the outgoing message is not in the expected state")

// Outgoing is one outgoing message's record.
type Outgoing struct {
	ID            string        `json:"id"`
	Sender        string        `json:"sender"`            // the user whose settings send it ("WEBSHOP" for the webshop)
	Webshop       bool          `json:"webshop,omitempty"` // posted as the webshop
	From          string        `json:"from"`
	Recipients    []string      `json:"recipients"` // every envelope recipient: To, Cc, Bcc and the copy to self
	Bcc           []string      `json:"bcc"`        // the recipients not named in the header (Graph needs them as a Bcc header)
	Subject       string        `json:"subject"`
	MessageID     string        `json:"messageId"`
	RelatedRecord string        `json:"relatedRecord,omitempty"`
	Size          int64         `json:"size"`
	Raw           []byte        `json:"-"` // EnqueueOutgoing only
	State         OutgoingState `json:"state"`
	Transport     string        `json:"transport,omitempty"` // of the last attempt: smtp-xoauth2, graph, smtp
	Attempts      int           `json:"attempts"`
	CreatedAt     time.Time     `json:"createdAt"`
	NextAt        time.Time     `json:"nextAt"`
	LeaseUntil    time.Time     `json:"-"`
	SentAt        time.Time     `json:"sentAt"`
	ServerReply   string        `json:"serverReply,omitempty"`
	LastError     *ErrorRecord  `json:"lastError,omitempty"`
}

// NewOutgoingID makes an outgoing message's id: "o_" and 20 random base32 characters.
func NewOutgoingID() string {
	b := make([]byte, 13)
	rand.Read(b)
	return "o_" + idEncoding.EncodeToString(b)[:20]
}

// ValidOutgoingID reports whether s has the shape of an outgoing message's id.
func ValidOutgoingID(s string) bool {
	return len(s) == 22 && strings.HasPrefix(s, "o_") && ValidMessageID("m_"+s[2:])
}
