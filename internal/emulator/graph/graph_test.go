package graph

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"inkorg/internal/emulator/exo"
)

func TestMailFolders(t *testing.T) {
	e := newEnv(t)
	for _, f := range []string{"Archive", "Processed", "Processed/2026", "Failed"} {
		if err := e.store.CreateFolder(alice, f); err != nil {
			t.Fatal(err)
		}
	}
	e.deliver(alice, "INBOX", 1)
	tok := e.appToken("Mail.ReadWrite")

	r := e.get("/users/"+alice+"/mailFolders", tok)
	if r.status != http.StatusOK {
		t.Fatalf("%d %s", r.status, r.body)
	}
	var names []string
	var inbox map[string]any
	for _, v := range r.json(t)["value"].([]any) {
		f := v.(map[string]any)
		names = append(names, f["displayName"].(string))
		if f["displayName"] == "Inbox" {
			inbox = f
		}
	}
	if want := []string{"Inbox", "Archive", "Failed", "Processed"}; !slices.Equal(names, want) {
		t.Errorf("folders %v, want %v", names, want)
	}
	if inbox["totalItemCount"] != 1.0 || inbox["unreadItemCount"] != 1.0 {
		t.Errorf("inbox %v", inbox)
	}

	// $filter=displayName eq '…' is how a client resolves a folder id.
	r = e.get("/users/"+alice+"/mailFolders?$filter="+url.QueryEscape("displayName eq 'processed'"), tok)
	v := r.json(t)["value"].([]any)
	if len(v) != 1 || v[0].(map[string]any)["childFolderCount"] != 1.0 {
		t.Fatalf("filter: %s", r.body)
	}
	processed := v[0].(map[string]any)["id"].(string)
	r = e.get("/users/"+alice+"/mailFolders/"+processed+"/childFolders", tok)
	if v := r.json(t)["value"].([]any); len(v) != 1 || v[0].(map[string]any)["displayName"] != "2026" ||
		v[0].(map[string]any)["parentFolderId"] != processed {
		t.Fatalf("childFolders: %s", r.body)
	}
	wantError(t, e.get("/users/"+alice+"/mailFolders?$filter="+url.QueryEscape("startswith(displayName,'P')"), tok),
		http.StatusBadRequest, codeBadRequest, "")

	// $top pages with @odata.nextLink.
	var all []string
	next := "/users/" + alice + "/mailFolders?$top=3"
	for next != "" {
		m := e.get(next, tok).json(t)
		for _, v := range m["value"].([]any) {
			all = append(all, v.(map[string]any)["displayName"].(string))
		}
		next, _ = m["@odata.nextLink"].(string)
	}
	if len(all) != 4 {
		t.Errorf("paged folders %v", all)
	}

	// Well-known names resolve (and exist, as in Exchange); ids round-trip.
	r = e.get("/users/"+alice+"/mailFolders/deleteditems", tok)
	f := r.json(t)
	if f["displayName"] != "Deleted Items" {
		t.Fatalf("deleteditems: %s", r.body)
	}
	if r2 := e.get("/users/"+alice+"/mailFolders/"+f["id"].(string), tok); r2.json(t)["displayName"] != "Deleted Items" {
		t.Errorf("by id: %s", r2.body)
	}
	if r := e.get("/users/"+alice+"/mailFolders/msgfolderroot", tok); r.json(t)["childFolderCount"] != 5.0 {
		t.Errorf("root: %s", r.body)
	}
	wantError(t, e.get("/users/"+alice+"/mailFolders/nonsense", tok), http.StatusBadRequest, codeIDMalformed, msgIDMalformed)
	wantError(t, e.get("/users/"+alice+"/mailFolders/"+folderID(alice, "Gone", 7), tok), http.StatusNotFound, codeItemNotFound, msgItemNotFound)
}

