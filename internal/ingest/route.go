package ingest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"

	"inkorg/internal/mailparse"
	"inkorg/internal/settings"
	"inkorg/internal/store"
)

// maxXML bounds how much of an M2M XML attachment is read to recognise it.
const maxXML = 1 << 20

// route reads a fetched message: its metadata, for Monitor-to-Monitor accounts the document kind, and
// where it goes on the server (the processed folder, or the failed folder when it is not a message).
func (w *worker) route(uid uint32, raw []byte) store.NewMessage {
	m := w.t.Eff.Mailbox
	nm := store.NewMessage{UID: uid, Raw: raw}
	if !m.LeaveInPlace.Value {
		nm.Dest = m.ProcessedFolder.Value
	}
	// The bodies' text is not stored (the ERP reads the raw message): not kept, which saves most of
	// the parser's allocations.
	parsed, err := mailparse.ParseBytes(raw, mailparse.Limits{SkipBodies: true})
	if err != nil {
		sum := sha256.Sum256(raw)
		nm.Meta = store.Message{SHA256: hex.EncodeToString(sum[:]), Size: int64(len(raw)), Failed: "not an e-mail message: " + err.Error()}
		if !m.LeaveInPlace.Value {
			nm.Dest = m.FailedFolder.Value
		}
		w.log.Warn("a message could not be read; it is stored with the reason and moved to the failed folder", "uid", uid, "err", err)
		return nm
	}
	nm.Meta = Meta(parsed)
	if w.t.Account.Type == settings.TypeMonitorToMonitor {
		c := mailparse.ClassifyM2M(parsed, func(i int) (io.ReadCloser, error) {
			var b bytes.Buffer
			if _, err := mailparse.Extract(bytes.NewReader(raw), i, &limitedWriter{w: &b, n: maxXML}); err != nil && b.Len() == 0 {
				return nil, err
			}
			return io.NopCloser(&b), nil
		})
		nm.Meta.M2M = &store.M2M{Kind: string(c.Kind), XMLIndex: c.XMLIndex, PDFIndex: c.PDFIndex, DocumentNumber: c.DocumentNumber, Reason: c.Reason}
	}
	return nm
}

// Meta is the store's record of a parsed message.
func Meta(p *mailparse.Message) store.Message {
	m := store.Message{MessageID: p.MessageID, SHA256: p.SHA256, Size: p.Size, From: p.From.Address, Subject: p.Subject, Date: p.Date, Problems: p.Problems}
	for _, a := range p.To {
		m.To = append(m.To, a.Address)
	}
	for _, a := range p.Cc {
		m.Cc = append(m.Cc, a.Address)
	}
	for _, a := range p.Attachments {
		m.Attachments = append(m.Attachments, store.Attachment{Index: a.Index, Filename: a.Filename, ContentType: a.ContentType, Size: a.Size, SHA256: a.SHA256, Inline: a.Inline})
	}
	return m
}

// limitedWriter keeps the first n bytes and reports the rest as written (so extraction stops quietly).
type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, io.ErrShortWrite
	}
	k := min(len(p), l.n)
	l.n -= k
	if _, err := l.w.Write(p[:k]); err != nil {
		return 0, err
	}
	if k < len(p) {
		return k, io.ErrShortWrite
	}
	return len(p), nil
}
