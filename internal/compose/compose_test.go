package compose

import (
	"bytes"
	"errors"
	"io"
	"net/mail"
	"strings"
	"testing"
	"time"

	gomessage "github.com/emersion/go-message"
	gomail "github.com/emersion/go-message/mail"
)

func addr(s string) *mail.Address { a, _ := mail.ParseAddress(s); return a }

func base() Message {
	return Message{From: &mail.Address{Name: "Webshop", Address: "webshop@contoso.example"}, To: []*mail.Address{addr("kund@example.com")},
		Subject: "Order 4711", Text: "Thank you.", Date: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
}

// headerNames lists the top-level header field names of raw.
func headerNames(t *testing.T, raw []byte) map[string]int {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("unreadable message: %v\n%s", err, raw)
	}
	out := map[string]int{}
	for k, v := range m.Header {
		out[strings.ToLower(k)] += len(v)
	}
	return out
}

func TestHeaderInjectionIsImpossible(t *testing.T) {
	evil := "x\r\nBcc: victim@evil.example\r\nX-Injected: 1"
	tests := []struct {
		name   string
		edit   func(*Message)
		refuse bool
	}{
		{"subject", func(m *Message) { m.Subject = evil }, false},
		{"subject with bare LF", func(m *Message) { m.Subject = "a\nX-Injected: 1" }, false},
		{"subject with bare CR", func(m *Message) { m.Subject = "a\rX-Injected: 1" }, false},
		{"from name", func(m *Message) { m.From.Name = evil }, false},
		{"to name", func(m *Message) { m.To[0].Name = evil }, false},
		{"cc name", func(m *Message) { m.Cc = []*mail.Address{{Name: evil, Address: "cc@example.com"}} }, false},
		{"to address", func(m *Message) { m.To[0].Address = "kund@example.com\r\nX-Injected: 1" }, true},
		{"from address", func(m *Message) { m.From.Address = "webshop@contoso.example\nX-Injected: 1" }, true},
		{"reply-to address", func(m *Message) { m.ReplyTo = []*mail.Address{{Address: "a@b.example\r\nX-Injected: 1"}} }, true},
		{"attachment name", func(m *Message) {
			m.Attachments = []Attachment{{Name: "invoice.pdf\r\nX-Injected: 1\r\n\r\n--boundary", ContentType: "application/pdf", Data: []byte("%PDF")}}
		}, false},
		{"attachment content type", func(m *Message) {
			m.Attachments = []Attachment{{Name: "a.pdf", ContentType: "application/pdf\r\nX-Injected: 1", Data: []byte("x")}}
		}, true},
		{"in-reply-to", func(m *Message) { m.InReplyTo = "<a@b>\r\nX-Injected: 1" }, true},
		{"references", func(m *Message) { m.References = []string{"a@b\nX-Injected: 1"} }, true},
		{"message id", func(m *Message) { m.MessageID = "a@b>\r\nX-Injected: 1" }, true},
		{"signature", func(m *Message) { m.Signature = evil }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := base()
			tt.edit(&m)
			b, err := Build(m)
			if tt.refuse {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("not refused: %v\n%s", err, b.Raw)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			h := headerNames(t, b.Raw)
			if h["x-injected"] != 0 || h["bcc"] != 0 {
				t.Fatalf("injected header:\n%s", b.Raw)
			}
			head, _, _ := bytes.Cut(b.Raw, []byte("\r\n\r\n"))
			if bytes.Contains(head, []byte("\nX-Injected")) || bytes.Contains(head, []byte("\rX-Injected")) {
				t.Fatalf("an injected line in the message:\n%s", b.Raw)
			}
			for k, n := range h {
				if n > 1 && k != "received" {
					t.Errorf("header %s appears %d times", k, n)
				}
			}
			if len(b.Recipients) < 1 || strings.Contains(strings.Join(b.Recipients, ","), "victim") {
				t.Errorf("recipients %v", b.Recipients)
			}
		})
	}
}