func TestMessageGetValuePatchMove(t *testing.T) {
	e := newEnv(t)
	raw := append(e.deliver(alice, "INBOX", 1), []byte("trailing bytes \x00\xff kept\r\n")...)
	uid, err := e.store.Deliver(alice, "INBOX", raw)
	if err != nil {
		t.Fatal(err)
	}
	tok := e.appToken("Mail.ReadWrite")
	fs, _ := e.store.Folders(alice)
	id := messageID(alice, "INBOX", fs[0].UIDValidity, uid)

	// List newest first, then GET.
	l := e.get("/users/"+alice+"/mailFolders/inbox/messages?$top=1", tok).json(t)
	if v := l["value"].([]any); len(v) != 1 || v[0].(map[string]any)["id"] != id || l["@odata.nextLink"] == nil {
		t.Fatalf("list: %v", l)
	}
	m := e.get("/users/"+alice+"/messages/"+id, tok).json(t)
	from := m["from"].(map[string]any)["emailAddress"].(map[string]any)
	to := m["toRecipients"].([]any)[0].(map[string]any)["emailAddress"].(map[string]any)
	switch {
	case m["id"] != id, m["subject"] != "Invoice 1", m["internetMessageId"] != "<inv-1@vendor.example>",
		from["address"] != "supplier1@vendor.example", from["name"] != "Supplier 1", to["address"] != alice,
		m["receivedDateTime"] != "2026-03-02T09:30:00Z", m["isRead"] != false, m["hasAttachments"] != false,
		m["parentFolderId"] != folderID(alice, "INBOX", fs[0].UIDValidity):
		t.Fatalf("message JSON: %v", m)
	}

	// $value is exactly the delivered bytes, with or without the folder in the path.
	for _, p := range []string{"/users/" + alice + "/messages/" + id + "/$value",
		"/users/" + alice + "/mailFolders/inbox/messages/" + id + "/%24value"} {
		if r := e.get(p, tok); r.status != http.StatusOK || !bytes.Equal(r.body, raw) {
			t.Fatalf("$value %s: %d %q", p, r.status, r.body)
		}
	}

	// PATCH isRead.
	r := e.do(http.MethodPatch, "/users/"+alice+"/messages/"+id, tok, strings.NewReader(`{"isRead": true}`), "Content-Type", "application/json")
	if r.status != http.StatusOK || r.json(t)["isRead"] != true {
		t.Fatalf("patch: %d %s", r.status, r.body)
	}
	if ms, _ := e.store.Messages(alice, "INBOX"); !slices.Contains(ms[1].Flags, `\Seen`) {
		t.Fatalf("store flags %v", ms[1].Flags)
	}
	wantError(t, e.do(http.MethodPatch, "/users/"+alice+"/messages/"+id, tok, strings.NewReader(`{"isRead": `), "Content-Type", "application/json"),
		http.StatusBadRequest, codeBadRequest, msgBadJSON)

	// Move: 201, a new id, the old one is gone, flags travel.
	r = e.postJSON("/users/"+alice+"/messages/"+id+"/move", tok, map[string]string{"destinationId": "archive"})
	if r.status != http.StatusCreated {
		t.Fatalf("move: %d %s", r.status, r.body)
	}
	moved := r.json(t)
	newID := moved["id"].(string)
	arch := e.get("/users/"+alice+"/mailFolders/archive", tok).json(t)
	if newID == id || moved["parentFolderId"] != arch["id"] || moved["isRead"] != true {
		t.Fatalf("moved: %v (archive %v)", moved, arch["id"])
	}
	wantError(t, e.get("/users/"+alice+"/messages/"+id, tok), http.StatusNotFound, codeItemNotFound, msgItemNotFound)
	if r := e.get("/users/"+alice+"/messages/"+newID+"/$value", tok); !bytes.Equal(r.body, raw) {
		t.Fatalf("moved $value: %q", r.body)
	}
	// Move by folder id.
	inboxID := e.get("/users/"+alice+"/mailFolders/inbox", tok).json(t)["id"].(string)
	r = e.postJSON("/users/"+alice+"/messages/"+newID+"/move", tok, map[string]string{"destinationId": inboxID})
	if r.status != http.StatusCreated || r.json(t)["parentFolderId"] != inboxID {
		t.Fatalf("move back: %d %s", r.status, r.body)
	}
	wantError(t, e.postJSON("/users/"+alice+"/messages/"+r.json(t)["id"].(string)+"/move", tok, map[string]string{}),
		http.StatusBadRequest, codeInvalidParameter, "")

	// Ids: malformed, another mailbox's, unknown uid.
	wantError(t, e.get("/users/"+alice+"/messages/AAMkAD=", tok), http.StatusBadRequest, codeIDMalformed, msgIDMalformed)
	wantError(t, e.get("/users/"+bob+"/messages/"+newID, tok), http.StatusNotFound, codeWrongMailbox, msgWrongMailbox)
	wantError(t, e.get("/users/"+alice+"/messages/"+messageID(alice, "INBOX", fs[0].UIDValidity, 999), tok),
		http.StatusNotFound, codeItemNotFound, msgItemNotFound)
	wantError(t, e.do(http.MethodDelete, "/users/"+alice+"/messages/"+newID+"/move", tok, nil), http.StatusMethodNotAllowed, codeBadRequest, "")
	wantError(t, e.get("/users/"+alice+"/calendars", tok), http.StatusBadRequest, codeBadRequest, "Resource not found for the segment 'calendars'.")
}

