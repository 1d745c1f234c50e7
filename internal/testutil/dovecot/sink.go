package dovecot

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"

	"github.com/emersion/go-smtp"
)

// Envelope is one message Dovecot's submission server relayed to the sink.
type Envelope struct {
	From string
	To   []string
	Data []byte
}

// sink is the SMTP server Dovecot relays submitted mail to; it records every message.
type sink struct {
	srv  *smtp.Server
	ln   net.Listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	msgs []Envelope
}

func newSink() *sink { return &sink{} }

func (k *sink) start() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	k.ln = ln
	k.srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &sinkSession{sink: k}, nil
	}))
	k.srv.Domain = "sink.localhost"
	k.srv.MaxRecipients = 1000
	k.wg.Add(1)
	go func() {
		defer k.wg.Done()
		k.srv.Serve(ln)
	}()
	return nil
}

func (k *sink) port() int { return k.ln.Addr().(*net.TCPAddr).Port }

func (k *sink) close() {
	if k.srv == nil {
		return
	}
	k.srv.Close()
	k.wg.Wait()
}

type sinkSession struct {
	sink *sink
	env  Envelope
}

func (s *sinkSession) Reset()        { s.env = Envelope{} }
func (s *sinkSession) Logout() error { return nil }

func (s *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	s.env = Envelope{From: from}
	return nil
}

func (s *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.env.To = append(s.env.To, to)
	return nil
}

func (s *sinkSession) Data(r io.Reader) error {
	var b bytes.Buffer
	if _, err := io.Copy(&b, r); err != nil {
		return fmt.Errorf("read message: %w", err)
	}
	if len(s.env.To) == 0 {
		return errors.New("no recipients")
	}
	s.env.Data = b.Bytes()
	s.sink.mu.Lock()
	s.sink.msgs = append(s.sink.msgs, s.env)
	s.sink.mu.Unlock()
	s.env = Envelope{}
	return nil
}

// Relayed returns the raw messages relayed so far by the submission server, oldest first. The
// relay is synchronous: a message is recorded before Dovecot accepts it from the client.
func (s *Server) Relayed() [][]byte {
	s.sink.mu.Lock()
	defer s.sink.mu.Unlock()
	out := make([][]byte, len(s.sink.msgs))
	for i, m := range s.sink.msgs {
		out[i] = bytes.Clone(m.Data)
	}
	return out
}

// RelayedEnvelopes returns the relayed messages with their envelope sender and recipients.
func (s *Server) RelayedEnvelopes() []Envelope {
	s.sink.mu.Lock()
	defer s.sink.mu.Unlock()
	out := make([]Envelope, len(s.sink.msgs))
	for i, m := range s.sink.msgs {
		out[i] = Envelope{From: m.From, To: slices.Clone(m.To), Data: bytes.Clone(m.Data)}
	}
	return out
}
