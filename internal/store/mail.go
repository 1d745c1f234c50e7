package store

import (
	"context"
	"errors"
	"time"

	"inkorg/internal/settings"
)

// Mail is the incoming-mail half of the store: messages, where they are on the server, cursors, and
// the ERP's side (listing, raw bytes, acknowledgement, webhook deliveries).
//
// The exactly-once rule lives here: CommitBatch stores a batch of fetched messages, records where each
// was found and advances the folder's cursor in one durable transaction; only after it returns does
// the worker touch the server (move), and the move is recorded with MovedThrough. A crash before the
// commit fetches the batch again; a crash after it finds the moves in PendingMoves. A message whose
// bytes the account already has is not stored twice.
//
// Moves are recorded as a watermark per folder, not per message: the worker moves committed batches
// in the order of their UIDs, so "every message up to UID n has been moved" is one number in the
// cursor's row instead of a write to every message's row (and to an index of the unmoved ones).
type Mail interface {
	// Cursor is how far a folder has been read; the zero Cursor when never.
	Cursor(ctx context.Context, accountID int64, folder string) (Cursor, error)
	// ResetCursor starts a folder again under a new UIDVALIDITY (the server renumbered it).
	ResetCursor(ctx context.Context, accountID int64, folder string, uidValidity uint32) error
	// CommitBatch stores the batch and advances the cursor to b.LastUID, atomically and durably. A
	// batch with nothing to move (no message with a Dest, as in a folder left in place) advances
	// MovedUID with it when every message before it is moved, so that PendingMoves does not read
	// such a folder's messages again at every start.
	CommitBatch(ctx context.Context, b Batch) ([]Committed, error)
	// PendingMoves lists the messages stored but not yet moved on the server: those of each of the
	// account's folders numbered under its cursor's UIDVALIDITY, above its MovedUID, with a
	// destination; by folder, then UID.
	PendingMoves(ctx context.Context, accountID int64) ([]PendingMove, error)
	// MovedThrough records that every message stored from the folder under uidValidity with a UID up
	// to uid has been moved on the server (or had nowhere to go): the caller moves in UID order, and
	// calls it only once all of them are. A lower uid than recorded, or a UIDVALIDITY other than the
	// cursor's, changes nothing.
	MovedThrough(ctx context.Context, accountID int64, folder string, uidValidity, uid uint32) error

	// Messages lists stored messages after a cursor (Seq), oldest first.
	Messages(ctx context.Context, q MessageQuery) ([]Message, error)
	// Message returns one message by its id; ErrNotFound.
	Message(ctx context.Context, id string) (Message, error)
	// Raw returns a message's bytes exactly as the server sent them; ErrNotFound.
	Raw(ctx context.Context, id string) ([]byte, error)
	// Ack marks a message as taken by the ERP; acknowledging twice is fine. ErrNotFound.
	Ack(ctx context.Context, id string) (time.Time, error)

	// ClaimAccount makes holder the one process that reads the account for the next ttl, unless
	// another holder's claim has not lapsed yet; claiming again before it lapses renews it. It
	// returns the claim as it stands (Held says whether holder has it). With several inkorg
	// processes on one database, only the holder runs a worker for the account. The time is the
	// database's (PostgreSQL) or this host's (SQLite).
	ClaimAccount(ctx context.Context, accountID int64, holder string, ttl time.Duration) (Claim, error)
	// ReleaseAccount ends holder's claim, if it still has it, so that another process takes over at
	// once.
	ReleaseAccount(ctx context.Context, accountID int64, holder string) error

	// AccountStates and PutAccountState are the workers' dashboard: state, last poll, last error.
	AccountStates(ctx context.Context) ([]AccountState, error)
	PutAccountState(ctx context.Context, s AccountState) error
}

// Claim says which process reads an account, and until when unless renewed.
type Claim struct {
	Holder string
	Until  time.Time
	Held   bool // the caller is the holder
}

// Cursor is the read position in one folder.
type Cursor struct {
	UIDValidity uint32
	LastUID     uint32
	MovedUID    uint32 // every stored message up to this UID has been moved (MovedThrough)
}

// Batch is a batch of messages fetched from one folder.
type Batch struct {
	AccountID   int64
	Account     string
	Type        settings.IncomingType
	Folder      string
	UIDValidity uint32
	LastUID     uint32 // the cursor after the batch: the highest UID fetched
	Messages    []NewMessage
	// Bodies, when set, is the memory the messages' Raw were read into, one after the other (see
	// internal/ingest's batchBuffer): a store that writes the bytes to files may write it in one
	// piece, without copying. It is a hint: Raw is what counts.
	Bodies []byte
}