func TestHasAttachments(t *testing.T) {
	raw := "From: a@b.example\r\nSubject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n" +
		"--b1\r\nContent-Type: multipart/alternative; boundary=b2\r\n\r\n--b2\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b2--\r\n" +
		"--b1\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"po.pdf\"\r\n\r\nJVBERi0=\r\n--b1--\r\n"
	if m := parseHeaderMeta([]byte(raw)); !m.hasAttachments || m.subject != "x" {
		t.Fatalf("meta %+v", m)
	}
	if m := parseHeaderMeta([]byte("Subject: =?utf-8?q?R=C3=A4kning?=\r\n\r\nbody")); m.hasAttachments || m.subject != "Räkning" {
		t.Fatalf("meta %+v", m)
	}
}

func TestDeltaPagingAndIncremental(t *testing.T) {
	e := newEnv(t)
	for i := 1; i <= 5; i++ {
		e.deliver(alice, "INBOX", i)
	}
	tok := e.appToken("Mail.ReadWrite")
	start := "/users/" + alice + "/mailFolders/inbox/messages/delta"

	// Prefer: odata.maxpagesize=2 → pages of 2, 2, 1; the last carries the deltaLink.
	p1, r := e.deltaGet(start, tok, "Prefer", "odata.maxpagesize=2")
	if len(p1.Value) != 2 || p1.NextLink == "" || p1.DeltaLink != "" || !strings.Contains(p1.NextLink, "$skiptoken=") {
		t.Fatalf("page 1: %s", r.body)
	}
	if r.header.Get("Preference-Applied") != "odata.maxpagesize=2" {
		t.Errorf("Preference-Applied %q", r.header.Get("Preference-Applied"))
	}
	items, deltaLink, pages := e.syncAll(p1.NextLink, tok, "Prefer", "odata.maxpagesize=2")
	items = append(p1.Value, items...)
	if pages != 2 || len(items) != 5 || !strings.Contains(deltaLink, "$deltatoken=") {
		t.Fatalf("pages %d, items %d, deltaLink %q", pages+1, len(items), deltaLink)
	}
	for i, it := range items {
		if it["subject"] != "Invoice "+strconv.Itoa(i+1) || it["@odata.type"] != "#microsoft.graph.message" {
			t.Errorf("item %d: %v", i, it)
		}
	}
	// A nextLink can be fetched again (a client retrying a page).
	if again, _ := e.deltaGet(p1.NextLink, tok, "Prefer", "odata.maxpagesize=2"); len(again.Value) != 2 {
		t.Errorf("retried page: %d items", len(again.Value))
	}
	// $top sets the page size too, and is remembered in the links.
	if _, _, pages := e.syncAll(start+"?$top=4", tok); pages != 2 {
		t.Errorf("$top=4: %d pages", pages)
	}

	// Nothing changed: empty value, a new deltaLink.
	items, deltaLink, _ = e.syncAll(deltaLink, tok)
	if len(items) != 0 {
		t.Fatalf("no changes, got %v", items)
	}

	// A delivery, a Graph move and an IMAP-side flag change show up; nothing else.
	e.deliver(alice, "INBOX", 6)
	movedID := items5ID(t, e, 2)
	if r := e.postJSON("/users/"+alice+"/messages/"+movedID+"/move", tok, map[string]string{"destinationId": "archive"}); r.status != http.StatusCreated {
		t.Fatalf("move: %d %s", r.status, r.body)
	}
	if err := e.store.SetSeen(alice, "INBOX", 4, true); err != nil {
		t.Fatal(err)
	}
	items, deltaLink, _ = e.syncAll(deltaLink, tok)
	if len(items) != 3 {
		t.Fatalf("incremental: %v", items)
	}
	removed := items[0]
	if removed["id"] != movedID || removed["@removed"].(map[string]any)["reason"] != "deleted" {
		t.Errorf("removed: %v", removed)
	}
	if items[1]["subject"] != "Invoice 4" || items[1]["isRead"] != true {
		t.Errorf("updated: %v", items[1])
	}
	if items[2]["subject"] != "Invoice 6" {
		t.Errorf("created: %v", items[2])
	}

	// The archive's own delta sees the moved message as created.
	arch, _, _ := e.syncAll("/users/"+alice+"/mailFolders/archive/messages/delta", tok)
	if len(arch) != 1 || arch[0]["subject"] != "Invoice 2" {
		t.Errorf("archive: %v", arch)
	}
	// changeType=created is kept across rounds: a later flag change is not reported.
	_, createdLink, _ := e.syncAll(start+"?changeType=created", tok)
	if err := e.store.SetSeen(alice, "INBOX", 1, true); err != nil {
		t.Fatal(err)
	}
	e.deliver(alice, "INBOX", 7)
	if items, _, _ := e.syncAll(createdLink, tok); len(items) != 1 || items[0]["subject"] != "Invoice 7" {
		t.Errorf("changeType=created: %v", items)
	}
	if items, _, _ := e.syncAll(deltaLink, tok); len(items) != 2 {
		t.Errorf("full: %v", items)
	}
}

