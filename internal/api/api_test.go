package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"inkorg/internal/mailparse"
	"inkorg/internal/secrets"
	"inkorg/internal/settings"
	"inkorg/internal/store"
	"inkorg/internal/store/sqlite"
	"inkorg/internal/store/storetest"
)

const (
	goodToken    = "ink_GoodTokenForTheAPITestsAbcdefghijklmnopqrstuv"
	revokedToken = "ink_RevokedTokenForTheAPITestsAbcdefghijklmnopqr"
	wrongToken   = "ink_WrongTokenNeverCreatedAbcdefghijklmnopqrstuvw"
)

// syncBuffer is a log sink that the server's goroutines and the test may share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func openStore(t *testing.T) store.Store {
	t.Helper()
	dir := t.TempDir()
	key := func(string) (*secrets.Sealer, error) {
		s, _, err := secrets.LoadOrCreateKeyFile(filepath.Join(dir, "inkorg.key"), true)
		return s, err
	}
	s, err := sqlite.Open(context.Background(), sqlite.Options{Path: filepath.Join(dir, "inkorg.db"), Key: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// fixture is a store with 250 messages: 150 monitor-to-monitor of m2m@contoso.example, 99 general of
// general@contoso.example, and the real multipart message of testdata (monitor-to-monitor, of
// oc@contoso.example); a good and a revoked token; and the API over it on a real socket.
type fixture struct {
	st   store.Store
	srv  *httptest.Server
	logs *syncBuffer
	real store.Message // the testdata message
	raw  []byte
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{st: openStore(t), logs: &syncBuffer{}}
	commit := func(account int64, address string, typ settings.IncomingType, ms []store.NewMessage) []store.Committed {
		last := uint32(0)
		for _, m := range ms {
			last = max(last, m.UID)
		}
		got, err := f.st.CommitBatch(ctx, store.Batch{AccountID: account, Account: address, Type: typ, Folder: "INBOX", UIDValidity: 1, LastUID: last, Messages: ms})
		must(t, err)
		return got
	}
	// Interleave the accounts, a batch each in turn, so that the filters have to skip.
	for b := 0; b < 10; b++ {
		var m2m, general []store.NewMessage
		for i := b * 15; i < (b+1)*15; i++ {
			m2m = append(m2m, storetest.NewMessage(i, uint32(i+1), ""))
			if i < 99 {
				m := storetest.NewMessage(1000+i, uint32(i+1), "")
				m.Meta.M2M = nil
				general = append(general, m)
			}
		}
		commit(1, "m2m@contoso.example", settings.TypeMonitorToMonitor, m2m)
		if len(general) > 0 {
			commit(2, "general@contoso.example", settings.TypeGeneral, general)
		}
	}
	raw, err := os.ReadFile("testdata/m2m-order-confirmation.eml")
	must(t, err)
	f.raw = raw
	parsed, err := mailparse.Parse(bytes.NewReader(raw), mailparse.DefaultLimits())
	must(t, err)
	meta := store.Message{MessageID: parsed.MessageID, SHA256: parsed.SHA256, From: parsed.From.Address, Subject: parsed.Subject, Date: parsed.Date,
		M2M: &store.M2M{Kind: "order-confirmation", XMLIndex: 1, PDFIndex: 0, DocumentNumber: "OC-2291"}}
	for _, a := range parsed.To {
		meta.To = append(meta.To, a.Address)
	}
	for _, a := range parsed.Cc {
		meta.Cc = append(meta.Cc, a.Address)
	}
	for _, a := range parsed.Attachments {
		meta.Attachments = append(meta.Attachments, store.Attachment{Index: a.Index, Filename: a.Filename, ContentType: a.ContentType, Size: a.Size, SHA256: a.SHA256})
	}
	got := commit(3, "oc@contoso.example", settings.TypeMonitorToMonitor, []store.NewMessage{{UID: 1, Raw: raw, Meta: meta}})
	f.real, err = f.st.Message(ctx, got[0].ID)
	must(t, err)

	_, err = f.st.CreateAPIToken(ctx, "erp", HashToken(goodToken))
	must(t, err)
	_, err = f.st.CreateAPIToken(ctx, "old", HashToken(revokedToken))
	must(t, err)
	must(t, f.st.RevokeAPIToken(ctx, "old"))

	logger := slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f.srv = httptest.NewServer(New(Config{Store: f.st, Logger: logger}))
	t.Cleanup(f.srv.Close)
	return f
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request with the token ("" = no Authorization header) and checks the headers every
// response must carry.
func (f *fixture) do(t *testing.T, method, path, token string, extra ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, nil)
	must(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		req.Header.Set(extra[i], extra[i+1])
	}
	resp, err := f.srv.Client().Do(req)
	must(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	must(t, err)
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("%s %s: security headers missing: %v", method, path, resp.Header)
	}
	return response{resp.StatusCode, resp.Header, body}
}

func (f *fixture) get(t *testing.T, path string) response {
	t.Helper()
	return f.do(t, "GET", path, goodToken)
}

// wantError checks an error response's status and JSON shape, and that its message mentions each
// fragment.
func wantError(t *testing.T, r response, status int, code string, fragments ...string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %.300s", r.status, status, r.body)
	}
	if !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Errorf("error Content-Type %q", r.header.Get("Content-Type"))
	}
	var e struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("error body is not JSON: %v: %s", err, r.body)
	}
	if e.Error.Code != code || e.Error.Message == "" {
		t.Errorf("error %+v, want code %s", e.Error, code)
	}
	for _, fr := range fragments {
		if !strings.Contains(e.Error.Message, fr) {
			t.Errorf("error message %q lacks %q", e.Error.Message, fr)
		}
	}
}

