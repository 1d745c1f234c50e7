package outbox

import (
	"bytes"
	"context"
	"errors"
	"net/mail"
	"strings"
	"testing"

	"inkorg/internal/emulator/scenario"
	"inkorg/internal/settings"
	"inkorg/internal/store"
)

func TestWebshopMailArrives(t *testing.T) {
	for _, transport := range []settings.SendTransport{settings.SendSMTP, settings.SendGraph} {
		t.Run(string(transport), func(t *testing.T) {
			w := startEmulator(t, nil)
			w.configure(t, transport)
			o := w.outbox(t, nil)
			res, err := o.Submit(context.Background(), Request{AsWebshop: true, To: []string{"Anna Lind <anna@contoso.example>"}, Cc: []string{"erik@contoso.example"},
				Subject: "Order 4711 confirmed", Text: "Thank you for your order.", HTML: "<p>Thank you for your order.</p>", RelatedRecord: "order 4711"})
			must(t, err)
			m := wait(t, o, res.ID)
			if m.State != store.OutSent || m.Attempts != 1 || m.Sender != "WEBSHOP" || !m.Webshop {
				t.Fatalf("%+v", m)
			}
			wantTransport := TransportSMTPOAuth
			if transport == settings.SendGraph {
				wantTransport = TransportGraph
			}
			if m.Transport != wantTransport {
				t.Errorf("transport %s", m.Transport)
			}
			for _, box := range []string{"anna@contoso.example", "erik@contoso.example", "webshop@contoso.example"} {
				ms, err := w.emu.Store().Messages(box, "INBOX")
				if err != nil || len(ms) != 1 {
					t.Fatalf("%s INBOX: %d %v", box, len(ms), err)
				}
				raw, err := w.emu.Store().Raw(box, "INBOX", ms[0].UID)
				must(t, err)
				msg, err := mail.ReadMessage(bytes.NewReader(raw))
				must(t, err)
				if from, _ := mail.ParseAddress(msg.Header.Get("From")); from == nil || from.Address != "webshop@contoso.example" {
					t.Errorf("From %q", msg.Header.Get("From"))
				}
				// The emulator's Graph delivers MIME as given, Bcc header included (Exchange strips it), so
				// the Bcc header is checked on the SMTP path only.
				if msg.Header.Get("Cc") != "<erik@contoso.example>" || (transport == settings.SendSMTP && msg.Header.Get("Bcc") != "") {
					t.Errorf("Cc %q Bcc %q (the webshop's own copy goes as Bcc)", msg.Header.Get("Cc"), msg.Header.Get("Bcc"))
				}
				if !bytes.Contains(raw, []byte("Contoso Webshop")) || !bytes.Contains(raw, []byte("shop.contoso.example")) {
					t.Errorf("no signature in\n%s", raw)
				}
			}
		})
	}
}

func TestCopyToSelfCc(t *testing.T) {
	w := startEmulator(t, nil)
	w.configure(t, settings.SendSMTP)
	o := w.outbox(t, nil)
	res, err := o.Submit(context.Background(), Request{AsUser: "anna", To: []string{"erik@contoso.example"}, Subject: "Hej", Text: "Hej Erik"})
	must(t, err)
	if m := wait(t, o, res.ID); m.State != store.OutSent {
		t.Fatalf("%+v", m)
	}
	ms, _ := w.emu.Store().Messages("anna@contoso.example", "INBOX")
	if len(ms) != 1 {
		t.Fatalf("anna's copy: %d", len(ms))
	}
	raw, _ := w.emu.Store().Raw("erik@contoso.example", "INBOX", 1)
	if !bytes.Contains(raw, []byte("Cc: <anna@contoso.example>")) || !bytes.Contains(raw, []byte("Anna Lind")) {
		t.Errorf("no Cc to self or signature:\n%s", raw)
	}
}

