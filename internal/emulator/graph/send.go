package graph

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/http"
	"net/mail"
	"strings"
	"time"
)

// maxSendBody bounds a sendMail request (Exchange's 35 MB message limit, base64-encoded, and some).
const maxSendBody = 48 << 20

// sentItems is the store folder sendMail saves to.
const sentItems = "Sent Items"

type sendRequest struct {
	Message         *sendMessage `json:"message"`
	SaveToSentItems *bool        `json:"saveToSentItems"`
}

type itemBody struct {
	ContentType string `json:"contentType"`
	Content     string `json:"content"`
}

type messageHeader struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type attachment struct {
	ODataType    string `json:"@odata.type"`
	Name         string `json:"name"`
	ContentType  string `json:"contentType"`
	ContentBytes string `json:"contentBytes"`
	ContentID    string `json:"contentId"`
	IsInline     bool   `json:"isInline"`
}

type sendMessage struct {
	Subject                string          `json:"subject"`
	Body                   *itemBody       `json:"body"`
	From                   *recipient      `json:"from"`
	ToRecipients           []recipient     `json:"toRecipients"`
	CcRecipients           []recipient     `json:"ccRecipients"`
	BccRecipients          []recipient     `json:"bccRecipients"`
	ReplyTo                []recipient     `json:"replyTo"`
	InternetMessageHeaders []messageHeader `json:"internetMessageHeaders"`
	Attachments            []attachment    `json:"attachments"`
	Importance             string          `json:"importance"`
}

// sendMail serves POST sendMail: JSON, or the whole MIME message base64-encoded as text/plain.
// Accepted mail is delivered into the INBOX of every recipient that has a mailbox in the store, and
// saved (marked read) in the sender's Sent Items unless saveToSentItems is false.
func (h *Handler) sendMail(rq *request) error {
	if err := rq.need(permSend); err != nil {
		return err
	}
	mt, _, _ := mime.ParseMediaType(rq.r.Header.Get("Content-Type"))
	if strings.EqualFold(mt, "text/plain") {
		return h.sendMIME(rq)
	}
	var req sendRequest
	if err := readJSON(rq.r, maxSendBody, &req); err != nil {
		return err
	}
	if req.Message == nil {
		return errorf(http.StatusBadRequest, codeInvalidParameter, "The value of the parameter 'Message' is empty.")
	}
	m := req.Message
	var rcpts []string
	for _, l := range [][]recipient{m.ToRecipients, m.CcRecipients, m.BccRecipients} {
		for _, r := range l {
			a, err := mail.ParseAddress(r.EmailAddress.Address)
			if err != nil || a.Address != strings.TrimSpace(r.EmailAddress.Address) {
				return errorf(http.StatusBadRequest, codeInvalidRecipients,
					`At least one recipient isn't valid., Recipient "`+r.EmailAddress.Address+`" isn't resolved. All recipients must be resolved before a message can be submitted.`)
			}
			rcpts = append(rcpts, a.Address)
		}
	}
	if len(rcpts) == 0 {
		return errorf(http.StatusBadRequest, codeInvalidRecipients, msgNoRecipients)
	}
	from := recipient{EmailAddress: emailAddress{Address: rq.mailbox}}
	if m.From != nil && m.From.EmailAddress.Address != "" {
		from = *m.From
	}
	if err := h.checkSendAs(rq, from.EmailAddress.Address); err != nil {
		return err
	}
	raw, err := h.buildMIME(m, from, rq.now)
	if err != nil {
		return err
	}
	return h.deliver(rq, rcpts, raw, req.SaveToSentItems == nil || *req.SaveToSentItems)
}

// sendMIME handles the text/plain (base64 MIME) form; the decoded bytes are delivered unchanged.
func (h *Handler) sendMIME(rq *request) error {
	body, err := io.ReadAll(io.LimitReader(rq.r.Body, maxSendBody+1))
	if err != nil {
		return fmt.Errorf("graph: read sendMail body: %w", err)
	}
	if len(body) > maxSendBody {
		return errorf(http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", "The request body is too large.")
	}
	raw, err := base64.StdEncoding.DecodeString(strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, string(body)))
	if err != nil || len(raw) == 0 {
		return errorf(http.StatusBadRequest, codeInvalidBase64, msgInvalidBase64)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return errorf(http.StatusBadRequest, codeMimeInvalid, msgMimeInvalid)
	}
	var rcpts []string
	for _, k := range []string{"To", "Cc", "Bcc"} {
		if strings.TrimSpace(msg.Header.Get(k)) == "" {
			continue
		}
		l, err := msg.Header.AddressList(k)
		if err != nil {
			return errorf(http.StatusBadRequest, codeInvalidRecipients,
				`At least one recipient isn't valid., Recipient "`+msg.Header.Get(k)+`" isn't resolved. All recipients must be resolved before a message can be submitted.`)
		}
		for _, a := range l {
			rcpts = append(rcpts, a.Address)
		}
	}
	if len(rcpts) == 0 {
		return errorf(http.StatusBadRequest, codeInvalidRecipients, msgNoRecipients)
	}
	from := rq.mailbox
	if v := msg.Header.Get("From"); strings.TrimSpace(v) != "" {
		a, err := mail.ParseAddress(v)
		if err != nil {
			return errorf(http.StatusBadRequest, codeMimeInvalid, msgMimeInvalid)
		}
		from = a.Address
	}
	if err := h.checkSendAs(rq, from); err != nil {
		return err
	}
	return h.deliver(rq, rcpts, raw, true)
}