func decode[T any](t *testing.T, r response) T {
	t.Helper()
	var v T
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %.300s", r.status, r.body)
	}
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("%v: %.300s", err, r.body)
	}
	return v
}

// TestAPI runs the API's tests against one filled store (filling it is the slow part under -race);
// the tests that acknowledge messages come after the ones that look at acknowledgements, and
// TestNoTokenInLogs, which closes the server, comes last.
func TestAPI(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		name string
		test func(*testing.T, *fixture)
	}{
		{"auth", testAuth}, {"paging", testPaging}, {"message", testMessage}, {"filters", testFilters}, {"bad parameters", testBadParameters},
		{"raw", testRaw}, {"attachment", testAttachment}, {"ack", testAck}, {"accounts", testAccounts}, {"raw damaged", testRawDamaged}, {"no token in logs", testNoTokenInLogs},
	} {
		t.Run(c.name, func(t *testing.T) { c.test(t, f) })
	}
}

func testAuth(t *testing.T, f *fixture) {
	r := f.do(t, "GET", "/healthz", "")
	if r.status != 200 || string(r.body) != "ok\n" {
		t.Errorf("healthz: %d %q", r.status, r.body)
	}
	for _, c := range []struct {
		name, path, token, header string
		status                    int
		code                      string
	}{
		{"none", "/api/v1/messages", "", "", 401, "unauthorized"},
		{"not bearer", "/api/v1/messages", "", "Basic ZXJwOnNlY3JldA==", 401, "unauthorized"},
		{"empty bearer", "/api/v1/messages", "", "Bearer ", 401, "unauthorized"},
		{"wrong", "/api/v1/messages", wrongToken, "", 401, "invalid_token"},
		{"revoked", "/api/v1/messages", revokedToken, "", 401, "invalid_token"},
		{"too long", "/api/v1/messages", strings.Repeat("x", 4000), "", 401, "invalid_token"},
		{"unknown route, no token", "/api/v1/nothing", "", "", 401, "unauthorized"},
		{"unknown route", "/api/v1/nothing", goodToken, "", 404, "not_found"},
		{"outside the API", "/admin", "", "", 404, "not_found"},
		{"good", "/api/v1/messages?limit=1", goodToken, "", 200, ""},
		{"good, lower-case scheme", "/api/v1/messages?limit=1", "", "bearer " + goodToken, 200, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			var extra []string
			if c.header != "" {
				extra = []string{"Authorization", c.header}
			}
			r := f.do(t, "GET", c.path, c.token, extra...)
			if c.status == 200 {
				if r.status != 200 {
					t.Fatalf("status %d: %s", r.status, r.body)
				}
				return
			}
			wantError(t, r, c.status, c.code)
			if c.status == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), `Bearer realm="inkorg"`) {
				t.Errorf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
			}
		})
	}
	// Using a token records it.
	toks, err := f.st.APITokens(context.Background())
	must(t, err)
	if len(toks) != 1 || toks[0].LastUsed.IsZero() {
		t.Errorf("tokens %+v", toks)
	}
}

