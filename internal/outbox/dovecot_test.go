package outbox

import (
	"bytes"
	"context"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"inkorg/internal/cloud"
	"inkorg/internal/entra"
	"inkorg/internal/settings"
	"inkorg/internal/store"
	"inkorg/internal/testutil/dovecot"
)

// TestDovecotSubmission sends through a real third-party submission server: XOAUTH2 (Exchange Online
// method, with Dovecot's own short tokens — Dovecot 2.3 refuses AUTH lines over about 1,000 bytes, so
// Entra-sized tokens cannot be used there) and user name and password (SMTP method, port given).
func TestDovecotSubmission(t *testing.T) {
	dc := dovecot.Start(t, dovecot.Options{})
	dc.AddUser("relay@example.org", "Relay-Pass-1")
	_, port, _ := net.SplitHostPort(dc.SubmissionAddr())
	p, _ := strconv.Atoi(port)
	tests := []struct {
		name string
		sys  settings.System
	}{
		{"XOAUTH2", settings.System{EmailMethod: settings.MethodExchangeOnline, ClientID: "6f1d3c2a-9b7e-4e2f-8a11-3c5d7e9f0a21",
			TenantID: "contoso.example", AuthFlow: settings.FlowClientSecret, ClientSecret: settings.NewSecret("Abc8Q~not-used-with-dovecot-tokens00000")}},
		{"user name and password", settings.System{EmailMethod: settings.MethodSMTP, ServerAddress: "127.0.0.1", Port: p,
			Username: "relay@example.org", Password: settings.NewSecret("Relay-Pass-1")}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			st := openStore(t, t.TempDir())
			defer st.Close()
			must(t, st.PutSystem(ctx, tt.sys, "test"))
			must(t, st.PutUser(ctx, settings.User{Name: "WEBSHOP", EmailAddress: settings.Ptr("webshop@example.org"), Signature: settings.Ptr("The shop")}, "test"))
			must(t, st.PutWebshop(ctx, settings.Webshop{EmailMethod: settings.WebshopAccordingToUserSettings}, "test"))
			var mu sync.Mutex
			var asked []string
			o := New(Config{Store: st, Cloud: cloud.Endpoints{Authority: "https://login.invalid", SMTP: dc.SubmissionAddr(), RootCAs: dc.CertPool()},
				PollInterval: 10 * time.Millisecond, Timeout: 10 * time.Second,
				TokenFunc: func(_ context.Context, id entra.Identity, p entra.Purpose) (string, error) {
					mu.Lock()
					asked = append(asked, string(p))
					mu.Unlock()
					return dc.Token("webshop@example.org", time.Hour), nil
				}})
			must(t, o.Start(ctx))
			defer o.Close()
			res, err := o.Submit(ctx, Request{AsWebshop: true, To: []string{"kund@example.net"}, Subject: "Dovecot " + tt.name, Text: "hello"})
			must(t, err)
			m := wait(t, o, res.ID)
			if m.State != store.OutSent {
				t.Fatalf("%s %+v\n%s", m.State, m.LastError, dc.Log())
			}
			mu.Lock()
			n := len(asked)
			mu.Unlock()
			if (tt.sys.EmailMethod == settings.MethodExchangeOnline) != (n == 1) {
				t.Errorf("tokens asked: %v", asked)
			}
			deadline := time.Now().Add(10 * time.Second)
			for len(dc.Relayed()) < i+1 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			rel := dc.Relayed()
			if len(rel) != i+1 || !bytes.Contains(rel[i], []byte("Subject: Dovecot "+tt.name)) || !bytes.Contains(rel[i], []byte("The shop")) {
				t.Fatalf("relayed %d messages", len(rel))
			}
		})
	}
}
