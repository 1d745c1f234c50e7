package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"inkorg/internal/cloud"
	"inkorg/internal/emulator"
	"inkorg/internal/emulator/scenario"
	"inkorg/internal/entra"
	"inkorg/internal/outbox"
	"inkorg/internal/settings"
	"inkorg/internal/store"
)

func TestMailAPI(t *testing.T) {
	emu, err := emulator.New(emulator.Config{Dir: t.TempDir(), Scenario: scenario.Default(time.Now())})
	must(t, err)
	must(t, emu.Start(context.Background()))
	defer emu.Close()
	cl, err := cloud.Load(emu.InfoFile())
	must(t, err)
	st := openStore(t)
	ctx := context.Background()
	var app emulator.InfoApp
	for _, a := range emu.Info().Apps {
		if !a.PublicClient {
			app = a
		}
	}
	must(t, st.PutSystem(ctx, settings.System{EmailMethod: settings.MethodExchangeOnline, ClientID: app.ClientID, TenantID: emu.Info().TenantID,
		AuthFlow: settings.FlowClientSecret, ClientSecret: settings.NewSecret(app.ClientSecret)}, "test"))
	must(t, st.PutUser(ctx, settings.User{Name: "WEBSHOP", EmailAddress: settings.Ptr("webshop@contoso.example"), Signature: settings.Ptr("Contoso Webshop")}, "test"))
	must(t, st.PutUser(ctx, settings.User{Name: "ERIK", EmailMethod: settings.Ptr(settings.MethodOutlookClient), EmailAddress: settings.Ptr("erik@contoso.example")}, "test"))
	must(t, st.PutWebshop(ctx, settings.Webshop{EmailMethod: settings.WebshopAccordingToUserSettings}, "test"))
	_, err = st.CreateAPIToken(ctx, "erp", HashToken("test-token"))
	must(t, err)
	ob := outbox.New(outbox.Config{Store: st, Tokens: entra.New(entra.Config{Cloud: cl}), Cloud: cl, PollInterval: 20 * time.Millisecond})
	must(t, ob.Start(ctx))
	defer ob.Close()
	srv := httptest.NewServer(New(Config{Store: st, Outbox: ob}))
	defer srv.Close()

	do := func(method, path, body string) (int, http.Header, []byte) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer test-token")
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, b
	}
	att := base64.StdEncoding.EncodeToString([]byte("%PDF-1.7 invoice"))
	code, _, body := do("POST", "/api/v1/mail", `{"asWebshop": true, "to": "Anna Lind <anna@contoso.example>", "cc": ["erik@contoso.example"],
		"subject": "Invoice 4711", "text": "Please find the invoice attached.", "html": "<p>Please find the invoice attached.</p>",
		"attachments": [{"name": "invoice 4711.pdf", "contentType": "application/pdf", "contentBase64": "`+att+`"}],
		"replyTo": "orders@contoso.example", "inReplyTo": "<order-4711@shop.example>", "relatedRecord": "invoice 4711"}`)
	if code != http.StatusAccepted {
		t.Fatalf("%d %s", code, body)
	}
	var created struct{ ID, State string }
	must(t, json.Unmarshal(body, &created))
	deadline := time.Now().Add(20 * time.Second)
	var view map[string]any
	for {
		code, _, body = do("GET", "/api/v1/mail/"+created.ID, "")
		if code != http.StatusOK {
			t.Fatalf("%d %s", code, body)
		}
		view = map[string]any{}
		must(t, json.Unmarshal(body, &view))
		if outbox.Final(stateOf(view)) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if view["state"] != "sent" || view["attempts"] != float64(1) || view["relatedRecord"] != "invoice 4711" {
		t.Fatalf("%s", body)
	}
	ms, _ := emu.Store().Messages("anna@contoso.example", "INBOX")
	if len(ms) != 1 {
		t.Fatalf("anna has %d", len(ms))
	}
	raw, _ := emu.Store().Raw("anna@contoso.example", "INBOX", ms[0].UID)
	for _, want := range []string{"In-Reply-To: <order-4711@shop.example>", "Reply-To: <orders@contoso.example>", "invoice 4711.pdf", "Contoso Webshop"} {
		if !bytes.Contains(raw, []byte(want)) {
			t.Errorf("delivered message lacks %q", want)
		}
	}

	// Under outlook-client the API hands back the draft.
	code, h, body := do("POST", "/api/v1/mail", `{"asUser": "ERIK", "to": ["kund@example.com"], "subject": "Offer", "text": "Hello"}`)
	if code != http.StatusOK || h.Get("Content-Type") != "message/rfc822" || !bytes.Contains(body, []byte("X-Unsent: 1")) {
		t.Errorf("draft: %d %s %s", code, h.Get("Content-Type"), body)
	}

	for _, tt := range []struct {
		body   string
		status int
		code   string
	}{
		{`{"asUser": "NOBODY", "to": "a@b.example"}`, 404, "unknown_user"},
		{`{"asWebshop": true, "to": "a@b.example\r\nBcc: victim@evil.example", "subject": "x"}`, 422, "invalid_mail"},
		{`{"asWebshop": true}`, 422, "invalid_mail"},
		{`{"asWebshop": true, "to": "a@b.example", "attachments": [{"name": "x", "contentBase64": "***"}]}`, 400, "bad_request"},
		{`{"asWebshop": true, "to": "a@b.example", "unknownField": 1}`, 400, "bad_request"},
		{`not json`, 400, "bad_request"},
	} {
		code, _, body := do("POST", "/api/v1/mail", tt.body)
		if code != tt.status || !strings.Contains(string(body), `"code":"`+tt.code+`"`) {
			t.Errorf("%s → %d %s", tt.body, code, body)
		}
	}
	if code, _, body := do("GET", "/api/v1/mail/o_aaaaaaaaaaaaaaaaaaaa", ""); code != 404 {
		t.Errorf("unknown id: %d %s", code, body)
	}
	if code, _, _ := do("POST", "/api/v1/mail/"+created.ID+"/resolve", `{"resend": false}`); code != http.StatusConflict {
		t.Errorf("resolving a sent message: %d", code)
	}
	req, _ := http.NewRequest("POST", srv.URL+"/api/v1/mail", strings.NewReader(`{}`))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Errorf("without a token: %v %v", resp.StatusCode, err)
	}
}

func stateOf(v map[string]any) store.OutgoingState {
	s, _ := v["state"].(string)
	return store.OutgoingState(s)
}