func testPaging(t *testing.T, f *fixture) {
	for _, limit := range []int{1000, 100, 7} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			var ids []string
			seen := map[string]bool{}
			after := ""
			for pages := 0; ; pages++ {
				if pages > 300 {
					t.Fatal("paging does not end")
				}
				p := decode[MessagePage](t, f.get(t, fmt.Sprintf("/api/v1/messages?limit=%d&after=%s", limit, after)))
				if len(p.Messages) > limit {
					t.Fatalf("%d messages on a page of %d", len(p.Messages), limit)
				}
				if len(p.Messages) == 0 {
					if p.Next != after {
						t.Errorf("an empty page moved the cursor from %q to %q", after, p.Next)
					}
					break
				}
				for _, m := range p.Messages {
					if seen[m.ID] {
						t.Fatalf("message %s twice", m.ID)
					}
					seen[m.ID] = true
					ids = append(ids, m.ID)
				}
				if p.Next == after || p.Next == "" {
					t.Fatalf("next %q after %q", p.Next, after)
				}
				after = p.Next
			}
			if len(ids) != 250 {
				t.Errorf("%d messages, want 250", len(ids))
			}
		})
	}
	// Without a limit: the default page.
	p := decode[MessagePage](t, f.get(t, "/api/v1/messages"))
	if len(p.Messages) != DefaultLimit {
		t.Errorf("default page of %d", len(p.Messages))
	}
}

func testFilters(t *testing.T, f *fixture) {
	count := func(query string) int {
		t.Helper()
		p := decode[MessagePage](t, f.get(t, "/api/v1/messages?limit=1000&"+query))
		return len(p.Messages)
	}
	for _, c := range []struct {
		query string
		want  int
	}{
		{"", 250},
		{"type=general", 99},
		{"type=monitor-to-monitor", 151},
		{"type=supplier-invoice", 0},
		{"account=m2m@contoso.example", 150},
		{"account=GENERAL@contoso.example", 99},
		{"account=oc@contoso.example&type=monitor-to-monitor", 1},
		{"account=oc@contoso.example&type=general", 0},
		{"unacked=false", 250},
	} {
		if got := count(c.query); got != c.want {
			t.Errorf("%q: %d messages, want %d", c.query, got, c.want)
		}
	}
	unacked, unackedGeneral := count("unacked=true"), count("unacked=true&type=general")
	p := decode[MessagePage](t, f.get(t, "/api/v1/messages?type=general&unacked=true&limit=3"))
	for _, m := range p.Messages {
		if m.Type != settings.TypeGeneral || m.Account != "general@contoso.example" {
			t.Errorf("type filter let through %+v", m)
		}
		if r := f.do(t, "POST", "/api/v1/messages/"+m.ID+"/ack", goodToken); r.status != 200 {
			t.Fatalf("ack: %d %s", r.status, r.body)
		}
	}
	if got := count("unacked=true"); got != unacked-3 {
		t.Errorf("unacked after 3 acks: %d", got)
	}
	if got := count("unacked=1&type=general"); got != unackedGeneral-3 {
		t.Errorf("unacked general after 3 acks: %d", got)
	}
}

func testBadParameters(t *testing.T, f *fixture) {
	for _, c := range []struct {
		query     string
		fragments []string
	}{
		{"type=invoice", []string{"type", "monitor-to-monitor", "general"}},
		{"limit=0", []string{"limit", "1 to 1000"}},
		{"limit=1001", []string{"limit", "1 to 1000"}},
		{"limit=ten", []string{"limit", "1 to 1000"}},
		{"after=-1", []string{"after", "next"}},
		{"after=abc", []string{"after", "next"}},
		{"after=007", []string{"after"}},
		{"after=99999999999999999999", []string{"after"}},
		{"unacked=maybe", []string{"unacked", "true or false"}},
		{"cursor=12", []string{"cursor", "unknown parameter", "after"}},
		{"type=general&type=general", []string{"type", "more than once"}},
	} {
		t.Run(c.query, func(t *testing.T) {
			wantError(t, f.get(t, "/api/v1/messages?"+c.query), 400, "bad_parameter", c.fragments...)
		})
	}
}