// checkSendAs: a mailbox sends as itself (app-only, or the signed-in user's own mailbox); any other
// From needs Send As, which the Authorizer decides.
func (h *Handler) checkSendAs(rq *request, from string) error {
	if strings.EqualFold(from, rq.mailbox) && (rq.p.AppOnly || strings.EqualFold(from, rq.p.UPN)) {
		return nil
	}
	if h.auth.CanSendAs(rq.r.Context(), rq.p, from) {
		return nil
	}
	h.log.Info("graph: send as denied", "mailbox", rq.mailbox, "from", from, "request_id", rq.id)
	return errorf(http.StatusForbidden, codeSendAsDenied, msgSendAsDenied)
}

// deliver puts raw into each local recipient's INBOX and, when save, the sender's Sent Items; 202.
func (h *Handler) deliver(rq *request, rcpts []string, raw []byte, save bool) error {
	done := map[string]bool{}
	for _, a := range rcpts {
		k := strings.ToLower(a)
		if done[k] {
			continue
		}
		done[k] = true
		if !h.store.HasMailbox(a) {
			continue // mail for other organisations leaves the emulator
		}
		if _, err := h.store.Deliver(a, "INBOX", withoutBcc(raw)); err != nil {
			return fmt.Errorf("graph: deliver to %s: %w", a, err)
		}
	}
	if save {
		uid, err := h.store.Deliver(rq.mailbox, sentItems, raw)
		if err != nil {
			return fmt.Errorf("graph: save to %s: %w", sentItems, err)
		}
		if err := h.store.SetSeen(rq.mailbox, sentItems, uid, true); err != nil {
			return fmt.Errorf("graph: mark sent item read: %w", err)
		}
	}
	h.log.Info("graph: mail sent", "mailbox", rq.mailbox, "recipients", len(done), "bytes", len(raw), "request_id", rq.id)
	rq.w.WriteHeader(http.StatusAccepted)
	return nil
}

func formatAddress(r recipient) string {
	a := mail.Address{Name: r.EmailAddress.Name, Address: r.EmailAddress.Address}
	if strings.EqualFold(a.Name, a.Address) {
		a.Name = ""
	}
	return a.String()
}

func formatList(l []recipient) string {
	s := make([]string, len(l))
	for i, r := range l {
		s[i] = formatAddress(r)
	}
	return strings.Join(s, ", ")
}

func badHeaderValue(s string) bool { return strings.ContainsAny(s, "\r\n\x00") }

