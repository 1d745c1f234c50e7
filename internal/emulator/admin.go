package emulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"inkorg/internal/emulator/entra"
	"inkorg/internal/emulator/exo"
	"inkorg/internal/emulator/graph"
)

// maxAdminMessage bounds a message delivered through the admin API (Exchange's own limit is 150 MB).
const maxAdminMessage = 64 << 20

// FaultsRequest is the body of POST /_emulator/faults. Each section present replaces that part's
// faults; absent sections are left as they are. DELETE /_emulator/faults clears everything.
type FaultsRequest struct {
	IMAP         *IMAPFaultsJSON   `json:"imap,omitempty"`
	Token        *TokenFaultsJSON  `json:"token,omitempty"`
	ExpireSecret *ExpireSecretJSON `json:"expireSecret,omitempty"`
	Graph        *GraphFaultsJSON  `json:"graph,omitempty"`
	SMTP         *SMTPFaultsJSON   `json:"smtp,omitempty"`
}

// SMTPFaultsJSON are the SMTP front end's faults, each for the next message only.
type SMTPFaultsJSON struct {
	DropAtMail    bool `json:"dropAtMail"`    // close the connection at MAIL FROM, no reply
	DropAfterData bool `json:"dropAfterData"` // deliver the message, then close instead of answering 250
}

// IMAPFaultsJSON are the IMAP front end's faults.
type IMAPFaultsJSON struct {
	DropAfterFetch int  `json:"dropAfterFetch"` // drop the connection after N FETCH responses
	StallMs        int  `json:"stallMs"`        // leave commands unanswered for this long
	ThrottleMs     int  `json:"throttleMs"`     // answer "Request is throttled" for this long
	RefuseLogins   bool `json:"refuseLogins"`   // "NO AUTHENTICATE failed." to every login
}

// TokenFaultsJSON are the token endpoint's faults.
type TokenFaultsJSON struct {
	Status5xx int `json:"status5xx"` // 0, or 500..599: every token request fails with it
	StallMs   int `json:"stallMs"`   // hold every token request this long
}

// ExpireSecretJSON expires an app's secret now (all its secrets when SecretID is empty).
type ExpireSecretJSON struct {
	ClientID string `json:"clientId"`
	SecretID string `json:"secretId,omitempty"`
}

// GraphFaultsJSON are the Graph front end's faults.
type GraphFaultsJSON struct {
	ThrottleMs        int  `json:"throttleMs"`                  // answer 429 ApplicationThrottled (Retry-After) for this long
	ExpireDeltaTokens bool `json:"expireDeltaTokens,omitempty"` // forget every delta/skip token now (410 SyncStateNotFound next)
}

// faultsState is what GET /_emulator/faults answers.
type faultsState struct {
	IMAP  IMAPFaultsJSON  `json:"imap"`
	Token TokenFaultsJSON `json:"token"`
	Graph GraphFaultsJSON `json:"graph"`
	SMTP  SMTPFaultsJSON  `json:"smtp"`
}

type adminError struct {
	Error string `json:"error"`
}

func writeAdminJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"encoding failed"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func adminFail(w http.ResponseWriter, status int, format string, a ...any) {
	writeAdminJSON(w, status, adminError{Error: fmt.Sprintf(format, a...)})
}

func storeStatus(err error) int {
	switch {
	case errors.Is(err, exo.ErrNoMailbox), errors.Is(err, exo.ErrNoFolder), errors.Is(err, exo.ErrNoMessage):
		return http.StatusNotFound
	default:
		return http.StatusBadRequest
	}
}