func testMessage(t *testing.T, f *fixture) {
	r := f.get(t, "/api/v1/messages/"+f.real.ID)
	m := decode[Message](t, r)
	if !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Errorf("Content-Type %q", r.header.Get("Content-Type"))
	}
	if m.ID != f.real.ID || m.Account != "oc@contoso.example" || m.Type != settings.TypeMonitorToMonitor || m.MessageID != "m2m-oc-2291@leverantoren.se" ||
		m.From != "m2m@leverantoren.se" || len(m.To) != 1 || m.To[0] != "m2m@kunden.se" || len(m.Cc) != 1 || m.Cc[0] != "inkop@kunden.se" ||
		m.Subject != "Orderbekräftelse OC-2291" || m.Date == nil || !m.Date.Equal(time.Date(2026, 3, 3, 8, 15, 0, 0, time.UTC)) ||
		m.ReceivedAt.IsZero() || m.Size != int64(len(f.raw)) || m.SHA256 != fmt.Sprintf("%x", sha256.Sum256(f.raw)) || m.AckedAt != nil {
		t.Errorf("message %+v", m)
	}
	if len(m.Attachments) != 2 || m.Attachments[0].Filename != "Orderbekräftelse OC-2291.pdf" || m.Attachments[0].ContentType != "application/pdf" ||
		m.Attachments[1].Index != 1 || m.Attachments[1].Filename != "OC-2291.xml" {
		t.Errorf("attachments %+v", m.Attachments)
	}
	if m.M2M == nil || *m.M2M != (M2M{Kind: "order-confirmation", XMLIndex: 1, PDFIndex: 0, DocumentNumber: "OC-2291"}) {
		t.Errorf("m2m %+v", m.M2M)
	}
	// The JSON names the ERP relies on, including the ones that are null.
	var raw map[string]any
	must(t, json.Unmarshal(r.body, &raw))
	for _, k := range []string{"id", "account", "type", "messageId", "from", "to", "cc", "subject", "date", "receivedAt", "size", "sha256", "attachments", "m2m", "ackedAt"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("the message JSON lacks %q: %s", k, r.body)
		}
	}
	if _, ok := raw["seq"]; ok {
		t.Error("the message JSON shows the internal seq")
	}
	for _, c := range []struct {
		path   string
		status int
		code   string
	}{
		{"/api/v1/messages/m_aaaaaaaaaaaaaaaaaaaa", 404, "not_found"},
		{"/api/v1/messages/nonsense", 400, "bad_id"},
		{"/api/v1/messages/m_AAAAAAAAAAAAAAAAAAAA", 400, "bad_id"},
		{"/api/v1/messages/m_aaaaaaaaaaaaaaaaaaaa/raw", 404, "not_found"},
		{"/api/v1/messages/x/raw", 400, "bad_id"},
		{"/api/v1/messages/m_aaaaaaaaaaaaaaaaaaaa/attachments/0", 404, "not_found"},
		{"/api/v1/messages/x/attachments/0", 400, "bad_id"},
	} {
		wantError(t, f.get(t, c.path), c.status, c.code)
	}
	wantError(t, f.do(t, "DELETE", "/api/v1/messages/"+f.real.ID, goodToken), 405, "method_not_allowed", "GET")
}

func testRaw(t *testing.T, f *fixture) {
	r := f.get(t, "/api/v1/messages/"+f.real.ID+"/raw")
	if r.status != 200 || !bytes.Equal(r.body, f.raw) {
		t.Fatalf("raw: %d, %d bytes, want %d exact bytes", r.status, len(r.body), len(f.raw))
	}
	etag := `"` + f.real.SHA256 + `"`
	if r.header.Get("Content-Type") != "message/rfc822" || r.header.Get("Content-Length") != fmt.Sprint(len(f.raw)) || r.header.Get("ETag") != etag {
		t.Errorf("raw headers %v", r.header)
	}
	if r := f.do(t, "GET", "/api/v1/messages/"+f.real.ID+"/raw", goodToken, "If-None-Match", etag); r.status != http.StatusNotModified {
		t.Errorf("If-None-Match: %d", r.status)
	}
	// Every stored message comes back byte for byte.
	p := decode[MessagePage](t, f.get(t, "/api/v1/messages?type=general&limit=5"))
	for i, m := range p.Messages {
		r := f.get(t, "/api/v1/messages/"+m.ID+"/raw")
		if want := storetest.RawMessage(1000 + i); !bytes.Equal(r.body, want) {
			t.Errorf("raw of %s: %q, want %q", m.ID, r.body, want)
		}
	}
}

