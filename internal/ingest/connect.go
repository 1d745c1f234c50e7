package ingest

import (
	"context"
	"time"

	"inkorg/internal/diag"
	"inkorg/internal/entra"
	"inkorg/internal/imapsource"
	"inkorg/internal/settings"
)

// Session is what a worker needs of a signed-in connection to its mailbox. imapsource.Conn is one; the
// tests use scripted fakes too.
type Session interface {
	Select(folder string) (imapsource.Mailbox, error)
	EnsureFolder(name string) error
	SearchNewer(lastUID uint32) ([]uint32, error)
	Sizes(uids []uint32) (map[uint32]int64, error)
	FetchInto(uids []uint32, bufs imapsource.Buffers, fn func(imapsource.Fetched) error) error
	Move(uids []uint32, dest string) error
	Wait(ctx context.Context, max time.Duration) (bool, error)
	Close() error
}

// Target is everything a dialer needs to open one account's mailbox.
type Target struct {
	System  settings.System
	Account settings.IncomingAccount
	Eff     settings.EffectiveAccount
}

// Connected is a session and what signing in learnt.
type Connected struct {
	Session      Session
	TokenExpires time.Time // zero for user name and password
}

// DialFunc connects and signs in. Errors are *diag.Error.
type DialFunc func(ctx context.Context, t Target) (Connected, error)

var _ Session = (*imapsource.Conn)(nil)

// identity is who signs in for an account.
func identity(t Target) entra.Identity {
	return entra.IdentityFor(t.System, t.Eff.Exchange, t.Eff.ExchangeUsername.Value, t.Eff.ExchangePassword.Value)
}

// imapDialer signs in to Exchange Online with XOAUTH2 (checking the token's claims first), or to any
// IMAP server with the account's user name and password.
func imapDialer(cfg *Config) DialFunc {
	return func(ctx context.Context, t Target) (Connected, error) {
		e := t.Eff
		method := e.EmailMethod.Value
		if !method.ServerBased() {
			return Connected{}, &diag.Error{Stage: diag.StageSettings, Kind: diag.KindConfig, Code: "settings",
				Summary: "the system e-mail method hands mail to Outlook: there is no server to read " + t.Account.Address + " from",
				Remedy:  "choose a server-based e-mail method in the system settings"}
		}
		var tok entra.Token
		id := identity(t)
		facts := diag.Facts{Mailbox: t.Account.Address, Username: id.Username}
		addr := cfg.Cloud.IMAP
		if method == settings.MethodExchangeOnline {
			if cfg.Tokens == nil {
				return Connected{}, &diag.Error{Stage: diag.StageToken, Kind: diag.KindConfig, Summary: "no token provider"}
			}
			var err error
			if tok, facts, err = cfg.Tokens.CheckedToken(ctx, id, entra.PurposeIMAP, cfg.Tokens.Facts(id, t.Account.Address)); err != nil {
				return Connected{}, err
			}
		} else {
			addr = e.Server.IMAPAddr()
		}
		conn, err := imapsource.Dial(ctx, imapsource.Config{Addr: addr, TLSConfig: cfg.Cloud.TLSConfig(""), Timeout: cfg.Timeout, Facts: facts, Logger: cfg.Logger})
		if err != nil {
			return Connected{}, err
		}
		if method == settings.MethodExchangeOnline {
			err = conn.AuthenticateXOAUTH2(t.Account.Address, tok.Value())
			if err != nil && tok.FromCache {
				// A cached token Exchange refuses may have been revoked or outlived its app's secret:
				// ask Entra ID once more before calling it a configuration problem.
				conn.Close()
				cfg.Tokens.Forget(id, entra.PurposeIMAP)
				fresh, terr := cfg.Tokens.Token(ctx, id, entra.PurposeIMAP)
				if terr != nil {
					return Connected{}, terr
				}
				if conn, err = imapsource.Dial(ctx, imapsource.Config{Addr: addr, TLSConfig: cfg.Cloud.TLSConfig(""), Timeout: cfg.Timeout, Facts: facts, Logger: cfg.Logger}); err != nil {
					return Connected{}, err
				}
				tok = fresh
				err = conn.AuthenticateXOAUTH2(t.Account.Address, tok.Value())
			}
			if err != nil {
				cfg.Tokens.Forget(id, entra.PurposeIMAP) // the next attempt asks Entra ID afresh
			}
		} else {
			err = conn.Login(id.Username, id.Password.Reveal())
		}
		if err != nil {
			conn.Close()
			return Connected{}, err
		}
		return Connected{Session: conn, TokenExpires: tok.ExpiresOn}, nil
	}
}