func TestFailuresNameTheFix(t *testing.T) {
	tests := []struct {
		name      string
		transport settings.SendTransport
		edit      func(*scenario.Scenario)
		code      string
		expects   []string
	}{
		{"SMTP AUTH disabled", settings.SendSMTP, func(s *scenario.Scenario) { s.Tenants[0].SMTPAuthDisabled = true },
			"SMTP 535 5.7.139", []string{`Set-CASMailbox -Identity "webshop@contoso.example" -SmtpClientAuthenticationDisabled $false`, "Graph"}},
		{"no service principal (5.7.3)", settings.SendSMTP, func(s *scenario.Scenario) { s.ServicePrincipals = nil },
			"SMTP 535 5.7.3", []string{"SMTP.SendAsApp", "New-ServicePrincipal -AppId " + scenario.DefaultAppClientID}},
		{"no SMTP.SendAsApp role", settings.SendSMTP, func(s *scenario.Scenario) {
			s.Apps[0].Roles = []string{scenario.RoleIMAPAccessAsApp, scenario.RoleMailReadWrite, scenario.RoleMailSend}
		}, "permission", []string{"SMTP.SendAsApp", "Office 365 Exchange Online", "adminconsent"}},
		{"Send As denied", settings.SendSMTP, func(s *scenario.Scenario) { s.ServicePrincipals[0].SendAs = nil },
			"SMTP 554 5.2.252", []string{`Add-RecipientPermission -Identity "webshop@contoso.example" -Trustee ` + scenario.DefaultAppObjectID + ` -AccessRights SendAs`}},
		{"Graph without Mail.Send", settings.SendGraph, func(s *scenario.Scenario) {
			s.Apps[0].Roles = []string{scenario.RoleIMAPAccessAsApp, scenario.RoleSMTPSendAsApp, scenario.RoleMailReadWrite}
		}, "permission", []string{"Mail.Send", "Microsoft Graph"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := startEmulator(t, tt.edit)
			w.configure(t, tt.transport)
			o := w.outbox(t, nil)
			res, err := o.Submit(context.Background(), Request{AsWebshop: true, To: []string{"anna@contoso.example"}, Subject: "x", Text: "y"})
			must(t, err)
			m := wait(t, o, res.ID)
			if m.State != store.OutFailed || m.LastError == nil || m.LastError.Code != tt.code || m.Attempts != 1 {
				t.Fatalf("want failed with %s after one attempt, got %s %d %+v", tt.code, m.State, m.Attempts, m.LastError)
			}
			all := m.LastError.Summary + " " + m.LastError.Remedy + " " + strings.Join(m.LastError.Actions, " ")
			for _, e := range tt.expects {
				if !strings.Contains(all, e) {
					t.Errorf("reason lacks %q: %s", e, all)
				}
			}
			if ms, _ := w.emu.Store().Messages("anna@contoso.example", "INBOX"); len(ms) != 0 {
				t.Errorf("a refused message arrived")
			}
		})
	}
}

func TestGraphThrottlingIsRetried(t *testing.T) {
	w := startEmulator(t, nil)
	w.configure(t, settings.SendGraph)
	setGraphThrottle(t, w, 1500) // long enough to outlast the first token request under -race; Retry-After: 2
	o := w.outbox(t, nil)
	res, err := o.Submit(context.Background(), Request{AsWebshop: true, To: []string{"anna@contoso.example"}, Subject: "x", Text: "y"})
	must(t, err)
	m := wait(t, o, res.ID)
	if m.State != store.OutSent || m.Attempts < 2 || m.LastError == nil || !strings.Contains(m.LastError.Code, "429") {
		t.Fatalf("%+v %+v", m, m.LastError)
	}
	if ms, _ := w.emu.Store().Messages("anna@contoso.example", "INBOX"); len(ms) != 1 {
		t.Errorf("anna got %d", len(ms))
	}
}

