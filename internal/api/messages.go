package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"inkorg/internal/mailparse"
	"inkorg/internal/settings"
	"inkorg/internal/store"
)

// Message is a stored message as the API and the webhooks show it.
type Message struct {
	ID          string                `json:"id"`
	Account     string                `json:"account"`
	Type        settings.IncomingType `json:"type"`
	MessageID   string                `json:"messageId"`
	From        string                `json:"from"`
	To          []string              `json:"to"`
	Cc          []string              `json:"cc"`
	Subject     string                `json:"subject"`
	Date        *time.Time            `json:"date"` // null when the message has no (readable) Date
	ReceivedAt  time.Time             `json:"receivedAt"`
	Size        int64                 `json:"size"`
	SHA256      string                `json:"sha256"`
	Attachments []Attachment          `json:"attachments"`
	M2M         *M2M                  `json:"m2m,omitempty"`
	Problems    []string              `json:"problems,omitempty"`
	Failed      string                `json:"failed,omitempty"`
	AckedAt     *time.Time            `json:"ackedAt"`
}

// Attachment is an attachment's metadata; GET /api/v1/messages/{id}/attachments/{index} gives its bytes.
type Attachment struct {
	Index       int    `json:"index"`
	Filename    string `json:"filename"`
	ContentType string `json:"contentType"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256"`
	Inline      bool   `json:"inline,omitempty"`
}

// M2M is what a Monitor-to-Monitor message carries: the document kind and which attachments hold the
// XML and the PDF (-1 when missing).
type M2M struct {
	Kind           string `json:"kind"`
	XMLIndex       int    `json:"xmlIndex"`
	PDFIndex       int    `json:"pdfIndex"`
	DocumentNumber string `json:"documentNumber,omitempty"`
	Reason         string `json:"reason,omitempty"`
}

// MessageOf is the API's (and the webhooks') view of a stored message.
func MessageOf(m store.Message) Message {
	v := Message{ID: m.ID, Account: m.Account, Type: m.Type, MessageID: m.MessageID, From: m.From, To: m.To, Cc: m.Cc,
		Subject: m.Subject, ReceivedAt: m.ReceivedAt.UTC(), Size: m.Size, SHA256: m.SHA256, Problems: m.Problems, Failed: m.Failed,
		Attachments: make([]Attachment, 0, len(m.Attachments))}
	if v.To == nil {
		v.To = []string{}
	}
	if v.Cc == nil {
		v.Cc = []string{}
	}
	if !m.Date.IsZero() {
		d := m.Date.UTC()
		v.Date = &d
	}
	if m.AckedAt != nil {
		a := m.AckedAt.UTC()
		v.AckedAt = &a
	}
	for _, a := range m.Attachments {
		v.Attachments = append(v.Attachments, Attachment{Index: a.Index, Filename: a.Filename, ContentType: a.ContentType, Size: a.Size, SHA256: a.SHA256, Inline: a.Inline})
	}
	if m.M2M != nil {
		v.M2M = &M2M{Kind: m.M2M.Kind, XMLIndex: m.M2M.XMLIndex, PDFIndex: m.M2M.PDFIndex, DocumentNumber: m.M2M.DocumentNumber, Reason: m.M2M.Reason}
	}
	return v
}

// MessagePage is the answer of GET /api/v1/messages.
type MessagePage struct {
	Messages []Message `json:"messages"`
	// Next is the cursor to pass as "after" for the following page; on an empty page it is the cursor
	// that was given, so the ERP can keep polling with it.
	Next string `json:"next"`
}

// DefaultLimit is the page size when the request names none.
const DefaultLimit = 100

// listParams are the query parameters of GET /api/v1/messages.
func listParams() []string { return []string{"type", "account", "after", "limit", "unacked"} }

// ParamError is a query parameter the API refuses.
type ParamError struct {
	Param   string
	Message string
}

func (e *ParamError) Error() string { return e.Param + ": " + e.Message }

