package graph

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"inkorg/internal/diag"
)

func TestSendMail(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		header  map[string]string
		body    string
		kind    diag.Kind
		code    string
		retryMS int64
	}{
		{"accepted", 202, nil, "", "", "", 0},
		{"throttled", 429, map[string]string{"Retry-After": "3"}, `{"error":{"code":"ApplicationThrottled","message":"Application is over its MailboxConcurrency limit."}}`, diag.KindThrottled, "Graph 429 ApplicationThrottled", 3000},
		{"no Mail.Send", 403, nil, `{"error":{"code":"ErrorAccessDenied","message":"Access is denied. Check credentials and try again."}}`, diag.KindConfig, "Graph 403 ErrorAccessDenied", 0},
		{"send as denied", 403, nil, `{"error":{"code":"ErrorSendAsDenied","message":"The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account., Cannot submit message."}}`, diag.KindConfig, "Graph 403 ErrorSendAsDenied", 0},
		{"expired token", 401, nil, `{"error":{"code":"InvalidAuthenticationToken","message":"Lifetime validation failed, the token is expired."}}`, diag.KindTransient, "Graph 401 InvalidAuthenticationToken", 0},
		{"outage", 503, nil, `not json`, diag.KindTransient, "Graph 503", 0},
		{"bad mime", 400, nil, `{"error":{"code":"ErrorMimeContentInvalidBase64String","message":"Invalid base64 string for MIME content."}}`, diag.KindConfig, "Graph 400 ErrorMimeContentInvalidBase64String", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/v1.0/users/webshop@contoso.example/sendMail" || r.Header.Get("Content-Type") != "text/plain" ||
					r.Header.Get("Authorization") != "Bearer tok" {
					t.Errorf("request %s %v", r.URL.Path, r.Header)
				}
				b, _ := io.ReadAll(r.Body)
				if raw, err := base64.StdEncoding.DecodeString(string(b)); err != nil || string(raw) != "Subject: x\r\n\r\nhi\r\n" {
					t.Errorf("body %q %v", b, err)
				}
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			c := New(Config{BaseURL: srv.URL + "/v1.0/", HTTP: srv.Client()})
			err := c.SendMail(context.Background(), "tok", "webshop@contoso.example", []byte("Subject: x\r\n\r\nhi\r\n"), diag.Facts{AppOnly: true, From: "webshop@contoso.example"})
			if tt.kind == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			e := diag.As(err)
			if e == nil || e.Kind != tt.kind || e.Code != tt.code || e.RetryAfterMS != tt.retryMS || e.Remedy == "" {
				t.Fatalf("got %#v", e)
			}
		})
	}
}

// TestNetworkError: a refused connection never handed the message over (safe to retry); a
// connection closed after the request was read, before an answer, may have lost Graph's 202.
func TestNetworkError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL
	srv.Close()
	err := New(Config{BaseURL: u}).SendMail(context.Background(), "tok", "a@b", []byte("x"), diag.Facts{})
	if e := diag.As(err); e == nil || e.Kind != diag.KindTransient || e.Stage != diag.StageConnect || e.MaybeDone {
		t.Fatalf("refused connection: %#v", e)
	}

	hangUp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // the whole request arrives; the answer does not
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	defer hangUp.Close()
	err = New(Config{BaseURL: hangUp.URL}).SendMail(context.Background(), "tok", "a@b", []byte("x"), diag.Facts{})
	if e := diag.As(err); e == nil || e.Kind != diag.KindTransient || e.Stage != diag.StageSend || !e.MaybeDone {
		t.Fatalf("answer lost: %#v", e)
	}
}

func FuzzFromResponse(f *testing.F) {
	f.Add(403, "3", `{"error":{"code":"ErrorAccessDenied","message":"x","innerError":{"request-id":"r"}}}`)
	f.Add(429, "-1", `{`)
	f.Fuzz(func(t *testing.T, status int, retry, body string) {
		e := FromResponse(status, http.Header{"Retry-After": {retry}}, []byte(body), diag.Facts{})
		if e == nil || e.Kind == "" || e.RetryAfterMS < 0 {
			t.Fatalf("%#v", e)
		}
	})
}