// buildMIME renders a JSON message as RFC 5322 (CRLF line ends, UTF-8, quoted-printable text,
// base64 attachments). Bcc recipients are not written into the header.
func (h *Handler) buildMIME(m *sendMessage, from recipient, now time.Time) ([]byte, error) {
	var b bytes.Buffer
	hdr := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	hdr("From", formatAddress(from))
	if len(m.ToRecipients) > 0 {
		hdr("To", formatList(m.ToRecipients))
	}
	if len(m.CcRecipients) > 0 {
		hdr("Cc", formatList(m.CcRecipients))
	}
	if len(m.ReplyTo) > 0 {
		hdr("Reply-To", formatList(m.ReplyTo))
	}
	if badHeaderValue(m.Subject) {
		return nil, errorf(http.StatusBadRequest, codeBadRequest, "The subject contains a line break.")
	}
	hdr("Subject", mime.QEncoding.Encode("utf-8", m.Subject))
	hdr("Date", now.UTC().Format(time.RFC1123Z))
	hdr("Message-ID", "<"+strings.ReplaceAll(h.newUUID(), "-", "")+"@emulator.prod.outlook.com>")
	switch strings.ToLower(m.Importance) {
	case "high", "low":
		hdr("Importance", strings.ToLower(m.Importance))
	}
	for _, x := range m.InternetMessageHeaders {
		if !strings.HasPrefix(strings.ToLower(x.Name), "x-") {
			return nil, errorf(http.StatusBadRequest, codeInvalidHeader,
				"The internet message header name '"+x.Name+"' should start with 'x-' or 'X-'.")
		}
		if badHeaderValue(x.Name) || strings.ContainsAny(x.Name, ": ") || badHeaderValue(x.Value) {
			return nil, errorf(http.StatusBadRequest, codeInvalidHeader, "The internet message header '"+x.Name+"' is invalid.")
		}
		hdr(x.Name, x.Value)
	}
	hdr("MIME-Version", "1.0")

	ct, content := "text/plain", ""
	if m.Body != nil {
		content = m.Body.Content
		if strings.EqualFold(m.Body.ContentType, "html") {
			ct = "text/html"
		}
	}
	text := func() {
		b.WriteString("Content-Type: " + ct + "; charset=\"utf-8\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
		qw := quotedprintable.NewWriter(&b)
		_, _ = qw.Write([]byte(strings.ReplaceAll(content, "\r\n", "\n"))) // writes to a bytes.Buffer do not fail
		_ = qw.Close()
		b.WriteString("\r\n")
	}
	if len(m.Attachments) == 0 {
		text()
		return b.Bytes(), nil
	}
	boundary := "_000_" + strings.ReplaceAll(h.newUUID(), "-", "") + "_"
	b.WriteString("Content-Type: multipart/mixed; boundary=\"" + boundary + "\"\r\n\r\n")
	b.WriteString("--" + boundary + "\r\n")
	text()
	for _, a := range m.Attachments {
		if a.ODataType != "" && !strings.EqualFold(a.ODataType, "#microsoft.graph.fileAttachment") {
			return nil, errorf(http.StatusNotImplemented, codeNotImplemented, "The emulator sends only file attachments.")
		}
		data, err := base64.StdEncoding.DecodeString(a.ContentBytes)
		if err != nil {
			return nil, errorf(http.StatusBadRequest, codeBadRequest, "The attachment '"+a.Name+"' has invalid base64 contentBytes.")
		}
		if badHeaderValue(a.Name) || badHeaderValue(a.ContentType) || badHeaderValue(a.ContentID) {
			return nil, errorf(http.StatusBadRequest, codeBadRequest, "The attachment '"+a.Name+"' has an invalid name or content type.")
		}
		act := a.ContentType
		if act == "" {
			act = "application/octet-stream"
		}
		disp := "attachment"
		if a.IsInline {
			disp = "inline"
		}
		ctype := mime.FormatMediaType(act, map[string]string{"name": a.Name})
		cdisp := mime.FormatMediaType(disp, map[string]string{"filename": a.Name})
		if ctype == "" || cdisp == "" {
			return nil, errorf(http.StatusBadRequest, codeBadRequest, "The attachment '"+a.Name+"' has an invalid name or content type.")
		}
		b.WriteString("--" + boundary + "\r\n")
		b.WriteString("Content-Type: " + ctype + "\r\n")
		b.WriteString("Content-Disposition: " + cdisp + "\r\n")
		if a.ContentID != "" {
			b.WriteString("Content-ID: <" + strings.Trim(a.ContentID, "<>") + ">\r\n")
		}
		b.WriteString("Content-Transfer-Encoding: base64\r\n\r\n")
		enc := base64.StdEncoding.EncodeToString(data)
		for len(enc) > 76 {
			b.WriteString(enc[:76] + "\r\n")
			enc = enc[76:]
		}
		b.WriteString(enc + "\r\n")
	}
	b.WriteString("--" + boundary + "--\r\n")
	if b.Len() > maxSendBody {
		return nil, errorf(http.StatusRequestEntityTooLarge, "ErrorMessageSizeExceeded", "The message exceeds the maximum supported size.")
	}
	return b.Bytes(), nil
}

// withoutBcc is the copy recipients get: Exchange takes the Bcc header out (the sender's Sent Items
// keeps it).
func withoutBcc(raw []byte) []byte {
	end := bytes.Index(raw, []byte("\r\n\r\n"))
	if end < 0 {
		return raw
	}
	var out bytes.Buffer
	out.Grow(len(raw))
	skipping := false
	for _, line := range bytes.SplitAfter(raw[:end+2], []byte("\r\n")) {
		if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			if !skipping {
				out.Write(line)
			}
			continue
		}
		skipping = len(line) >= 4 && bytes.EqualFold(line[:4], []byte("bcc:"))
		if !skipping {
			out.Write(line)
		}
	}
	out.Write(raw[end+2:])
	return out.Bytes()
}