// items5ID is the id of the INBOX message with the given UID.
func items5ID(t *testing.T, e *env, uid uint32) string {
	t.Helper()
	fs, err := e.store.Folders(alice)
	if err != nil {
		t.Fatal(err)
	}
	return messageID(alice, "INBOX", fs[0].UIDValidity, uid)
}

func TestDeltaODataKeySyntax(t *testing.T) {
	e := newEnv(t)
	e.deliver(bob, "INBOX", 1)
	tok := e.appToken("Mail.Read")
	items, link, _ := e.syncAll("/users('"+bob+"')/mailFolders('Inbox')/messages/microsoft.graph.delta()", tok)
	if len(items) != 1 || !strings.Contains(link, "/users/"+bob+"/mailFolders('") {
		t.Fatalf("items %v link %s", items, link)
	}
}

func TestDeltaGone(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.SyncStateTTL = time.Hour; c.MaxSyncStates = 4 })
	e.deliver(alice, "INBOX", 1)
	tok := e.appToken("Mail.ReadWrite")
	start := "/users/" + alice + "/mailFolders/inbox/messages/delta"
	_, link, _ := e.syncAll(start, tok)
	u, _ := url.Parse(link)
	dt := u.Query().Get("$deltatoken")

	other := syncToken{kind: tokenDelta, epoch: [4]byte{9, 9, 9, 9}, state: 1}.String()
	for name, q := range map[string]string{
		"garbage":       "$deltatoken=not-a-token",
		"unknown id":    "$deltatoken=" + syncToken{kind: tokenDelta, epoch: e.h.epoch, state: 999}.String(),
		"other epoch":   "$deltatoken=" + other,
		"skip as delta": "$deltatoken=" + syncToken{kind: tokenSkip, epoch: e.h.epoch, state: 1}.String(),
		"bad skip":      "$skiptoken=" + syncToken{kind: tokenSkip, epoch: e.h.epoch, state: 2, offset: 99}.String(),
	} {
		t.Run(name, func(t *testing.T) {
			wantError(t, e.get(start+"?"+q, tok), http.StatusGone, codeSyncStateNotFound, "")
		})
	}
	// The token of one folder does not open another.
	wantError(t, e.get("/users/"+alice+"/mailFolders/archive/messages/delta?$deltatoken="+dt, tok), http.StatusGone, codeSyncStateNotFound, "")
	// Still good here.
	if r := e.get(link, tok); r.status != http.StatusOK {
		t.Fatalf("%d %s", r.status, r.body)
	}
	// Expired by age.
	e.clock.Advance(time.Hour + time.Second)
	tok = e.appToken("Mail.ReadWrite")
	wantError(t, e.get(link, tok), http.StatusGone, codeSyncStateNotFound, "")
	// Dropped by ExpireSyncStates.
	_, link, _ = e.syncAll(start, tok)
	e.h.ExpireSyncStates()
	r := e.get(link, tok)
	wantError(t, r, http.StatusGone, codeSyncStateNotFound, "")
	if !strings.HasPrefix(r.json(t)["error"].(map[string]any)["message"].(string), "The sync state generation is not found; generation=") {
		t.Errorf("message: %s", r.body)
	}
	// Evicted beyond MaxSyncStates (each round makes two states).
	_, link, _ = e.syncAll(start, tok)
	for range 3 {
		e.syncAll(start, tok)
	}
	wantError(t, e.get(link, tok), http.StatusGone, codeSyncStateNotFound, "")
}