// HasMoves says whether any of the batch's messages is to be moved.
func HasMoves(b Batch) bool {
	for _, m := range b.Messages {
		if m.Dest != "" {
			return true
		}
	}
	return false
}

// NewMessage is one fetched message: its place on the server, its metadata, its bytes, and where it
// is to be moved ("" = leave it).
type NewMessage struct {
	UID  uint32
	Meta Message // ID, Seq, Account, Type and ReceivedAt are filled in by the store
	Raw  []byte
	Dest string
}

// Committed says what became of one message of a batch.
type Committed struct {
	UID       uint32
	ID        string
	Duplicate bool // the account already had these bytes: no new message
}

// PendingMove is a stored message still to be moved on the server.
type PendingMove struct {
	Folder      string
	UIDValidity uint32
	UID         uint32
	Dest        string
}

// Message is a stored message's metadata.
type Message struct {
	ID          string                `json:"id"`
	Seq         int64                 `json:"seq"`
	AccountID   int64                 `json:"-"`
	Account     string                `json:"account"`
	Type        settings.IncomingType `json:"type"`
	MessageID   string                `json:"messageId"`
	SHA256      string                `json:"sha256"`
	Size        int64                 `json:"size"`
	From        string                `json:"from"`
	To          []string              `json:"to"`
	Cc          []string              `json:"cc"`
	Subject     string                `json:"subject"`
	Date        time.Time             `json:"date"`
	ReceivedAt  time.Time             `json:"receivedAt"`
	Attachments []Attachment          `json:"attachments"`
	M2M         *M2M                  `json:"m2m,omitempty"`
	Problems    []string              `json:"problems,omitempty"`
	Failed      string                `json:"failed,omitempty"` // why it could not be read or routed
	AckedAt     *time.Time            `json:"ackedAt,omitempty"`
}

// Attachment is an attachment's metadata; its bytes are extracted from the raw message on demand.
type Attachment struct {
	Index       int    `json:"index"`
	Filename    string `json:"filename"`
	ContentType string `json:"contentType"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256"`
	Inline      bool   `json:"inline,omitempty"`
}

// M2M is what a Monitor-to-Monitor message carries.
type M2M struct {
	Kind           string `json:"kind"`
	XMLIndex       int    `json:"xmlIndex"`
	PDFIndex       int    `json:"pdfIndex"`
	DocumentNumber string `json:"documentNumber,omitempty"`
	Reason         string `json:"reason,omitempty"`
}

// MessageQuery selects messages for the ERP.
type MessageQuery struct {
	Type    settings.IncomingType // "" = all types
	Account string                // "" = all accounts
	After   int64                 // Seq cursor: messages with a greater Seq
	Limit   int                   // at most this many (the store caps it)
	Unacked bool                  // only messages not yet acknowledged
	Newest  bool                  // the newest first (greatest Seq first) instead of the oldest
}

// MaxPage is the most messages one Messages call (or outgoing messages one OutgoingList or
// DueOutgoing call) returns.
const MaxPage = 1000

// PageLimit is how many a listing asked for limit returns: limit, or MaxPage for a limit that is not
// positive or is greater.
func PageLimit(limit int) int {
	if limit <= 0 || limit > MaxPage {
		return MaxPage
	}
	return limit
}

// AccountState is what a worker last reported about its account.
type AccountState struct {
	AccountID    int64        `json:"accountId"`
	State        string       `json:"state"` // starting, idle, fetching, backoff, paused, stopped
	Detail       string       `json:"detail,omitempty"`
	LastError    *ErrorRecord `json:"lastError,omitempty"`
	LastPoll     time.Time    `json:"lastPoll"`
	Backlog      int          `json:"backlog"`
	TokenExpires time.Time    `json:"tokenExpires"`
	UpdatedAt    time.Time    `json:"updatedAt"`
}

// ErrorRecord is a diag error as stored: no secret is ever in one.
type ErrorRecord struct {
	At      time.Time `json:"at"`
	Stage   string    `json:"stage"`
	Kind    string    `json:"kind"`
	Code    string    `json:"code,omitempty"`
	Summary string    `json:"summary"`
	Remedy  string    `json:"remedy,omitempty"`
	Actions []string  `json:"actions,omitempty"`
	Server  string    `json:"server,omitempty"`
	TraceID string    `json:"traceId,omitempty"`
}

// ErrBatch means a batch is malformed (a caller's bug): nothing was written.
var ErrBatch = errors.New("invalid batch")

// ErrUIDValidity means the batch's UIDVALIDITY is not the cursor's: the server renumbered the folder
// and the cursor must be reset (ResetCursor) before anything is committed. Nothing was written.
var ErrUIDValidity = errors.New("UIDVALIDITY differs from the cursor's")
