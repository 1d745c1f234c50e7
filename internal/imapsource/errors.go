package imapsource

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"

	"inkorg/internal/diag"
)

// Stages of the ingest commands. internal/diag has no constants for them yet (the lead may add
// StageSearch, StageFetch, StageMove, StageFolder and StageIdle there); the values are what
// diag.Error prints before the colon.
const (
	StageSearch diag.Stage = "search"
	StageFetch  diag.Stage = "fetch"
	StageMove   diag.Stage = "move"
	StageFolder diag.Stage = "folder"
	StageIdle   diag.Stage = "idle"
)

// guard runs one blocking exchange with the server under a watchdog: if it has not finished after
// the configured Timeout, the connection is closed (which ends every pending command) and the error
// says the server stopped answering. go-imap only bounds the time inside one response, not the wait
// for the first byte of the next one, so a stalled server would otherwise block forever.
func (c *Conn) guard(stage diag.Stage, what string, f func() error) error {
	var fired atomic.Bool
	t := time.AfterFunc(c.timeout, func() {
		fired.Store(true)
		c.c.Close()
	})
	err := f()
	t.Stop()
	if err == nil {
		return nil
	}
	if fired.Load() {
		return c.stallError(stage, what, err)
	}
	return c.imapError(stage, err)
}

// stallError is the error for a server that stopped answering (the connection is closed by then).
func (c *Conn) stallError(stage diag.Stage, what string, err error) *diag.Error {
	return &diag.Error{Stage: stage, Kind: diag.KindTransient, Code: "timeout",
		Summary: fmt.Sprintf("the IMAP server at %s did not answer %s within %s", c.cfg.Addr, what, c.timeout),
		Remedy:  "inkorg reconnects by itself; if it lasts, check the server and the network", Err: err}
}

// brokenError is the error for a connection that dropped in the middle of a command.
func (c *Conn) brokenError(stage diag.Stage, err error) *diag.Error {
	server := ""
	if err != nil {
		server = err.Error()
	}
	return &diag.Error{Stage: stage, Kind: diag.KindTransient, Code: "network", Summary: "the connection to " + c.cfg.Addr + " broke",
		Server: server, Remedy: "inkorg reconnects by itself", Err: err}
}

// isRefusal reports whether err is a server's tagged NO or BAD (as opposed to a broken
// connection), and not throttling.
func isRefusal(err error) (*imap.Error, bool) {
	var ie *imap.Error
	if !errors.As(err, &ie) || strings.Contains(ie.Text, "Suggested Backoff Time") {
		return nil, false
	}
	return ie, true
}