func TestAuthErrors(t *testing.T) {
	e := newEnv(t)
	e.deliver(alice, "INBOX", 1)
	id := items5ID(t, e, 1)
	inbox := "/users/" + alice + "/mailFolders/inbox/messages/delta"
	expired := e.token(func(mc jwt.MapClaims) { mc["exp"] = e.clock.Now().Add(-time.Minute).Unix() })
	exoAud := e.token(func(mc jwt.MapClaims) { mc["aud"] = "https://outlook.office365.com" })
	badSig := e.appToken("Mail.ReadWrite")
	badSig = badSig[:len(badSig)-4] + "AAAA"
	tests := []struct {
		name, method, path, token string
		status                    int
		code, message             string
	}{
		{"no token", "GET", inbox, "", 401, codeInvalidToken, msgTokenEmpty},
		{"not a JWT", "GET", inbox, "opaque-token", 401, codeInvalidToken, msgNotJWT},
		{"bad signature", "GET", inbox, badSig, 401, codeInvalidToken, msgTokenInvalid},
		{"expired", "GET", inbox, expired, 401, codeInvalidToken, msgTokenExpired},
		{"Exchange audience", "GET", inbox, exoAud, 401, codeInvalidToken, msgBadAudience},
		{"no Mail role", "GET", inbox, e.appToken("User.Read.All"), 403, codeAccessDenied, msgAccessDenied},
		{"unknown user", "GET", "/users/nobody@contoso.example/mailFolders", e.appToken("Mail.Read"), 404, codeInvalidUser,
			"The requested user 'nobody@contoso.example' is invalid."},
		{"user not in store", "GET", "/users/ghost@contoso.example/mailFolders", e.appToken("Mail.Read"), 404, codeInvalidUser, ""},
		{"access policy", "GET", "/users/notconnected@contoso.example/mailFolders", e.appToken("Mail.Read"), 403, codeAccessDenied, msgODataDisabled},
		{"delegated, other mailbox", "GET", inbox, e.userToken(bob, "Mail.Read"), 403, codeAccessDenied, msgAccessDenied},
		{"Mail.Read cannot PATCH", "PATCH", "/users/" + alice + "/messages/" + id, e.appToken("Mail.Read"), 403, codeAccessDenied, msgAccessDenied},
		{"Mail.Read cannot move", "POST", "/users/" + alice + "/messages/" + id + "/move", e.appToken("Mail.Read"), 403, codeAccessDenied, msgAccessDenied},
		{"Mail.ReadBasic cannot $value", "GET", "/users/" + alice + "/messages/" + id + "/$value", e.appToken("Mail.ReadBasic.All"), 403, codeAccessDenied, msgAccessDenied},
		{"Mail.ReadWrite cannot send", "POST", "/users/" + alice + "/sendMail", e.appToken("Mail.ReadWrite"), 403, codeAccessDenied, msgAccessDenied},
		{"Mail.Send cannot read", "GET", inbox, e.appToken("Mail.Send"), 403, codeAccessDenied, msgAccessDenied},
		{"app-only on /me", "GET", "/me/mailFolders", e.appToken("Mail.Read"), 400, codeBadRequest, msgMeAppOnly},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(tc.method, tc.path, tc.token, strings.NewReader(`{"isRead":true}`), "Content-Type", "application/json")
			wantError(t, r, tc.status, tc.code, tc.message)
			if tc.status == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer ") {
				t.Errorf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
			}
		})
	}

	// client-request-id is echoed; /me works for delegated tokens.
	r := e.get("/me/mailFolders/inbox", e.userToken(alice, "Mail.Read offline_access"), "client-request-id", "abc-123")
	if r.status != http.StatusOK || r.header.Get("client-request-id") != "abc-123" || r.header.Get("request-id") == "" {
		t.Fatalf("/me: %d %v %s", r.status, r.header, r.body)
	}
	r = e.get("/me/mailFolders/nonsense", e.userToken(alice, "Mail.Read"), "client-request-id", "abc-123")
	wantError(t, r, http.StatusBadRequest, codeIDMalformed, msgIDMalformed)
	if !strings.Contains(string(r.body), `"client-request-id":"abc-123"`) {
		t.Errorf("client-request-id not in innerError: %s", r.body)
	}
}

