package web

import (
	"fmt"
	"net/http"
	"net/url"
	"time"

	"inkorg/internal/settings"
	"inkorg/internal/store"
)

type dashRow struct {
	ID           int64
	Address      string
	Type         string
	State        string
	Detail       string
	LastPoll     time.Time
	Backlog      int
	LastError    *store.ErrorRecord
	TokenExpires time.Time
	SecretNote   string // the client secret's expiry warning
	SecretBad    bool
}

type dashData struct {
	base
	Accounts []dashRow
}

// secretNote is the warning for a client secret that expires within the first reminder, or has expired.
func secretNote(l Lang, e settings.Field[settings.Date], today settings.Date) (string, bool) {
	if e.NotApplicable || e.Value.IsZero() {
		return "", false
	}
	days := e.Value.DaysFrom(today)
	switch {
	case days < 0:
		return l.T("Client secret") + " " + l.T("has expired") + " (" + e.Value.String() + ")", true
	case days <= settings.ExpiryReminders[0]:
		return l.T("Client secret") + " " + fmt.Sprintf(l.T("expires in %d days"), days) + " (" + e.Value.String() + ")", true
	}
	return e.Value.String(), false
}

func (h *Handler) dashboard(w http.ResponseWriter, r *http.Request, s *session) {
	if s.op.Role != store.RoleAdmin {
		http.Redirect(w, r, "/users/"+url.PathEscape(s.op.User), http.StatusSeeOther)
		return
	}
	ctx := r.Context()
	sys, err := h.cfg.Store.System(ctx)
	if err != nil {
		h.fail(w, r, s, err)
		return
	}
	as, err := h.cfg.Store.IncomingAccounts(ctx)
	if err != nil {
		h.fail(w, r, s, err)
		return
	}
	states, err := h.cfg.Store.AccountStates(ctx)
	if err != nil {
		h.fail(w, r, s, err)
		return
	}
	byID := map[int64]store.AccountState{}
	for _, st := range states {
		byID[st.AccountID] = st
	}
	today := settings.DateOf(h.cfg.Clock())
	d := dashData{base: h.base(r, s, "Overview")}
	for _, a := range as {
		e := settings.ResolveAccount(sys, a)
		row := dashRow{ID: a.ID, Address: a.Address, Type: s.lang.typeLabel(a.Type), State: "unknown"}
		if st, ok := byID[a.ID]; ok {
			row.State, row.Detail, row.LastPoll, row.Backlog, row.LastError, row.TokenExpires = st.State, st.Detail, st.LastPoll, st.Backlog, st.LastError, st.TokenExpires
		}
		row.SecretNote, row.SecretBad = secretNote(s.lang, e.ClientSecretExpires, today)
		d.Accounts = append(d.Accounts, row)
	}
	if ps, err := h.svc.Warnings(ctx, ""); err == nil {
		d.Problems = ps
	}
	h.render(w, http.StatusOK, "dashboard", d)
}

type messagesData struct {
	base
	Types    []option
	Type     string
	Messages []store.Message
}

func (h *Handler) messagesPage(w http.ResponseWriter, r *http.Request, s *session) {
	t := settings.IncomingType(r.URL.Query().Get("type"))
	if t != "" && !t.Valid() {
		t = ""
	}
	out, err := h.cfg.Store.Messages(r.Context(), store.MessageQuery{Type: t, Limit: 200, Newest: true})
	if err != nil {
		h.fail(w, r, s, err)
		return
	}
	d := messagesData{base: h.base(r, s, "Messages"), Type: string(t), Messages: out,
		Types: []option{{Value: "", Label: s.lang.T("All types"), Selected: t == ""}}}
	for _, x := range settings.IncomingTypes() {
		d.Types = append(d.Types, option{Value: string(x), Label: s.lang.typeLabel(x), Selected: x == t})
	}
	h.render(w, http.StatusOK, "messages", d)
}

type messageData struct {
	base
	M    store.Message
	Type string
}

func (h *Handler) messagePage(w http.ResponseWriter, r *http.Request, s *session) {
	m, err := h.cfg.Store.Message(r.Context(), r.PathValue("id"))
	if err != nil {
		h.fail(w, r, s, err)
		return
	}
	h.render(w, http.StatusOK, "message", messageData{base: h.base(r, s, "Messages"), M: m, Type: s.lang.typeLabel(m.Type)})
}

type outboxData struct {
	base
	Messages []store.Outgoing
}

func (h *Handler) outboxPage(w http.ResponseWriter, r *http.Request, s *session) {
	list, err := h.cfg.Store.OutgoingList(r.Context(), "", 200)
	if err != nil {
		h.fail(w, r, s, err)
		return
	}
	h.render(w, http.StatusOK, "outbox", outboxData{base: h.base(r, s, "Outbox"), Messages: list})
}

type auditData struct {
	base
	Entries []store.AuditEntry
}

func (h *Handler) auditPage(w http.ResponseWriter, r *http.Request, s *session) {
	list, err := h.cfg.Store.Audit(r.Context(), 300)
	if err != nil {
		h.fail(w, r, s, err)
		return
	}
	h.render(w, http.StatusOK, "audit", auditData{base: h.base(r, s, "Audit log"), Entries: list})
}