// registerAdmin mounts the admin API on its own mux (paths under /_emulator/ only), so that its
// catch-all 404 cannot collide with Entra's /{tenant}/... patterns.
func (e *Emulator) registerAdmin(mux *http.ServeMux) {
	mux.HandleFunc("GET /_emulator/info", func(w http.ResponseWriter, r *http.Request) {
		writeAdminJSON(w, http.StatusOK, e.Info())
	})
	mux.HandleFunc("POST /_emulator/mailboxes/{address}/messages", e.adminDeliver)
	mux.HandleFunc("GET /_emulator/mailboxes/{address}/folders", e.adminFolders)
	mux.HandleFunc("GET /_emulator/mailboxes/{address}/folders/{folder}/messages", e.adminMessages)
	mux.HandleFunc("GET /_emulator/mailboxes/{address}/folders/{folder}/messages/{uid}", e.adminRaw)
	mux.HandleFunc("GET /_emulator/requests", func(w http.ResponseWriter, r *http.Request) {
		writeAdminJSON(w, http.StatusOK, map[string][]entra.RequestRecord{"requests": e.entra.Requests()})
	})
	mux.HandleFunc("GET /_emulator/faults", e.adminGetFaults)
	mux.HandleFunc("POST /_emulator/faults", e.adminSetFaults)
	mux.HandleFunc("DELETE /_emulator/faults", func(w http.ResponseWriter, r *http.Request) {
		e.imap.SetFaults(exo.IMAPFaults{})
		e.entra.ClearFaults()
		e.graph.SetFaults(graph.Faults{})
		e.smtp.SetFaults(exo.SMTPFaults{})
		e.log.Info("faults cleared")
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		adminFail(w, http.StatusNotFound, "no admin endpoint %s %s", r.Method, r.URL.Path)
	})
}

func (e *Emulator) adminDeliver(w http.ResponseWriter, r *http.Request) {
	addr := r.PathValue("address")
	folder := r.URL.Query().Get("folder")
	if folder == "" {
		folder = "INBOX"
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAdminMessage))
	if err != nil {
		adminFail(w, http.StatusRequestEntityTooLarge, "message body: %v", err)
		return
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		adminFail(w, http.StatusBadRequest, "empty message: POST the raw RFC 5322 message as the body")
		return
	}
	if !e.store.HasMailbox(addr) {
		adminFail(w, http.StatusNotFound, "no mailbox %q", addr)
		return
	}
	uid, err := e.store.Deliver(addr, folder, raw)
	if err != nil {
		adminFail(w, storeStatus(err), "deliver: %v", err)
		return
	}
	writeAdminJSON(w, http.StatusCreated, map[string]any{"mailbox": addr, "folder": folder, "uid": uid})
}

type folderJSON struct {
	Name        string `json:"name"`
	Messages    uint32 `json:"messages"`
	Unseen      uint32 `json:"unseen"`
	UIDValidity uint32 `json:"uidValidity"`
	UIDNext     uint32 `json:"uidNext"`
}

func (e *Emulator) adminFolders(w http.ResponseWriter, r *http.Request) {
	addr := r.PathValue("address")
	fs, err := e.store.Folders(addr)
	if err != nil {
		adminFail(w, storeStatus(err), "folders: %v", err)
		return
	}
	out := make([]folderJSON, 0, len(fs))
	for _, f := range fs {
		out = append(out, folderJSON{Name: f.Name, Messages: f.Messages, Unseen: f.Unseen, UIDValidity: f.UIDValidity, UIDNext: f.UIDNext})
	}
	writeAdminJSON(w, http.StatusOK, map[string]any{"mailbox": addr, "folders": out})
}

type messageJSON struct {
	UID          uint32    `json:"uid"`
	Size         int       `json:"size"`
	Subject      string    `json:"subject"`
	From         string    `json:"from"`
	Flags        []string  `json:"flags"`
	InternalDate time.Time `json:"internalDate"`
}

func (e *Emulator) adminMessages(w http.ResponseWriter, r *http.Request) {
	addr, folder := r.PathValue("address"), r.PathValue("folder")
	ms, err := e.store.Messages(addr, folder)
	if err != nil {
		adminFail(w, storeStatus(err), "messages: %v", err)
		return
	}
	out := make([]messageJSON, 0, len(ms))
	for _, m := range ms {
		flags := m.Flags
		if flags == nil {
			flags = []string{}
		}
		out = append(out, messageJSON{UID: m.UID, Size: m.Size, Subject: m.Subject, From: m.From, Flags: flags, InternalDate: m.InternalDate})
	}
	writeAdminJSON(w, http.StatusOK, map[string]any{"mailbox": addr, "folder": folder, "messages": out})
}

func (e *Emulator) adminRaw(w http.ResponseWriter, r *http.Request) {
	addr, folder := r.PathValue("address"), r.PathValue("folder")
	uid, err := strconv.ParseUint(r.PathValue("uid"), 10, 32)
	if err != nil || uid == 0 {
		adminFail(w, http.StatusBadRequest, "uid %q is not a positive 32-bit number", r.PathValue("uid"))
		return
	}
	raw, err := e.store.Raw(addr, folder, uint32(uid))
	if err != nil {
		adminFail(w, storeStatus(err), "message: %v", err)
		return
	}
	w.Header().Set("Content-Type", "message/rfc822")
	w.Header().Set("Content-Length", strconv.Itoa(len(raw)))
	_, _ = w.Write(raw)
}

