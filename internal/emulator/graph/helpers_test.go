package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"inkorg/internal/emulator/exo"
)

// The test tenant.
const (
	alice  = "alice@contoso.example"
	bob    = "bob@contoso.example"
	shared = "shared@contoso.example"
	appID  = "11111111-2222-3333-4444-555555555555"
)

var testKey = []byte("graph-test-signing-key-0123456789")

// testClock is a settable clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fakeAuth verifies HS256 test tokens and applies the checks the emulator's authorizer makes for
// Graph: signature, expiry, audience, a Mail.* role or scope, the mailbox exists, and for delegated
// tokens upn = mailbox. "notconnected" and "refused" mailboxes give those denials.
type fakeAuth struct {
	clock     func() time.Time
	mailboxes map[string]bool
	sendAs    map[string]bool // "principal|from" (principal: appID for app-only, UPN for delegated)
}

func (a *fakeAuth) Authorize(_ context.Context, proto exo.Protocol, mailbox, bearer string) (exo.Principal, error) {
	deny := func(k exo.DenialKind, r string) (exo.Principal, error) {
		return exo.Principal{}, &exo.Denial{Kind: k, Reason: r}
	}
	if proto != exo.ProtocolGraph {
		return deny(exo.DenyBadToken, "wrong protocol")
	}
	tok, err := jwt.Parse(bearer, func(*jwt.Token) (any, error) { return testKey, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithTimeFunc(a.clock))
	if err != nil {
		return deny(exo.DenyBadToken, "token invalid: "+err.Error())
	}
	c, _ := peekClaims(bearer)
	if !c.graphAudience() {
		return deny(exo.DenyBadToken, "audience")
	}
	if !c.anyMail() {
		return deny(exo.DenyBadToken, "no Mail.* permission")
	}
	if !a.mailboxes[strings.ToLower(mailbox)] {
		return deny(exo.DenyBadToken, "no mailbox")
	}
	if strings.HasPrefix(mailbox, "notconnected") {
		return deny(exo.DenyNotConnected, "policy")
	}
	mc := tok.Claims.(jwt.MapClaims)
	aid, _ := mc["appid"].(string)
	p := exo.Principal{Mailbox: strings.ToLower(mailbox), AppID: aid, AppOnly: c.appOnly, UPN: c.upn}
	if !c.appOnly && !strings.EqualFold(c.upn, mailbox) {
		return deny(exo.DenyBadToken, "user may not open mailbox")
	}
	return p, nil
}

func (a *fakeAuth) CanSendAs(_ context.Context, p exo.Principal, from string) bool {
	who := p.UPN
	if p.AppOnly {
		who = p.AppID
	}
	return a.sendAs[strings.ToLower(who+"|"+from)]
}

// env is a Graph handler on an httptest TLS server.
type env struct {
	t     *testing.T
	clock *testClock
	store *exo.MailStore
	auth  *fakeAuth
	h     *Handler
	srv   *httptest.Server
	base  string // https://127.0.0.1:P/v1.0
}

type envOpt func(*Config)

func newEnv(t *testing.T, opts ...envOpt) *env {
	t.Helper()
	clock := &testClock{t: time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)}
	store := exo.NewMailStore(clock.Now)
	auth := &fakeAuth{clock: clock.Now, mailboxes: map[string]bool{}, sendAs: map[string]bool{}}
	for _, mb := range []string{alice, bob, shared, "notconnected@contoso.example"} {
		if err := store.CreateMailbox(mb); err != nil {
			t.Fatal(err)
		}
		auth.mailboxes[mb] = true
	}
	auth.mailboxes["ghost@contoso.example"] = true // known to the Authorizer, not to the store
	cfg := Config{Store: store, Authorizer: auth, Clock: clock.Now, Rand: rand.NewChaCha8([32]byte{1})}
	for _, o := range opts {
		o(&cfg)
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1.0/", h)
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes cut short by Close
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return &env{t: t, clock: clock, store: store, auth: auth, h: h, srv: srv, base: srv.URL + "/v1.0"}
}

// token makes a signed test token; roles set makes it app-only, scp delegated.
func (e *env) token(mut func(jwt.MapClaims)) string {
	e.t.Helper()
	now := e.clock.Now()
	mc := jwt.MapClaims{
		"aud": "https://graph.microsoft.com", "iss": "https://sts.windows.net/tid/", "appid": appID,
		"iat": now.Add(-5 * time.Minute).Unix(), "nbf": now.Add(-5 * time.Minute).Unix(), "exp": now.Add(time.Hour).Unix(),
		"idtyp": "app", "roles": []string{"Mail.ReadWrite", "Mail.Send"},
	}
	if mut != nil {
		mut(mc)
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, mc).SignedString(testKey)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

func (e *env) appToken(roles ...string) string {
	return e.token(func(mc jwt.MapClaims) { mc["roles"] = roles })
}

func (e *env) userToken(upn, scp string) string {
	return e.token(func(mc jwt.MapClaims) {
		delete(mc, "roles")
		delete(mc, "idtyp")
		mc["upn"], mc["scp"] = upn, scp
	})
}

// resp is a received answer.
type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("status %d, body %q: %v", r.status, r.body, err)
	}
	return m
}