func TestStructure(t *testing.T) {
	m := base()
	m.HTML = "<html><body><p>Thank you.</p></body></html>"
	m.Signature = "Contoso Webshop\nwww.contoso.example"
	m.Cc = []*mail.Address{addr("Säljare Åsa <asa@contoso.example>")}
	m.Bcc = []*mail.Address{addr("webshop@contoso.example")}
	m.InReplyTo = "orig@example.com"
	m.Attachments = []Attachment{{Name: "faktura 4711 – å.pdf", ContentType: "application/pdf", Data: bytes.Repeat([]byte("%PDF-1.7\n"), 100)}}
	b, err := Build(m)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(b.Recipients, ",") != "kund@example.com,asa@contoso.example,webshop@contoso.example" {
		t.Errorf("recipients %v", b.Recipients)
	}
	e, err := gomessage.Read(bytes.NewReader(b.Raw))
	if err != nil {
		t.Fatal(err)
	}
	h := gomail.Header{Header: e.Header}
	if s, _ := h.Subject(); s != "Order 4711" {
		t.Errorf("subject %q", s)
	}
	if h.Get("Bcc") != "" || h.Get("X-Unsent") != "" {
		t.Errorf("bcc or x-unsent in a sent message")
	}
	if irt, _ := h.MsgIDList("In-Reply-To"); len(irt) != 1 || irt[0] != "orig@example.com" {
		t.Errorf("in-reply-to %v", irt)
	}
	if refs, _ := h.MsgIDList("References"); len(refs) != 1 {
		t.Errorf("references %v", refs)
	}
	if id, _ := h.MessageID(); "<"+id+">" != b.MessageID || !strings.HasSuffix(id, "@contoso.example") {
		t.Errorf("message id %q %q", id, b.MessageID)
	}
	cc, _ := h.AddressList("Cc")
	if len(cc) != 1 || cc[0].Name != "Säljare Åsa" {
		t.Errorf("cc %+v", cc)
	}
	r := gomail.NewReader(e)
	var texts []string
	var att string
	for {
		p, err := r.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(p.Body)
		switch ph := p.Header.(type) {
		case *gomail.InlineHeader:
			texts = append(texts, string(body))
		case *gomail.AttachmentHeader:
			att, _ = ph.Filename()
			if len(body) != 900 {
				t.Errorf("attachment %d bytes", len(body))
			}
		}
	}
	if len(texts) != 2 || !strings.Contains(texts[0], "-- \r\nContoso Webshop") && !strings.Contains(texts[0], "-- \nContoso Webshop") ||
		!strings.Contains(texts[1], `<div class="signature"><br>-- <br>Contoso Webshop<br>www.contoso.example</div></body>`) {
		t.Errorf("bodies %q", texts)
	}
	if att != "faktura 4711 – å.pdf" {
		t.Errorf("attachment name %q", att)
	}
}

func TestDraft(t *testing.T) {
	m := base()
	m.Draft = true
	m.Bcc = []*mail.Address{addr("boss@contoso.example")}
	b, err := Build(m)
	if err != nil {
		t.Fatal(err)
	}
	h := headerNames(t, b.Raw)
	if h["x-unsent"] != 1 || h["bcc"] != 1 {
		t.Errorf("draft headers %v\n%s", h, b.Raw)
	}
}

func TestRefusals(t *testing.T) {
	for name, edit := range map[string]func(*Message){
		"no recipient": func(m *Message) { m.To = nil },
		"no from":      func(m *Message) { m.From = nil },
		"bad to":       func(m *Message) { m.To = []*mail.Address{{Address: "not an address"}} },
		"multipart type": func(m *Message) {
			m.Attachments = []Attachment{{Name: "x", ContentType: "multipart/mixed; boundary=x"}}
		},
	} {
		m := base()
		edit(&m)
		if _, err := Build(m); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzBuild(f *testing.F) {
	f.Add("Order 4711", "Anna", "a.pdf", "text", "x@y.example")
	f.Add("x\r\nBcc: v@e", "n\r\nX: y", "a\r\n.pdf", "\r\n.\r\n", "x@y.example\r\nX: 1")
	f.Add("=?utf-8?q?=0D=0AX:_1?=", "\"q\"", "", "", "\"a b\"@c.example")
	f.Fuzz(func(t *testing.T, subject, name, file, text, to string) {
		m := base()
		m.Subject, m.From.Name, m.Text = subject, name, text
		m.Attachments = []Attachment{{Name: file, Data: []byte(text)}}
		if a, err := ParseAddress("to", to); err == nil {
			m.To = []*mail.Address{a}
		}
		b, err := Build(m)
		if err != nil {
			return
		}
		msg, err := mail.ReadMessage(bytes.NewReader(b.Raw))
		if err != nil {
			t.Fatalf("unreadable: %v\n%q", err, b.Raw)
		}
		for k := range msg.Header {
			switch strings.ToLower(k) {
			case "date", "from", "to", "subject", "message-id", "mime-version", "content-type":
			default:
				t.Fatalf("unexpected header %q in\n%q", k, b.Raw)
			}
		}
	})
}
