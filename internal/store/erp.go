package store

import (
	"context"
	"time"

	"inkorg/internal/settings"
)

// Tokens are the ERP's API bearer tokens. Only a token's hash is stored; the token itself is shown once
// when it is made.
type Tokens interface {
	// CreateAPIToken stores a new token's hash under a name; ErrExists when the name is taken.
	CreateAPIToken(ctx context.Context, name string, hash []byte) (APIToken, error)
	// APITokenByHash finds a token by the hash of what a client presented, and records its use;
	// ErrNotFound.
	APITokenByHash(ctx context.Context, hash []byte) (APIToken, error)
	APITokens(ctx context.Context) ([]APIToken, error)
	// RevokeAPIToken deletes a token; ErrNotFound.
	RevokeAPIToken(ctx context.Context, name string) error
}

// APIToken is a token's record (never the token).
type APIToken struct {
	ID        int64     `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"createdAt"`
	LastUsed  time.Time `json:"lastUsed"`
}

// Webhooks are the ERP's push side: a URL per incoming type, and the deliveries owed to it. A message
// stored for a type with a webhook gets a delivery in the same transaction (CommitBatch), so a crash
// never loses one; delivery is at least once, with the message id as the idempotency key.
type Webhooks interface {
	// PutWebhook sets the webhook of a type; an empty URL removes it.
	PutWebhook(ctx context.Context, w Webhook, actor string) error
	Webhooks(ctx context.Context) ([]Webhook, error)
	// DueDeliveries returns undelivered deliveries whose time has come, oldest first.
	DueDeliveries(ctx context.Context, now time.Time, limit int) ([]Delivery, error)
	// ClaimDeliveries returns up to limit due deliveries, oldest first, and defers each to until in
	// the same transaction, so that another process sharing the database does not deliver them
	// meanwhile; DeliveryDone then records the outcome. A process that dies holding a claim leaves the
	// delivery due again at until (at least once, never lost).
	ClaimDeliveries(ctx context.Context, now, until time.Time, limit int) ([]Delivery, error)
	// UnclaimDelivery gives a claimed delivery back as it was claimed (an attempt cut short by a
	// shutdown does not count): due again at d.NextAt.
	UnclaimDelivery(ctx context.Context, d Delivery) error
	// DeliveryDone records a delivery's success (next is ignored) or its failure and next attempt.
	DeliveryDone(ctx context.Context, d Delivery, ok bool, next time.Time, errText string) error
}

// Webhook is the push target of one incoming type.
type Webhook struct {
	Type   settings.IncomingType `json:"type"`
	URL    string                `json:"url"`
	Secret settings.Secret       `json:"secret"` // the HMAC-SHA256 key; shown only as set / not set
}

// Delivery is one message owed to one webhook.
type Delivery struct {
	MessageID string                `json:"messageId"`
	Type      settings.IncomingType `json:"type"`
	Attempts  int                   `json:"attempts"`
	NextAt    time.Time             `json:"nextAt"`
	LastError string                `json:"lastError,omitempty"`
}