func TestFaults(t *testing.T) {
	e := newEnv(t)
	tok := e.appToken("Mail.Read")
	path := "/users/" + alice + "/mailFolders"

	e.h.SetFaults(Faults{Throttle: 2500 * time.Millisecond})
	r := e.get(path, tok)
	wantError(t, r, http.StatusTooManyRequests, codeThrottled, msgThrottled)
	if r.header.Get("Retry-After") != "3" {
		t.Errorf("Retry-After %q", r.header.Get("Retry-After"))
	}
	e.clock.Advance(2 * time.Second)
	if r := e.get(path, tok); r.header.Get("Retry-After") != "1" {
		t.Errorf("Retry-After later %q (%d)", r.header.Get("Retry-After"), r.status)
	}
	e.clock.Advance(time.Second)
	if r := e.get(path, tok); r.status != http.StatusOK {
		t.Fatalf("after throttle: %d %s", r.status, r.body)
	}

	e.h.SetFaults(Faults{Unavailable: 2})
	wantError(t, e.get(path, ""), http.StatusServiceUnavailable, codeUnavailable, "")
	wantError(t, e.get(path, tok), http.StatusServiceUnavailable, codeUnavailable, "")
	if r := e.get(path, tok); r.status != http.StatusOK {
		t.Fatalf("after 503s: %d", r.status)
	}

	// SetFaults is safe to call while requests run.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if i%2 == 0 {
				e.h.SetFaults(Faults{Unavailable: 1})
				return
			}
			e.get(path, tok)
		})
	}
	wg.Wait()
}

func TestMailboxConcurrency(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MailboxConcurrency = 2 })
	var rel []func()
	for range 2 {
		f, err := e.h.acquire(appID, alice)
		if err != nil {
			t.Fatal(err)
		}
		rel = append(rel, f)
	}
	if _, err := e.h.acquire(appID, "ALICE@contoso.example"); err == nil {
		t.Fatal("third concurrent request admitted")
	}
	if f, err := e.h.acquire(appID, bob); err != nil {
		t.Fatal("other mailbox refused")
	} else {
		f()
	}
	r := e.get("/users/"+alice+"/mailFolders", e.appToken("Mail.Read"))
	wantError(t, r, http.StatusTooManyRequests, codeThrottled, msgThrottled)
	if r.header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
	rel[0]()
	if r := e.get("/users/"+alice+"/mailFolders", e.appToken("Mail.Read")); r.status != http.StatusOK {
		t.Fatalf("after release: %d", r.status)
	}
	rel[1]()
	if len(e.h.inflight) != 0 {
		t.Errorf("inflight %v", e.h.inflight)
	}
}

