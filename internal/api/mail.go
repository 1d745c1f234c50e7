package api

// Outgoing mail (issue 6):
//
//	POST /api/v1/mail                    {"asUser": NAME | "asWebshop": true, "to": [...], "cc", "bcc", "subject",
//	                                      "text", "html", "attachments": [{"name", "contentType", "contentBase64"}],
//	                                      "replyTo", "inReplyTo", "relatedRecord"}
//	                                     → 202 {"id", "state": "queued"}; under the e-mail method outlook-client
//	                                       200 with the .eml draft (message/rfc822, X-Unsent: 1), nothing queued
//	GET  /api/v1/mail/{id}               → {"id", "state", "attempts", "transport", "sentAt", "lastError": {...}}
//	POST /api/v1/mail/{id}/resolve       {"resend": true|false} settles a message in state "unknown"
//
// "to", "cc", "bcc" and "replyTo" take an address or a list of addresses.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"inkorg/internal/compose"
	"inkorg/internal/outbox"
	"inkorg/internal/store"
)

// maxMailRequest bounds a POST /api/v1/mail body (Exchange's 35 MB message, base64, and some).
const maxMailRequest = 50 << 20

// addressList accepts "a@x" or ["a@x", "b@y"].
type addressList []string

func (l *addressList) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*l = []string{s}
		return nil
	}
	var ss []string
	if err := json.Unmarshal(b, &ss); err != nil {
		return errors.New("give an address or a list of addresses")
	}
	*l = ss
	return nil
}

type mailAttachment struct {
	Name          string `json:"name"`
	ContentType   string `json:"contentType"`
	ContentBase64 string `json:"contentBase64"`
}

type mailRequest struct {
	AsUser        string           `json:"asUser"`
	AsWebshop     bool             `json:"asWebshop"`
	To            addressList      `json:"to"`
	Cc            addressList      `json:"cc"`
	Bcc           addressList      `json:"bcc"`
	ReplyTo       addressList      `json:"replyTo"`
	Subject       string           `json:"subject"`
	Text          string           `json:"text"`
	HTML          string           `json:"html"`
	Attachments   []mailAttachment `json:"attachments"`
	InReplyTo     string           `json:"inReplyTo"`
	RelatedRecord string           `json:"relatedRecord"`
}

// mailView is GET /api/v1/mail/{id}.
type mailView struct {
	store.Outgoing
	Bcc any `json:"bcc,omitempty"` // hidden: the ERP posted them, the status need not repeat them
}

// mailRoutes are the outgoing mail's entries of routeTable.
func mailRoutes() []route {
	return []route{
		{http.MethodPost, "/api/v1/mail", false, (*handler).postMail},
		{http.MethodGet, "/api/v1/mail/{id}", false, (*handler).getMail},
		{http.MethodPost, "/api/v1/mail/{id}/resolve", false, (*handler).resolveMail},
	}
}

func (h *handler) noOutbox(w http.ResponseWriter) bool {
	if h.cfg.Outbox == nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "sending is not configured in this process")
		return true
	}
	return false
}

func (h *handler) postMail(w http.ResponseWriter, r *http.Request) {
	if h.noOutbox(w) {
		return
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxMailRequest))
	dec.DisallowUnknownFields()
	var req mailRequest
	if err := dec.Decode(&req); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, "too_large", "the message is larger than 50 MB")
			return
		}
		writeError(w, http.StatusBadRequest, "bad_request", "the body must be a JSON mail request: "+err.Error())
		return
	}
	or := outbox.Request{AsUser: req.AsUser, AsWebshop: req.AsWebshop, To: req.To, Cc: req.Cc, Bcc: req.Bcc, ReplyTo: req.ReplyTo,
		Subject: req.Subject, Text: req.Text, HTML: req.HTML, InReplyTo: req.InReplyTo, RelatedRecord: req.RelatedRecord}
	for i, a := range req.Attachments {
		data, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(a.ContentBase64), ""))
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", "attachments["+strconv.Itoa(i)+"].contentBase64 is not base64")
			return
		}
		or.Attachments = append(or.Attachments, compose.Attachment{Name: a.Name, ContentType: a.ContentType, Data: data})
	}
	res, err := h.cfg.Outbox.Submit(r.Context(), or)
	var re *outbox.RequestError
	switch {
	case errors.As(err, &re) && re.NotFound:
		writeError(w, http.StatusNotFound, "unknown_user", re.Error())
		return
	case errors.As(err, &re):
		writeError(w, http.StatusUnprocessableEntity, "invalid_mail", re.Error())
		return
	case err != nil:
		h.internal(w, "queue the message", err)
		return
	}
	if res.Draft != nil {
		w.Header().Set("Content-Type", "message/rfc822")
		w.Header().Set("Content-Disposition", `attachment; filename="draft.eml"`)
		w.WriteHeader(http.StatusOK)
		w.Write(res.Draft)
		return
	}
	w.Header().Set("Location", "/api/v1/mail/"+res.ID)
	writeJSON(w, http.StatusAccepted, map[string]string{"id": res.ID, "state": string(res.Message.State)})
}

func (h *handler) getMail(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !store.ValidOutgoingID(id) {
		writeError(w, http.StatusNotFound, "not_found", "no outgoing message "+id)
		return
	}
	m, err := h.cfg.Store.Outgoing(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", "no outgoing message "+id)
		return
	}
	if err != nil {
		h.internal(w, "read the outgoing message", err)
		return
	}
	writeJSON(w, http.StatusOK, mailView{Outgoing: m})
}

func (h *handler) resolveMail(w http.ResponseWriter, r *http.Request) {
	if h.noOutbox(w) {
		return
	}
	id := r.PathValue("id")
	var req struct {
		Resend *bool `json:"resend"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.Resend == nil {
		writeError(w, http.StatusBadRequest, "bad_request", `give {"resend": true} to send it again or {"resend": false} to record that it arrived`)
		return
	}
	err := h.cfg.Outbox.Resolve(r.Context(), id, *req.Resend)
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", "no outgoing message "+id)
	case errors.Is(err, store.ErrOutgoingState):
		writeError(w, http.StatusConflict, "conflict", "only a message in state unknown (or failed, to resend) can be resolved")
	case err != nil:
		h.internal(w, "resolve the outgoing message", err)
	default:
		m, _ := h.cfg.Store.Outgoing(r.Context(), id)
		writeJSON(w, http.StatusOK, mailView{Outgoing: m})
	}
}
