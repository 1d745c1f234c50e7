package certs

import (
	"crypto/tls"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestHandshakes(t *testing.T) {
	a, err := New(time.Now(), "emu.example")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := a.WriteCAFile(path); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != string(a.CAPEM()) {
		t.Fatal("ca.pem differs")
	}
	cases := []struct {
		name       string
		srv        *tls.Config
		serverName string
		clientALPN []string
		wantALPN   string
	}{
		{"https h2", a.HTTPSConfig(), "127.0.0.1", []string{"h2"}, "h2"},
		{"https localhost", a.HTTPSConfig(), "localhost", []string{"http/1.1"}, "http/1.1"},
		{"imap with imap alpn", a.IMAPConfig(), "127.0.0.1", []string{"imap"}, ""},
		{"smtp", a.SMTPConfig(), "::1", nil, ""},
		{"extra host", a.SMTPConfig(), "emu.example", nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := tls.Listen("tcp", "127.0.0.1:0", tc.srv)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			done := make(chan error, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					done <- err
					return
				}
				defer c.Close()
				err = c.(*tls.Conn).Handshake()
				if err == nil {
					_, err = c.Write([]byte("ok"))
				}
				done <- err
			}()
			cfg := a.ClientConfig()
			cfg.ServerName = tc.serverName
			cfg.NextProtos = tc.clientALPN
			c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got := c.ConnectionState().NegotiatedProtocol; got != tc.wantALPN {
				t.Errorf("ALPN = %q, want %q", got, tc.wantALPN)
			}
			b := make([]byte, 2)
			if _, err := io.ReadFull(c, b); err != nil || string(b) != "ok" {
				t.Fatalf("read %q %v", b, err)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		})
	}
}