func testAttachment(t *testing.T, f *fixture) {
	pdf, err := os.ReadFile("testdata/order-confirmation.pdf")
	must(t, err)
	base := "/api/v1/messages/" + f.real.ID + "/attachments/"
	r := f.get(t, base+"0")
	if r.status != 200 || !bytes.Equal(r.body, pdf) {
		t.Fatalf("attachment 0: %d %q", r.status, r.body)
	}
	if r.header.Get("Content-Type") != "application/pdf" || r.header.Get("Content-Length") != fmt.Sprint(len(pdf)) ||
		r.header.Get("Content-Disposition") != `attachment; filename="Orderbekr_ftelse OC-2291.pdf"; filename*=UTF-8''Orderbekr%C3%A4ftelse%20OC-2291.pdf` ||
		r.header.Get("ETag") != `"`+f.real.Attachments[0].SHA256+`"` {
		t.Errorf("attachment 0 headers %v", r.header)
	}
	r = f.get(t, base+"1")
	if r.status != 200 || !bytes.Contains(r.body, []byte("<OrderNumber>OC-2291</OrderNumber>")) || !bytes.Contains(r.body, []byte("Leverantören AB")) {
		t.Fatalf("attachment 1: %d %q", r.status, r.body)
	}
	if sum := sha256.Sum256(r.body); hex.EncodeToString(sum[:]) != f.real.Attachments[1].SHA256 {
		t.Error("attachment 1's bytes do not match its stored sha256")
	}
	if r.header.Get("Content-Type") != "application/xml" || r.header.Get("Content-Disposition") != `attachment; filename="OC-2291.xml"` {
		t.Errorf("attachment 1 headers %v", r.header)
	}
	wantError(t, f.get(t, base+"2"), 404, "not_found", "has no attachment 2", "it has 2")
	for _, n := range []string{"-1", "x", "01", "99999999999999999999999"} {
		wantError(t, f.get(t, base+n), 400, "bad_parameter", "attachment index")
	}
}

func testAck(t *testing.T, f *fixture) {
	path := "/api/v1/messages/" + f.real.ID + "/ack"
	first := decode[AckResponse](t, f.do(t, "POST", path, goodToken))
	second := decode[AckResponse](t, f.do(t, "POST", path, goodToken))
	if first.ID != f.real.ID || first.AckedAt.IsZero() || !first.AckedAt.Equal(second.AckedAt) {
		t.Errorf("acks %+v %+v", first, second)
	}
	m := decode[Message](t, f.get(t, "/api/v1/messages/"+f.real.ID))
	if m.AckedAt == nil || !m.AckedAt.Equal(first.AckedAt) {
		t.Errorf("acked message %+v", m.AckedAt)
	}
	r := f.do(t, "GET", path, goodToken)
	wantError(t, r, 405, "method_not_allowed", "POST")
	if r.header.Get("Allow") != "POST" {
		t.Errorf("Allow %q", r.header.Get("Allow"))
	}
	wantError(t, f.do(t, "POST", "/api/v1/messages/m_aaaaaaaaaaaaaaaaaaaa/ack", goodToken), 404, "not_found")
	wantError(t, f.do(t, "POST", "/api/v1/messages/m_1/ack", goodToken), 400, "bad_id")
	wantError(t, f.do(t, "POST", path, ""), 401, "unauthorized")
}