func TestSendMailJSON(t *testing.T) {
	e := newEnv(t)
	tok := e.appToken("Mail.Send", "Mail.Read")
	msg := map[string]any{
		"message": map[string]any{
			"subject": "Order confirmation 4711 – Räksmörgås",
			"body":    map[string]string{"contentType": "Text", "content": "Thanks for your order.\nRegards"},
			"toRecipients": []any{map[string]any{"emailAddress": map[string]string{"address": bob, "name": "Bob"}},
				map[string]any{"emailAddress": map[string]string{"address": "someone@elsewhere.example"}}},
			"bccRecipients":          []any{map[string]any{"emailAddress": map[string]string{"address": shared}}},
			"internetMessageHeaders": []any{map[string]string{"name": "X-Inkorg-Id", "value": "42"}},
			"attachments": []any{map[string]string{"@odata.type": "#microsoft.graph.fileAttachment", "name": "order.pdf",
				"contentType": "application/pdf", "contentBytes": base64.StdEncoding.EncodeToString([]byte("%PDF-1.4 test"))}},
		},
	}
	r := e.postJSON("/users/"+alice+"/sendMail", tok, msg)
	if r.status != http.StatusAccepted || len(r.body) != 0 {
		t.Fatalf("sendMail: %d %s", r.status, r.body)
	}
	got, err := e.store.Raw(bob, "INBOX", 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"From: <" + alice + ">\r\n", "To: \"Bob\" <" + bob + ">, <someone@elsewhere.example>\r\n",
		"Subject: =?utf-8?q?", "X-Inkorg-Id: 42\r\n", "Content-Disposition: attachment; filename=order.pdf\r\n"} {
		if !strings.Contains(string(got), want) {
			t.Errorf("delivered message lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(string(got), "Bcc") {
		t.Errorf("Bcc in header:\n%s", got)
	}
	if b, _ := e.store.Raw(shared, "INBOX", 1); !bytes.Equal(b, got) {
		t.Error("Bcc recipient got no copy")
	}
	sent, err := e.store.Messages(alice, "Sent Items")
	if err != nil || len(sent) != 1 || !slices.Contains(sent[0].Flags, `\Seen`) {
		t.Fatalf("Sent Items: %v %v", sent, err)
	}
	// Bob sees it through Graph with its subject decoded and an attachment.
	items, _, _ := e.syncAll("/users/"+bob+"/mailFolders/inbox/messages/delta", tok)
	if len(items) != 1 || items[0]["subject"] != "Order confirmation 4711 – Räksmörgås" || items[0]["hasAttachments"] != true {
		t.Fatalf("bob's view: %v", items)
	}

	// saveToSentItems false.
	msg["saveToSentItems"] = false
	if r := e.postJSON("/users/"+alice+"/sendMail", tok, msg); r.status != http.StatusAccepted {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if sent, _ := e.store.Messages(alice, "Sent Items"); len(sent) != 1 {
		t.Errorf("saveToSentItems=false saved: %d", len(sent))
	}

	rcpt := func(a string) []any { return []any{map[string]any{"emailAddress": map[string]string{"address": a}}} }
	tests := []struct {
		name   string
		body   any
		status int
		code   string
	}{
		{"no recipients", map[string]any{"message": map[string]any{"subject": "x"}}, 400, codeInvalidRecipients},
		{"bad recipient", map[string]any{"message": map[string]any{"toRecipients": rcpt("not an address")}}, 400, codeInvalidRecipients},
		{"no message", map[string]any{"saveToSentItems": true}, 400, codeInvalidParameter},
		{"non-X header", map[string]any{"message": map[string]any{"toRecipients": rcpt(bob),
			"internetMessageHeaders": []any{map[string]string{"name": "Subject", "value": "x"}}}}, 400, codeInvalidHeader},
		{"send as other", map[string]any{"message": map[string]any{"toRecipients": rcpt(bob),
			"from": map[string]any{"emailAddress": map[string]string{"address": shared}}}}, 403, codeSendAsDenied},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, e.postJSON("/users/"+alice+"/sendMail", tok, tc.body), tc.status, tc.code, "")
		})
	}
	wantError(t, e.do(http.MethodPost, "/users/"+alice+"/sendMail", tok, strings.NewReader("{"), "Content-Type", "application/json"),
		400, codeBadRequest, msgBadJSON)

	// With Send As granted (to the app), From may be the shared mailbox.
	e.auth.sendAs[strings.ToLower(appID+"|"+shared)] = true
	r = e.postJSON("/users/"+alice+"/sendMail", tok, map[string]any{"message": map[string]any{"toRecipients": rcpt(bob),
		"from": map[string]any{"emailAddress": map[string]string{"address": shared, "name": "Shared"}}}})
	if r.status != http.StatusAccepted {
		t.Fatalf("send as granted: %d %s", r.status, r.body)
	}
	// Delegated: a user sends as themself without a grant.
	r = e.postJSON("/me/sendMail", e.userToken(bob, "Mail.Send"), map[string]any{"message": map[string]any{"toRecipients": rcpt(alice)}})
	if r.status != http.StatusAccepted {
		t.Fatalf("delegated: %d %s", r.status, r.body)
	}
}