// ParseListQuery reads the query of GET /api/v1/messages into a store query.
func ParseListQuery(q map[string][]string) (store.MessageQuery, error) {
	mq := store.MessageQuery{Limit: DefaultLimit}
	for k := range q {
		known := false
		for _, p := range listParams() {
			known = known || k == p
		}
		if !known {
			return mq, &ParamError{k, fmt.Sprintf("unknown parameter; the parameters are %s", strings.Join(listParams(), ", "))}
		}
	}
	one := func(name string) (string, error) {
		v := q[name]
		if len(v) > 1 {
			return "", &ParamError{name, "given more than once"}
		}
		if len(v) == 0 {
			return "", nil
		}
		return v[0], nil
	}
	t, err := one("type")
	if err != nil {
		return mq, err
	}
	if t != "" {
		if !settings.IncomingType(t).Valid() {
			return mq, &ParamError{"type", fmt.Sprintf("unknown type %q; the types are %s", t, typeList())}
		}
		mq.Type = settings.IncomingType(t)
	}
	if mq.Account, err = one("account"); err != nil {
		return mq, err
	}
	if len(mq.Account) > 320 {
		return mq, &ParamError{"account", "too long for an e-mail address"}
	}
	after, err := one("after")
	if err != nil {
		return mq, err
	}
	if mq.After, err = ParseCursor(after); err != nil {
		return mq, err
	}
	limit, err := one("limit")
	if err != nil {
		return mq, err
	}
	if limit != "" {
		n, err := strconv.Atoi(limit)
		if err != nil || n < 1 || n > store.MaxPage {
			return mq, &ParamError{"limit", fmt.Sprintf("%q is not a page size; give a whole number from 1 to %d (default %d)", clip(limit), store.MaxPage, DefaultLimit)}
		}
		mq.Limit = n
	}
	unacked, err := one("unacked")
	if err != nil {
		return mq, err
	}
	if unacked != "" {
		b, err := strconv.ParseBool(unacked)
		if err != nil {
			return mq, &ParamError{"unacked", fmt.Sprintf("%q is not a boolean; give true or false", clip(unacked))}
		}
		mq.Unacked = b
	}
	return mq, nil
}

// ParseCursor reads an "after" cursor; "" is the start.
func ParseCursor(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != s {
		return 0, &ParamError{"after", fmt.Sprintf("%q is not a cursor; pass the \"next\" of a previous response, or leave it out to start from the first message", clip(s))}
	}
	return n, nil
}

// FormatCursor is the cursor after the message with sequence number seq.
func FormatCursor(seq int64) string { return strconv.FormatInt(seq, 10) }

func typeList() string {
	var names []string
	for _, t := range settings.IncomingTypes() {
		names = append(names, string(t))
	}
	return strings.Join(names, ", ")
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

func (h *handler) listMessages(w http.ResponseWriter, r *http.Request) {
	q, err := ParseListQuery(r.URL.Query())
	if err != nil {
		badParam(w, err)
		return
	}
	ms, err := h.cfg.Store.Messages(r.Context(), q)
	if err != nil {
		h.internal(w, "list messages", err)
		return
	}
	page := MessagePage{Messages: make([]Message, 0, len(ms))}
	if q.After > 0 {
		page.Next = FormatCursor(q.After)
	}
	for _, m := range ms {
		page.Messages = append(page.Messages, MessageOf(m))
		page.Next = FormatCursor(m.Seq)
	}
	writeJSON(w, http.StatusOK, page)
}

// messageID is the path's {id} when it is a valid message id; else it answers 400 and returns false.
func messageID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := r.PathValue("id")
	if !store.ValidMessageID(id) {
		writeError(w, http.StatusBadRequest, "bad_id", fmt.Sprintf("%q is not a message id; ids look like m_ and 20 characters a-z, 2-7", clip(id)))
		return "", false
	}
	return id, true
}

// message reads the message named by the path's {id}, or answers the error and returns false.
func (h *handler) message(w http.ResponseWriter, r *http.Request) (store.Message, bool) {
	id, ok := messageID(w, r)
	if !ok {
		return store.Message{}, false
	}
	m, err := h.cfg.Store.Message(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", "no message "+id)
		return m, false
	}
	if err != nil {
		h.internal(w, "read message", err)
		return m, false
	}
	return m, true
}

func (h *handler) getMessage(w http.ResponseWriter, r *http.Request) {
	if m, ok := h.message(w, r); ok {
		writeJSON(w, http.StatusOK, MessageOf(m))
	}
}

