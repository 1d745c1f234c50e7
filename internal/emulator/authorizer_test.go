package emulator

import (
	"context"
	"errors"
	"testing"

	"inkorg/internal/emulator/exo"
)

// TestAuthorizer checks the policy table directly, including the Graph protocol that no third-party
// client test reaches yet.
func TestAuthorizer(t *testing.T) {
	h := start(t)
	a := h.emu.auth
	appTok := appToken(t, h, defaultApp, h.defaultSecret(), exoScope)
	graphApp := appToken(t, h, defaultApp, h.defaultSecret(), graphScope)
	anna := userToken(t, h, "anna@contoso.example", userScopes)
	cases := []struct {
		name    string
		proto   exo.Protocol
		mailbox string
		token   string
		deny    exo.DenialKind // 0: allowed
	}{
		{"app imap", exo.ProtocolIMAP, "m2m@contoso.example", appTok, 0},
		{"app smtp", exo.ProtocolSMTP, "orders@contoso.example", appTok, 0},
		{"app graph", exo.ProtocolGraph, "orders@contoso.example", graphApp, 0},
		{"exchange token on graph", exo.ProtocolGraph, "orders@contoso.example", appTok, exo.DenyBadToken},
		{"graph token on smtp", exo.ProtocolSMTP, "orders@contoso.example", graphApp, exo.DenyBadToken},
		{"unknown mailbox", exo.ProtocolIMAP, "ghost@contoso.example", appTok, exo.DenyBadToken},
		{"user own", exo.ProtocolIMAP, "anna@contoso.example", anna, 0},
		{"user shared with FullAccess", exo.ProtocolSMTP, "orders@contoso.example", anna, 0},
		{"user other's mailbox", exo.ProtocolIMAP, "erik@contoso.example", anna, exo.DenyBadToken},
		{"user imap disabled", exo.ProtocolIMAP, noIMAPBox, appTok, exo.DenyProtocolDisabled},
		{"smtp disabled", exo.ProtocolSMTP, noSMTPBox, appTok, exo.DenyProtocolDisabled},
		{"no sp", exo.ProtocolIMAP, "m2m@contoso.example", appToken(t, h, noSPID, testSecret, exoScope), exo.DenyNotConnected},
		{"no full access smtp", exo.ProtocolSMTP, "orders@contoso.example", appToken(t, h, limitedID, testSecret, exoScope), exo.DenyNotConnected},
		{"delegated token carries every consented scope", exo.ProtocolSMTP, "anna@contoso.example",
			userToken(t, h, "anna@contoso.example", "https://outlook.office.com/IMAP.AccessAsUser.All"), 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := a.Authorize(context.Background(), tc.proto, tc.mailbox, tc.token)
			var d *exo.Denial
			switch {
			case tc.deny == 0 && err != nil:
				t.Fatalf("denied: %v", err)
			case tc.deny != 0 && (!errors.As(err, &d) || d.Kind != tc.deny):
				t.Fatalf("err = %v, want denial kind %d", err, tc.deny)
			case tc.deny == 0 && p.Mailbox != tc.mailbox:
				t.Errorf("principal %+v", p)
			}
		})
	}
	// Send As.
	ctx := context.Background()
	app := exo.Principal{Mailbox: "m2m@contoso.example", AppID: defaultApp, AppOnly: true}
	user := exo.Principal{Mailbox: "anna@contoso.example", AppID: publicApp, UPN: "anna@contoso.example"}
	for _, tc := range []struct {
		p    exo.Principal
		from string
		want bool
	}{
		{app, "invoices@contoso.example", true},
		{app, "outsider@fabrikam.example", false},
		{exo.Principal{AppID: limitedID, AppOnly: true}, "invoices@contoso.example", false},
		{user, "ANNA@contoso.example", true},
		{user, "info@contoso.example", true},
		{user, "erik@contoso.example", false},
		{user, "outsider@fabrikam.example", false},
	} {
		if got := a.CanSendAs(ctx, tc.p, tc.from); got != tc.want {
			t.Errorf("CanSendAs(%+v, %s) = %v", tc.p, tc.from, got)
		}
	}
}