func testAccounts(t *testing.T, f *fixture) {
	p := decode[struct{ Accounts []AccountView }](t, f.get(t, "/api/v1/accounts"))
	if p.Accounts == nil || len(p.Accounts) != 0 {
		t.Errorf("accounts of an empty store %+v", p.Accounts)
	}
	poll := time.Date(2026, 3, 3, 9, 0, 0, 0, time.UTC)
	calls := 0
	srv := httptest.NewServer(New(Config{Store: f.st, Accounts: func(ctx context.Context) ([]AccountView, error) {
		calls++
		if calls > 1 {
			return nil, errors.New("the workers are gone")
		}
		return []AccountView{{ID: 1, Address: "m2m@contoso.example", Type: settings.TypeMonitorToMonitor, State: "idle", LastPoll: &poll}}, nil
	}}))
	defer srv.Close()
	g := &fixture{srv: srv}
	p = decode[struct{ Accounts []AccountView }](t, g.get(t, "/api/v1/accounts"))
	if len(p.Accounts) != 1 || p.Accounts[0].State != "idle" || !p.Accounts[0].LastPoll.Equal(poll) {
		t.Errorf("accounts %+v", p.Accounts)
	}
	wantError(t, g.get(t, "/api/v1/accounts"), 500, "internal")
}

func testNoTokenInLogs(t *testing.T, f *fixture) {
	f.get(t, "/api/v1/messages?limit=2")
	f.get(t, "/api/v1/messages/"+f.real.ID+"/raw")
	f.do(t, "GET", "/api/v1/messages", wrongToken)
	f.do(t, "GET", "/api/v1/messages", revokedToken)
	f.do(t, "GET", "/api/v1/messages?access_token="+wrongToken, "")
	f.do(t, "GET", "/api/v1/messages?limit=1&token="+wrongToken, goodToken)
	f.srv.Close() // waits for the handlers, and so for their log lines
	logs := f.logs.String()
	if strings.Count(logs, "api request") < 6 {
		t.Fatalf("expected a log line per request:\n%s", logs)
	}
	for _, secret := range []string{goodToken, wrongToken, revokedToken, "Bearer", "Authorization", goodToken[4:20], fmt.Sprintf("%x", HashToken(goodToken))} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log holds %q:\n%s", secret, logs)
		}
	}
	if !strings.Contains(logs, "token=erp") || !strings.Contains(logs, "status=401") {
		t.Errorf("the log lacks the token's name or the refusals:\n%s", logs)
	}
}

func TestContentDisposition(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"order.pdf", `attachment; filename="order.pdf"`},
		{"Beställning 4711.pdf", `attachment; filename="Best_llning 4711.pdf"; filename*=UTF-8''Best%C3%A4llning%204711.pdf`},
		{`a"b\c.txt`, `attachment; filename="c.txt"`},
		{`say "hi".txt`, `attachment; filename="say _hi_.txt"; filename*=UTF-8''say%20%22hi%22.txt`},
		{"../../etc/passwd", `attachment; filename="passwd"`},
		{"line\r\nbreak.txt", `attachment; filename="line__break.txt"`},
		{"", `attachment; filename="attachment"`},
		{"100%.txt", `attachment; filename="100_.txt"; filename*=UTF-8''100%25.txt`},
		{"\xff.bin", `attachment; filename="_.bin"`},
	} {
		if got := ContentDisposition(c.in); got != c.want {
			t.Errorf("ContentDisposition(%q) = %s, want %s", c.in, got, c.want)
		}
	}
}

// testRawDamaged: when a message's bytes are gone from disk, the raw and attachment endpoints say so
// with their own code (not a passing failure the ERP would retry forever), and the log names the file.
func testRawDamaged(t *testing.T, f *fixture) {
	dir := f.st.(*sqlite.Store).RawDir()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(segs) == 0 {
		t.Fatalf("no segment files in %s", dir)
	}
	for _, s := range segs {
		must(t, os.Truncate(s, 0))
	}
	id := f.real.ID
	wantError(t, f.get(t, "/api/v1/messages/"+id+"/raw"), http.StatusInternalServerError, "raw_damaged", id, "restore it from a backup")
	wantError(t, f.get(t, "/api/v1/messages/"+id+"/attachments/0"), http.StatusInternalServerError, "raw_damaged", id)
	if !strings.Contains(f.logs.String(), segs[0]) {
		t.Errorf("the log does not name the segment file %s", segs[0])
	}
}