func (h *handler) getRaw(w http.ResponseWriter, r *http.Request) {
	m, ok := h.message(w, r)
	if !ok {
		return
	}
	raw, ok := h.raw(w, r, m.ID)
	if !ok {
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "message/rfc822")
	hd.Set("ETag", `"`+m.SHA256+`"`)
	hd.Set("Content-Disposition", ContentDisposition(m.ID+".eml"))
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(raw))
}

func (h *handler) getAttachment(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("n")
	n, err := strconv.Atoi(ns)
	if err != nil || n < 0 || strconv.Itoa(n) != ns {
		writeError(w, http.StatusBadRequest, "bad_parameter", fmt.Sprintf("n: %q is not an attachment index; give the \"index\" of one of the message's attachments (0, 1, …)", clip(ns)))
		return
	}
	m, ok := h.message(w, r)
	if !ok {
		return
	}
	raw, ok := h.raw(w, r, m.ID)
	if !ok {
		return
	}
	var buf bytes.Buffer
	a, err := mailparse.Extract(bytes.NewReader(raw), n, &buf)
	if errors.Is(err, mailparse.ErrNoSuchAttachment) {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("message %s has no attachment %d (it has %d)", m.ID, n, len(m.Attachments)))
		return
	}
	if err != nil {
		h.internal(w, "extract attachment", err)
		return
	}
	filename := a.Filename
	for _, s := range m.Attachments {
		if s.Index == n && filename == "" {
			filename = s.Filename
		}
	}
	if filename == "" {
		filename = fmt.Sprintf("attachment-%d%s", n, extensionFor(a.ContentType))
	}
	ct := a.ContentType
	if mt, _, err := mime.ParseMediaType(ct); err != nil || !strings.Contains(mt, "/") {
		ct = "application/octet-stream"
	}
	hd := w.Header()
	hd.Set("Content-Type", ct)
	hd.Set("Content-Disposition", ContentDisposition(filename))
	if a.SHA256 != "" {
		hd.Set("ETag", `"`+a.SHA256+`"`)
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(buf.Bytes()))
}

func extensionFor(contentType string) string {
	switch contentType {
	case "application/pdf":
		return ".pdf"
	case "application/xml", "text/xml":
		return ".xml"
	case "text/plain":
		return ".txt"
	case "message/rfc822":
		return ".eml"
	}
	return ".bin"
}

// AckResponse is the answer of POST /api/v1/messages/{id}/ack.
type AckResponse struct {
	ID      string    `json:"id"`
	AckedAt time.Time `json:"ackedAt"`
}

func (h *handler) ack(w http.ResponseWriter, r *http.Request) {
	id, ok := messageID(w, r)
	if !ok {
		return
	}
	at, err := h.cfg.Store.Ack(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", "no message "+id)
		return
	}
	if err != nil {
		h.internal(w, "acknowledge message", err)
		return
	}
	writeJSON(w, http.StatusOK, AckResponse{ID: id, AckedAt: at.UTC()})
}

// errorBody is the shape of every error.
type errorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the "error" member of an error response.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":{"code":"internal","message":"internal error"}}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, errorBody{ErrorDetail{Code: code, Message: message}})
}

func badParam(w http.ResponseWriter, err error) {
	writeError(w, http.StatusBadRequest, "bad_parameter", err.Error())
}

// raw reads a message's bytes, or writes the error: a message whose stored bytes are missing or
// damaged is told apart from a passing failure, so the ERP does not retry it forever.
func (h *handler) raw(w http.ResponseWriter, r *http.Request, id string) ([]byte, bool) {
	raw, err := h.cfg.Store.Raw(r.Context(), id)
	if errors.Is(err, store.ErrRawDamaged) {
		h.cfg.Logger.Error("api: a message's stored bytes are missing or damaged", "message", id, "err", err)
		writeError(w, http.StatusInternalServerError, "raw_damaged", fmt.Sprintf("the stored bytes of message %s are missing or damaged; inkorg's log names the file (restore it from a backup)", id))
		return nil, false
	}
	if err != nil {
		h.internal(w, "read raw message", err)
		return nil, false
	}
	return raw, true
}

// internal answers 500 and logs the cause (which holds no secret: store errors name records, not values).
func (h *handler) internal(w http.ResponseWriter, what string, err error) {
	h.cfg.Logger.Error("api: "+what, "err", err)
	writeError(w, http.StatusInternalServerError, "internal", what+" failed; the details are in inkorg's log")
}