func TestSendMailMIME(t *testing.T) {
	e := newEnv(t)
	tok := e.appToken("Mail.Send")
	raw := []byte("From: Alice <" + alice + ">\r\nTo: " + bob + "\r\nCc: other@elsewhere.example\r\nSubject: MIME\r\n" +
		"Message-ID: <mime-1@inkorg.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n" +
		"Content-Transfer-Encoding: 8bit\r\n\r\nBytes \xc3\xa5\xc3\xa4\xc3\xb6 and a long line " + strings.Repeat("x", 200) + "\r\n")
	b64 := base64.StdEncoding.EncodeToString(raw)
	// Wrapped at 76 columns, as many encoders do.
	var wrapped strings.Builder
	for s := b64; s != ""; {
		n := min(76, len(s))
		wrapped.WriteString(s[:n] + "\r\n")
		s = s[n:]
	}
	for i, body := range []string{b64, wrapped.String()} {
		r := e.do(http.MethodPost, "/users/"+alice+"/sendMail", tok, strings.NewReader(body), "Content-Type", "text/plain")
		if r.status != http.StatusAccepted {
			t.Fatalf("sendMail MIME: %d %s", r.status, r.body)
		}
		got, err := e.store.Raw(bob, "INBOX", uint32(i+1))
		if err != nil || !bytes.Equal(got, raw) {
			t.Fatalf("delivered %q, %v; want byte-exact", got, err)
		}
	}
	if sent, _ := e.store.Messages(alice, "Sent Items"); len(sent) != 2 {
		t.Errorf("Sent Items: %d", len(sent))
	}
	wantError(t, e.do(http.MethodPost, "/users/"+alice+"/sendMail", tok, strings.NewReader("%%% not base64"), "Content-Type", "text/plain"),
		400, codeInvalidBase64, msgInvalidBase64)
	noRcpt := base64.StdEncoding.EncodeToString([]byte("From: " + alice + "\r\nSubject: x\r\n\r\nhi\r\n"))
	wantError(t, e.do(http.MethodPost, "/users/"+alice+"/sendMail", tok, strings.NewReader(noRcpt), "Content-Type", "text/plain"),
		400, codeInvalidRecipients, msgNoRecipients)
	other := base64.StdEncoding.EncodeToString([]byte("From: " + shared + "\r\nTo: " + bob + "\r\n\r\nhi\r\n"))
	wantError(t, e.do(http.MethodPost, "/users/"+alice+"/sendMail", tok, strings.NewReader(other), "Content-Type", "text/plain"),
		403, codeSendAsDenied, msgSendAsDenied)
}

func TestPathForms(t *testing.T) {
	e := newEnv(t)
	tok := e.appToken("Mail.Read")
	// Mounted behind StripPrefix("/v1.0"): the same paths work without the prefix.
	srv := httptest.NewTLSServer(http.StripPrefix("/v1.0", e.h))
	defer srv.Close()
	for _, u := range []string{srv.URL + "/v1.0/users/" + alice + "/mailFolders", e.base + "/users/" + alice + "/mailFolders/",
		e.base + "/users('" + alice + "')/mailFolders"} {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Errorf("%s: %d", u, res.StatusCode)
		}
	}
	wantError(t, e.get("/groups/x", tok), http.StatusBadRequest, codeBadRequest, "Resource not found for the segment 'groups'.")
}

func TestNewValidates(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("New without a store")
	}
	var _ http.Handler = (*Handler)(nil)
	var _ exo.Authorizer = (*fakeAuth)(nil)
}