func TestSubmitRefusals(t *testing.T) {
	w := startEmulator(t, nil)
	w.configure(t, settings.SendSMTP)
	o := New(Config{Store: w.st})
	ctx := context.Background()
	for name, r := range map[string]Request{
		"no sender":        {To: []string{"a@b.example"}},
		"both":             {AsUser: "ANNA", AsWebshop: true, To: []string{"a@b.example"}},
		"unknown user":     {AsUser: "NOBODY", To: []string{"a@b.example"}},
		"no recipient":     {AsUser: "ANNA"},
		"injected address": {AsUser: "ANNA", To: []string{"a@b.example\r\nBcc: x@evil.example"}},
		"bad address":      {AsUser: "ANNA", To: []string{"not an address"}},
	} {
		_, err := o.Submit(ctx, r)
		var re *RequestError
		if !errors.As(err, &re) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if l, _ := w.st.OutgoingList(ctx, "", 10); len(l) != 0 {
		t.Errorf("refused requests were queued: %d", len(l))
	}
}

func TestOutlookClientGetsADraft(t *testing.T) {
	w := startEmulator(t, nil)
	w.configure(t, settings.SendSMTP)
	ctx := context.Background()
	must(t, w.st.PutUser(ctx, settings.User{Name: "ERIK", EmailMethod: settings.Ptr(settings.MethodOutlookClient), EmailAddress: settings.Ptr("erik@contoso.example")}, "test"))
	o := New(Config{Store: w.st})
	res, err := o.Submit(ctx, Request{AsUser: "ERIK", To: []string{"kund@example.com"}, Bcc: []string{"boss@contoso.example"}, Subject: "Offer", Text: "See attached.",
		Attachments: nil})
	must(t, err)
	if res.ID != "" || !bytes.Contains(res.Draft, []byte("X-Unsent: 1")) || !bytes.Contains(res.Draft, []byte("Bcc: <boss@contoso.example>")) {
		t.Fatalf("%+v\n%s", res, res.Draft)
	}
	if l, _ := w.st.OutgoingList(ctx, "", 10); len(l) != 0 {
		t.Errorf("a draft was queued")
	}
}

// TestGraphSendAsDenied: under User name/Password, the webshop's mail goes out through Anna's account
// (User name (Exchange) anna@), who has no Send As on webshop@: Graph answers 403 ErrorSendAsDenied.
func TestGraphSendAsDenied(t *testing.T) {
	w := startEmulator(t, func(s *scenario.Scenario) { s.Apps[1].DelegatedScopes = append(s.Apps[1].DelegatedScopes, "Mail.Send") })
	ctx := context.Background()
	var pw string
	for _, u := range w.emu.Info().Users {
		if u.UPN == "anna@contoso.example" {
			pw = u.Password
		}
	}
	must(t, w.st.PutSystem(ctx, settings.System{EmailMethod: settings.MethodExchangeOnline, ClientID: scenario.DefaultPublicID, TenantID: w.emu.Info().TenantID,
		AuthFlow: settings.FlowUsernamePassword, SendTransport: settings.SendGraph}, "test"))
	must(t, w.st.PutUser(ctx, settings.User{Name: "WEBSHOP", EmailAddress: settings.Ptr("webshop@contoso.example"),
		ExchangeUsername: settings.Ptr("anna@contoso.example"), ExchangePassword: settings.Ptr(settings.NewSecret(pw))}, "test"))
	must(t, w.st.PutWebshop(ctx, settings.Webshop{EmailMethod: settings.WebshopAccordingToUserSettings}, "test"))
	o := w.outbox(t, nil)
	res, err := o.Submit(ctx, Request{AsWebshop: true, To: []string{"erik@contoso.example"}, Subject: "x", Text: "y"})
	must(t, err)
	m := wait(t, o, res.ID)
	if m.State != store.OutFailed || m.LastError == nil || m.LastError.Code != "Graph 403 ErrorSendAsDenied" {
		t.Fatalf("%s %+v", m.State, m.LastError)
	}
	if !strings.Contains(strings.Join(m.LastError.Actions, " "), `Add-RecipientPermission -Identity "webshop@contoso.example" -Trustee "anna@contoso.example" -AccessRights SendAs`) {
		t.Errorf("%+v", m.LastError)
	}
}
