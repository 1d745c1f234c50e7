package graph

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"slices"
	"strings"
	"time"

	"inkorg/internal/emulator/exo"
)

// graphTime is Graph's DateTimeOffset format for message properties.
const graphTime = "2006-01-02T15:04:05Z"

// emailAddress is Graph's recipient resource.
type emailAddress struct {
	Name    string `json:"name"`
	Address string `json:"address"`
}

type recipient struct {
	EmailAddress emailAddress `json:"emailAddress"`
}

type followupFlag struct {
	FlagStatus string `json:"flagStatus"`
}

// messageJSON is the subset of Graph's message resource the emulator renders. The body is not
// rendered: clients that need it read $value.
type messageJSON struct {
	ODataType            string       `json:"@odata.type,omitempty"`
	ODataEtag            string       `json:"@odata.etag"`
	ID                   string       `json:"id"`
	CreatedDateTime      string       `json:"createdDateTime"`
	LastModifiedDateTime string       `json:"lastModifiedDateTime"`
	ChangeKey            string       `json:"changeKey"`
	Categories           []string     `json:"categories"`
	ReceivedDateTime     string       `json:"receivedDateTime"`
	SentDateTime         string       `json:"sentDateTime"`
	HasAttachments       bool         `json:"hasAttachments"`
	InternetMessageID    string       `json:"internetMessageId"`
	Subject              string       `json:"subject"`
	Importance           string       `json:"importance"`
	ParentFolderID       string       `json:"parentFolderId"`
	IsRead               bool         `json:"isRead"`
	IsDraft              bool         `json:"isDraft"`
	Sender               *recipient   `json:"sender"`
	From                 *recipient   `json:"from"`
	ToRecipients         []recipient  `json:"toRecipients"`
	CcRecipients         []recipient  `json:"ccRecipients"`
	BccRecipients        []recipient  `json:"bccRecipients"`
	ReplyTo              []recipient  `json:"replyTo"`
	Flag                 followupFlag `json:"flag"`
}

// removedJSON is a delta entry for a message that left the folder.
type removedJSON struct {
	ODataType string         `json:"@odata.type"`
	ID        string         `json:"id"`
	Removed   removedReasonJ `json:"@removed"`
}

type removedReasonJ struct {
	Reason string `json:"reason"`
}

// headerMeta is what the emulator reads from a message's header.
type headerMeta struct {
	subject, messageID string
	from, sender       *recipient
	to, cc, bcc, reply []recipient
	sent               time.Time
	hasAttachments     bool
}

func parseHeaderMeta(raw []byte) headerMeta {
	var m headerMeta
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return m
	}
	h := msg.Header
	dec := mime.WordDecoder{}
	m.subject = h.Get("Subject")
	if d, err := dec.DecodeHeader(m.subject); err == nil {
		m.subject = d
	}
	m.messageID = strings.TrimSpace(h.Get("Message-Id"))
	m.from = firstRecipient(h, "From")
	m.sender = firstRecipient(h, "Sender")
	if m.sender == nil {
		m.sender = m.from
	}
	m.to = recipients(h, "To")
	m.cc = recipients(h, "Cc")
	m.bcc = recipients(h, "Bcc")
	m.reply = recipients(h, "Reply-To")
	if d, err := h.Date(); err == nil {
		m.sent = d
	}
	m.hasAttachments = hasAttachments(h.Get("Content-Type"), msg.Body, 0)
	return m
}

func addressList(h mail.Header, key string) []*mail.Address {
	v := h.Get(key)
	if strings.TrimSpace(v) == "" {
		return nil
	}
	l, err := h.AddressList(key)
	if err != nil {
		return nil
	}
	return l
}

func toRecipient(a *mail.Address) recipient {
	name := a.Name
	if name == "" {
		name = a.Address
	}
	return recipient{EmailAddress: emailAddress{Name: name, Address: a.Address}}
}

func recipients(h mail.Header, key string) []recipient {
	l := []recipient{}
	for _, a := range addressList(h, key) {
		l = append(l, toRecipient(a))
	}
	return l
}

func firstRecipient(h mail.Header, key string) *recipient {
	l := addressList(h, key)
	if len(l) == 0 {
		return nil
	}
	r := toRecipient(l[0])
	return &r
}

// hasAttachments looks for parts with Content-Disposition attachment (or a file name) in a multipart
// body, three levels deep at most.
func hasAttachments(contentType string, body io.Reader, depth int) bool {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || !strings.HasPrefix(mt, "multipart/") || params["boundary"] == "" || depth > 3 {
		return false
	}
	mr := multipart.NewReader(body, params["boundary"])
	for {
		p, err := mr.NextRawPart()
		if err != nil {
			return false
		}
		if d, dp, err := mime.ParseMediaType(p.Header.Get("Content-Disposition")); err == nil &&
			(d == "attachment" || (d == "inline" && dp["filename"] != "")) {
			return true
		}
		if hasAttachments(p.Header.Get("Content-Type"), p, depth+1) {
			return true
		}
	}
}

// renderMessage builds a message's JSON from the store's record and its bytes.
func renderMessage(mailbox, folder string, validity uint32, info exo.MessageInfo, raw []byte) messageJSON {
	m := parseHeaderMeta(raw)
	received := info.InternalDate.UTC().Format(graphTime)
	sent := received
	if !m.sent.IsZero() {
		sent = m.sent.UTC().Format(graphTime)
	}
	seen := slices.Contains(info.Flags, `\Seen`)
	flag := "notFlagged"
	if slices.Contains(info.Flags, `\Flagged`) {
		flag = "flagged"
	}
	ck := changeKey(validity, info)
	return messageJSON{
		ODataEtag:            `W/"` + ck + `"`,
		ID:                   messageID(mailbox, folder, validity, info.UID),
		CreatedDateTime:      received,
		LastModifiedDateTime: received,
		ChangeKey:            ck,
		Categories:           []string{},
		ReceivedDateTime:     received,
		SentDateTime:         sent,
		HasAttachments:       m.hasAttachments,
		InternetMessageID:    m.messageID,
		Subject:              m.subject,
		Importance:           "normal",
		ParentFolderID:       folderID(mailbox, folder, validity),
		IsRead:               seen,
		IsDraft:              slices.Contains(info.Flags, `\Draft`),
		Sender:               m.sender,
		From:                 m.from,
		ToRecipients:         m.to,
		CcRecipients:         m.cc,
		BccRecipients:        m.bcc,
		ReplyTo:              m.reply,
		Flag:                 followupFlag{FlagStatus: flag},
	}
}

// changeKey changes whenever the message's flags change, like Exchange's change key.
func changeKey(validity uint32, info exo.MessageInfo) string {
	h := sha256.New()
	var b [8]byte
	binary.BigEndian.PutUint32(b[:4], validity)
	binary.BigEndian.PutUint32(b[4:], info.UID)
	h.Write(b[:])
	for _, f := range slices.Sorted(slices.Values(info.Flags)) {
		h.Write([]byte(f))
		h.Write([]byte{0})
	}
	return "CQAAABYAAA" + base64.StdEncoding.EncodeToString(h.Sum(nil)[:15])
}