func (e *Emulator) currentFaults() faultsState {
	imf := e.imap.Faults()
	tf := e.entra.CurrentFaults()
	sf := e.smtp.Faults()
	return faultsState{
		IMAP: IMAPFaultsJSON{DropAfterFetch: imf.DropAfterFetch, StallMs: int(imf.Stall / time.Millisecond),
			ThrottleMs: int(imf.Throttle / time.Millisecond), RefuseLogins: imf.RefuseLogins},
		Token: TokenFaultsJSON{Status5xx: tf.Status, StallMs: int(tf.Stall / time.Millisecond)},
		Graph: GraphFaultsJSON{ThrottleMs: int(e.graph.ThrottleLeft() / time.Millisecond)},
		SMTP:  SMTPFaultsJSON{DropAtMail: sf.DropAtMail, DropAfterData: sf.DropAfterData},
	}
}

func (e *Emulator) adminGetFaults(w http.ResponseWriter, r *http.Request) {
	writeAdminJSON(w, http.StatusOK, e.currentFaults())
}

func (e *Emulator) adminSetFaults(w http.ResponseWriter, r *http.Request) {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
	dec.DisallowUnknownFields()
	var req FaultsRequest
	if err := dec.Decode(&req); err != nil {
		adminFail(w, http.StatusBadRequest, "faults: %v", err)
		return
	}
	if req.IMAP == nil && req.Token == nil && req.ExpireSecret == nil && req.Graph == nil && req.SMTP == nil {
		adminFail(w, http.StatusBadRequest, "faults: give at least one of imap, smtp, token, graph, expireSecret")
		return
	}
	const maxMs = 10 * 60 * 1000
	if f := req.IMAP; f != nil {
		if f.DropAfterFetch < 0 || f.StallMs < 0 || f.ThrottleMs < 0 || f.StallMs > maxMs || f.ThrottleMs > maxMs {
			adminFail(w, http.StatusBadRequest, "faults.imap: counts and durations must be 0..%d", maxMs)
			return
		}
	}
	if f := req.Token; f != nil {
		if f.Status5xx != 0 && (f.Status5xx < 500 || f.Status5xx > 599) {
			adminFail(w, http.StatusBadRequest, "faults.token.status5xx must be 0 or 500..599, not %d", f.Status5xx)
			return
		}
		if f.StallMs < 0 || f.StallMs > maxMs {
			adminFail(w, http.StatusBadRequest, "faults.token.stallMs must be 0..%d", maxMs)
			return
		}
	}
	if f := req.Graph; f != nil && (f.ThrottleMs < 0 || f.ThrottleMs > maxMs) {
		adminFail(w, http.StatusBadRequest, "faults.graph.throttleMs must be 0..%d", maxMs)
		return
	}
	if es := req.ExpireSecret; es != nil {
		if es.ClientID == "" {
			adminFail(w, http.StatusBadRequest, "faults.expireSecret.clientId is required")
			return
		}
		if err := e.entra.ExpireSecret(es.ClientID, es.SecretID); err != nil {
			adminFail(w, http.StatusNotFound, "faults.expireSecret: %v", err)
			return
		}
	}
	if f := req.IMAP; f != nil {
		e.imap.SetFaults(exo.IMAPFaults{DropAfterFetch: f.DropAfterFetch, Stall: time.Duration(f.StallMs) * time.Millisecond,
			Throttle: time.Duration(f.ThrottleMs) * time.Millisecond, RefuseLogins: f.RefuseLogins})
	}
	if f := req.Graph; f != nil {
		e.graph.SetFaults(graph.Faults{Throttle: time.Duration(f.ThrottleMs) * time.Millisecond})
		if f.ExpireDeltaTokens {
			e.graph.ExpireSyncStates()
		}
	}
	if f := req.SMTP; f != nil {
		e.smtp.SetFaults(exo.SMTPFaults{DropAtMail: f.DropAtMail, DropAfterData: f.DropAfterData})
	}
	if f := req.Token; f != nil {
		e.entra.SetFaults(entra.Faults{Status: f.Status5xx, Stall: time.Duration(f.StallMs) * time.Millisecond})
	}
	e.log.Info("faults set", "faults", e.currentFaults())
	writeAdminJSON(w, http.StatusOK, e.currentFaults())
}
