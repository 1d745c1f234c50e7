package graph

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"inkorg/internal/emulator/entra"
	"inkorg/internal/emulator/exo"
	"inkorg/internal/emulator/scenario"
)

// verifierAuth is a minimal Authorizer on the real Entra verifier (signature, expiry, Graph audience,
// a Mail.* role), so that this package is tested with the tokens the emulator really issues.
type verifierAuth struct{ v *entra.Verifier }

func (a verifierAuth) Authorize(_ context.Context, _ exo.Protocol, mailbox, bearer string) (exo.Principal, error) {
	c, err := a.v.Verify(bearer)
	if err != nil {
		return exo.Principal{}, &exo.Denial{Kind: exo.DenyBadToken, Reason: err.Error()}
	}
	if scenario.CanonicalResource(c.Audience) != scenario.ResourceGraph {
		return exo.Principal{}, &exo.Denial{Kind: exo.DenyBadToken, Reason: "audience"}
	}
	return exo.Principal{Mailbox: mailbox, AppID: c.AppID, AppOnly: c.AppOnly(), UPN: c.UPN}, nil
}

func (verifierAuth) CanSendAs(context.Context, exo.Principal, string) bool { return false }

func TestRealEntraTokens(t *testing.T) {
	clock := &testClock{t: time.Now().UTC().Truncate(time.Second)}
	sc := scenario.Default(clock.Now())
	es, err := entra.New(entra.Config{Scenario: sc, Clock: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	es.Register(mux)
	store := exo.NewMailStore(clock.Now)
	anna := "anna@" + scenario.DefaultDomain
	if err := store.CreateMailbox(anna); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Deliver(anna, "INBOX", []byte("Subject: hi\r\n\r\nhello\r\n")); err != nil {
		t.Fatal(err)
	}
	h, err := New(Config{Store: store, Authorizer: verifierAuth{es.Verifier()}, Clock: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	// As in the emulator's assembly: "/v1.0/" cannot share a ServeMux with Entra's "/{tenant}/…"
	// patterns (Go reports the overlap as a conflict), so it is dispatched by prefix in front of it.
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1.0/") {
			h.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { ts.Close(); es.Close() })

	token := func(resource string) string {
		form := url.Values{"grant_type": {"client_credentials"}, "client_id": {scenario.DefaultAppClientID},
			"client_secret": {sc.Apps[0].Secrets[0].Value}, "scope": {resource + "/.default"}}
		res, err := ts.Client().PostForm(ts.URL+"/"+scenario.DefaultTenantID+"/oauth2/v2.0/token", form)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(res.Body).Decode(&m); err != nil || res.StatusCode != 200 {
			t.Fatalf("token: %d %v %v", res.StatusCode, m, err)
		}
		return m["access_token"].(string)
	}
	graphTok := token("https://graph.microsoft.com")
	c, ok := peekClaims(graphTok)
	if !ok || !c.graphAudience() || !c.appOnly || !c.grants(permWrite) || !c.grants(permSend) || !c.grants(permRead) {
		t.Fatalf("claims of a real Graph token: %+v %v", c, ok)
	}
	get := func(tok string) resp {
		req, _ := http.NewRequest(http.MethodGet, ts.URL+"/v1.0/users/"+anna+"/mailFolders/inbox/messages/delta", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp{status: res.StatusCode, header: res.Header, body: b}
	}
	if r := get(graphTok); r.status != http.StatusOK || !strings.Contains(string(r.body), `"subject":"hi"`) {
		t.Fatalf("delta with a real token: %d %s", r.status, r.body)
	}
	wantError(t, get(token("https://outlook.office365.com")), http.StatusUnauthorized, codeInvalidToken, msgBadAudience)
	clock.Advance(2 * time.Hour)
	wantError(t, get(graphTok), http.StatusUnauthorized, codeInvalidToken, msgTokenExpired)
}