// do sends a request; url is absolute or relative to /v1.0. hdr alternates names and values.
func (e *env) do(method, url, token string, body io.Reader, hdr ...string) resp {
	e.t.Helper()
	if !strings.HasPrefix(url, "https://") {
		url = e.base + url
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

func (e *env) get(url, token string, hdr ...string) resp {
	return e.do(http.MethodGet, url, token, nil, hdr...)
}

func (e *env) postJSON(url, token string, v any) resp {
	b, err := json.Marshal(v)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.do(http.MethodPost, url, token, bytes.NewReader(b), "Content-Type", "application/json")
}

// deliver puts a small message into a folder and returns its raw bytes.
func (e *env) deliver(mailbox, folder string, n int) []byte {
	e.t.Helper()
	raw := []byte(fmt.Sprintf("From: Supplier %d <supplier%d@vendor.example>\r\nTo: %s\r\nSubject: Invoice %d\r\n"+
		"Message-ID: <inv-%d@vendor.example>\r\nDate: Mon, 02 Mar 2026 08:00:00 +0000\r\nMIME-Version: 1.0\r\n"+
		"Content-Type: text/plain; charset=utf-8\r\n\r\nInvoice number %d.\r\n", n, n, mailbox, n, n, n))
	if _, err := e.store.Deliver(mailbox, folder, raw); err != nil {
		e.t.Fatal(err)
	}
	return raw
}

// wantError checks Graph's error shape: status, code, message (when not empty), request-id, date.
func wantError(t *testing.T, r resp, status int, code, message string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	var ge struct {
		Error struct {
			Code       string            `json:"code"`
			Message    string            `json:"message"`
			InnerError map[string]string `json:"innerError"`
		} `json:"error"`
	}
	if err := json.Unmarshal(r.body, &ge); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	if ge.Error.Code != code {
		t.Errorf("code %q, want %q (message %q)", ge.Error.Code, code, ge.Error.Message)
	}
	if message != "" && ge.Error.Message != message {
		t.Errorf("message %q, want %q", ge.Error.Message, message)
	}
	if id := ge.Error.InnerError["request-id"]; id == "" || id != r.header.Get("request-id") {
		t.Errorf("innerError.request-id %q, header %q", id, r.header.Get("request-id"))
	}
	if _, err := time.Parse("2006-01-02T15:04:05", ge.Error.InnerError["date"]); err != nil {
		t.Errorf("innerError.date %q: %v", ge.Error.InnerError["date"], err)
	}
	if ge.Error.InnerError["client-request-id"] == "" {
		t.Errorf("innerError.client-request-id missing")
	}
	if !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Errorf("Content-Type %q", r.header.Get("Content-Type"))
	}
}

// deltaPage is a decoded delta answer.
type deltaPage struct {
	NextLink  string           `json:"@odata.nextLink"`
	DeltaLink string           `json:"@odata.deltaLink"`
	Value     []map[string]any `json:"value"`
}

func (e *env) deltaGet(url, token string, hdr ...string) (deltaPage, resp) {
	e.t.Helper()
	r := e.get(url, token, hdr...)
	if r.status != http.StatusOK {
		e.t.Fatalf("delta %s: %d %s", url, r.status, r.body)
	}
	var p deltaPage
	if err := json.Unmarshal(r.body, &p); err != nil {
		e.t.Fatal(err)
	}
	return p, r
}

// syncAll follows nextLinks to the deltaLink and returns all items and the deltaLink.
func (e *env) syncAll(url, token string, hdr ...string) ([]map[string]any, string, int) {
	e.t.Helper()
	var items []map[string]any
	pages := 0
	for {
		p, _ := e.deltaGet(url, token, hdr...)
		pages++
		items = append(items, p.Value...)
		if p.NextLink == "" {
			if p.DeltaLink == "" {
				e.t.Fatal("page with neither nextLink nor deltaLink")
			}
			return items, p.DeltaLink, pages
		}
		if p.DeltaLink != "" {
			e.t.Fatal("page with both nextLink and deltaLink")
		}
		url = p.NextLink
	}
}
