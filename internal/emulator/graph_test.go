package emulator

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

type graphResp struct {
	status int
	header http.Header
	body   map[string]any
	raw    []byte
}

func (h *harness) graph(t *testing.T, method, url, token, contentType string, body []byte, hdr ...string) graphResp {
	t.Helper()
	if !strings.HasPrefix(url, "https://") {
		url = h.info.Graph + url
	}
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := graphResp{status: resp.StatusCode, header: resp.Header, raw: raw}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

func (r graphResp) errCode() string {
	e, _ := r.body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func (r graphResp) errMessage() string {
	e, _ := r.body["error"].(map[string]any)
	m, _ := e["message"].(string)
	return m
}

// deltaRound follows nextLinks to the deltaLink and returns the items and the deltaLink.
func deltaRound(t *testing.T, h *harness, url, token string, page int) ([]map[string]any, string, int) {
	t.Helper()
	var items []map[string]any
	pages := 0
	for {
		r := h.graph(t, "GET", url, token, "", nil, "Prefer", fmt.Sprintf("odata.maxpagesize=%d", page))
		if r.status != 200 {
			t.Fatalf("delta %s: %d %s", url, r.status, r.raw)
		}
		pages++
		for _, v := range r.body["value"].([]any) {
			items = append(items, v.(map[string]any))
		}
		if next, ok := r.body["@odata.nextLink"].(string); ok {
			url = next
			continue
		}
		return items, r.body["@odata.deltaLink"].(string), pages
	}
}

func TestGraph(t *testing.T) {
	h := start(t)
	const box = "orders@contoso.example"
	var raws []string
	for i := 0; i < 25; i++ {
		raw := fmt.Sprintf("From: Buyer <buyer@fabrikam.example>\r\nTo: %s\r\nSubject: Order %d\r\nMessage-ID: <order-%d@fabrikam.example>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\nline\r\n", box, i, i)
		raws = append(raws, raw)
		if status, b := h.admin(t, "POST", "/mailboxes/"+box+"/messages", []byte(raw)); status != 201 {
			t.Fatalf("deliver: %d %s", status, b)
		}
	}
	tok := appToken(t, h, defaultApp, h.defaultSecret(), graphScope)

	items, deltaLink, pages := deltaRound(t, h, "/users/"+box+"/mailFolders/inbox/messages/delta", tok, 10)
	if len(items) != 25 || pages != 3 {
		t.Fatalf("first round: %d items in %d pages", len(items), pages)
	}
	first := items[0]
	if first["subject"] != "Order 0" || first["internetMessageId"] != "<order-0@fabrikam.example>" || first["isRead"] != false {
		t.Errorf("first item %v", first)
	}
	if from := first["from"].(map[string]any)["emailAddress"].(map[string]any); from["address"] != "buyer@fabrikam.example" {
		t.Errorf("from %v", from)
	}
	id0, id1 := first["id"].(string), items[1]["id"].(string)

	r := h.graph(t, "GET", "/users/"+box+"/messages/"+id0+"/$value", tok, "", nil)
	if r.status != 200 || string(r.raw) != raws[0] {
		t.Errorf("$value: %d %q", r.status, r.raw)
	}
	r = h.graph(t, "PATCH", "/users/"+box+"/messages/"+id1, tok, "application/json", []byte(`{"isRead":true}`))
	if r.status != 200 || r.body["isRead"] != true {
		t.Errorf("patch: %d %s", r.status, r.raw)
	}
	r = h.graph(t, "POST", "/users/"+box+"/messages/"+id0+"/move", tok, "application/json", []byte(`{"destinationId":"archive"}`))
	if r.status != 201 || r.body["id"] == id0 || r.body["subject"] != "Order 0" {
		t.Fatalf("move: %d %s", r.status, r.raw)
	}
	movedID := r.body["id"].(string)
	if r := h.graph(t, "GET", "/users/"+box+"/messages/"+id0, tok, "", nil); r.status != 404 || r.errCode() != "ErrorItemNotFound" {
		t.Errorf("old id after move: %d %s", r.status, r.raw)
	}
	if r := h.graph(t, "GET", "/users/"+box+"/messages/"+movedID, tok, "", nil); r.status != 200 {
		t.Errorf("new id after move: %d %s", r.status, r.raw)
	}
	h.admin(t, "POST", "/mailboxes/"+box+"/messages", []byte("Subject: Order 25\r\n\r\nx\r\n"))

	items, deltaLink2, _ := deltaRound(t, h, deltaLink, tok, 10)
	var created, updated, removed int
	for _, it := range items {
		switch {
		case it["@removed"] != nil:
			removed++
			if it["id"] != id0 {
				t.Errorf("removed %v", it["id"])
			}
		case it["id"] == id1:
			updated++
			if it["isRead"] != true {
				t.Errorf("updated item %v", it)
			}
		case it["subject"] == "Order 25":
			created++
		default:
			t.Errorf("unexpected change %v", it)
		}
	}
	if created != 1 || updated != 1 || removed != 1 {
		t.Errorf("second round: created %d updated %d removed %d", created, updated, removed)
	}
	// Nothing changed: an empty round.
	items, deltaLink3, _ := deltaRound(t, h, deltaLink2, tok, 10)
	if len(items) != 0 {
		t.Errorf("third round: %d items", len(items))
	}
	// Expired delta tokens: 410 SyncStateNotFound.
	if status, b := h.admin(t, "POST", "/faults", []byte(`{"graph":{"expireDeltaTokens":true}}`)); status != 200 {
		t.Fatalf("faults: %d %s", status, b)
	}
	if r := h.graph(t, "GET", deltaLink3, tok, "", nil); r.status != 410 || r.errCode() != "SyncStateNotFound" ||
		!strings.HasPrefix(r.errMessage(), "The sync state generation is not found") {
		t.Errorf("expired delta: %d %s", r.status, r.raw)
	}

	// sendMail, JSON and MIME.
	r = h.graph(t, "POST", "/users/"+box+"/sendMail", tok, "application/json", []byte(`{"message":{"subject":"Order confirmation",
		"body":{"contentType":"Text","content":"Thank you"},"toRecipients":[{"emailAddress":{"address":"erik@contoso.example"}}],
		"bccRecipients":[{"emailAddress":{"address":"anna@contoso.example"}}]}}`))
	if r.status != 202 || len(r.raw) != 0 {
		t.Errorf("sendMail JSON: %d %s", r.status, r.raw)
	}
	mime := "From: orders@contoso.example\r\nTo: erik@contoso.example\r\nSubject: MIME order\r\n\r\nbody\r\n"
	r = h.graph(t, "POST", "/users/"+box+"/sendMail", tok, "text/plain", []byte(base64.StdEncoding.EncodeToString([]byte(mime))))
	if r.status != 202 {
		t.Errorf("sendMail MIME: %d %s", r.status, r.raw)
	}
	_, b := h.admin(t, "GET", "/mailboxes/erik@contoso.example/folders/INBOX/messages", nil)
	if !strings.Contains(string(b), "Order confirmation") || !strings.Contains(string(b), "MIME order") {
		t.Errorf("erik's INBOX: %s", b)
	}
	if _, b := h.admin(t, "GET", "/mailboxes/anna@contoso.example/folders/INBOX/messages/1", nil); strings.Contains(string(b), "Bcc:") || !strings.Contains(string(b), "Order confirmation") {
		t.Errorf("bcc copy: %s", b)
	}
	if _, b := h.admin(t, "GET", "/mailboxes/"+box+"/folders/Sent Items/messages", nil); !strings.Contains(string(b), "Order confirmation") {
		t.Errorf("Sent Items: %s", b)
	}

	// Errors in Graph's format.
	exoTok := appToken(t, h, defaultApp, h.defaultSecret(), exoScope)
	noMail := appToken(t, h, noRolesID, testSecret, graphScope)
	for _, tc := range []struct {
		name, method, path, token, ctype, body string
		status                                 int
		code, message                          string
	}{
		{"no token", "GET", "/users/" + box + "/mailFolders", "", "", "", 401, "InvalidAuthenticationToken", "Access token is empty."},
		{"exchange token", "GET", "/users/" + box + "/mailFolders", exoTok, "", "", 401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience."},
		{"garbage token", "GET", "/users/" + box + "/mailFolders", "x.y.z", "", "", 401, "InvalidAuthenticationToken", "Access token validation failure."},
		{"me with app token", "GET", "/me/mailFolders", tok, "", "", 400, "BadRequest", "/me request is only valid with delegated authentication flow."},
		{"no mail permission", "GET", "/users/" + box + "/mailFolders", noMail, "", "", 403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."},
		{"unknown user", "GET", "/users/ghost@contoso.example/mailFolders", tok, "", "", 404, "ErrorInvalidUser", "The requested user 'ghost@contoso.example' is invalid."},
		{"bad base64", "POST", "/users/" + box + "/sendMail", tok, "text/plain", "%%%not base64", 400, "ErrorMimeContentInvalidBase64String", "Invalid base64 string for MIME content."},
		{"send as denied", "POST", "/users/" + box + "/sendMail", tok, "application/json",
			`{"message":{"subject":"x","from":{"emailAddress":{"address":"ceo@fabrikam.example"}},"toRecipients":[{"emailAddress":{"address":"erik@contoso.example"}}]}}`,
			403, "ErrorSendAsDenied", "The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account., Cannot submit message."},
		{"malformed id", "GET", "/users/" + box + "/messages/nope", tok, "", "", 400, "ErrorInvalidIdMalformed", "Id is malformed."},
		{"unknown segment", "GET", "/users/" + box + "/calendar", tok, "", "", 400, "BadRequest", "Resource not found for the segment 'calendar'."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.graph(t, tc.method, tc.path, tc.token, tc.ctype, []byte(tc.body))
			if r.status != tc.status || r.errCode() != tc.code || r.errMessage() != tc.message {
				t.Errorf("%d %s", r.status, r.raw)
			}
			if inner, _ := r.body["error"].(map[string]any)["innerError"].(map[string]any); inner["request-id"] == "" {
				t.Errorf("no innerError.request-id: %s", r.raw)
			}
		})
	}
	// Throttling: 429 with Retry-After.
	h.admin(t, "POST", "/faults", []byte(`{"graph":{"throttleMs":3000}}`))
	if got := h.faults(t); got.Graph.ThrottleMs != 3000 {
		t.Errorf("GET /faults after setting a 3 s Graph throttle (the test clock stands still): %+v", got)
	}
	r = h.graph(t, "GET", "/users/"+box+"/mailFolders", tok, "", nil)
	if r.status != 429 || r.errCode() != "ApplicationThrottled" || (r.header.Get("Retry-After") != "3" && r.header.Get("Retry-After") != "2") {
		t.Errorf("throttled: %d %v %s", r.status, r.header.Get("Retry-After"), r.raw)
	}
	h.admin(t, "DELETE", "/faults", nil)
	if got := h.faults(t); got.Graph.ThrottleMs != 0 {
		t.Errorf("GET /faults after clearing: %+v", got)
	}
	if r := h.graph(t, "GET", "/users/"+box+"/mailFolders", tok, "", nil); r.status != 200 {
		t.Errorf("after clearing: %d %s", r.status, r.raw)
	}
	// An expired token.
	h.clock.Add(2 * time.Hour)
	if r := h.graph(t, "GET", "/users/"+box+"/mailFolders", tok, "", nil); r.status != 401 || r.errMessage() != "Lifetime validation failed, the token is expired." {
		t.Errorf("expired: %d %s", r.status, r.raw)
	}
	h.clock.Add(-2 * time.Hour)
}

// faults is GET /_emulator/faults.
func (h *harness) faults(t *testing.T) faultsState {
	t.Helper()
	status, b := h.admin(t, "GET", "/faults", nil)
	var f faultsState
	if err := json.Unmarshal(b, &f); status != 200 || err != nil {
		t.Fatalf("GET /faults: %d %s (%v)", status, b, err)
	}
	return f
}
