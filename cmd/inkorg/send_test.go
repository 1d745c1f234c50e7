package main

import (
	"testing"
	"time"

	"inkorg/internal/emulator/scenario"
)

func TestSendCommand(t *testing.T) {
	sc := scenario.Default(time.Now())
	sc.Tenants[0].SMTPAuthDisabled = true // the first send fails with 5.7.139; Graph then works
	tn := newTenant(t, sc)
	c, emu := tn.c, tn.emu
	c.want(0, []string{"settings", "user", "set", "WEBSHOP", "--email-address", "webshop@contoso.example", "--signature-file", c.file("sig.txt", "Contoso Webshop")})
	c.want(0, []string{"settings", "webshop", "set", "--email-method", "according-to-user-settings"})
	body := c.file("body.txt", "Your order has shipped.")
	att := c.file("order.pdf", "%PDF-1.7")
	args := []string{"send", "--webshop", "--to", "anna@contoso.example", "--subject", "Order 4711", "--body-file", body, "--attach", att, "--cloud", emu.InfoFile()}
	c.want(1, args, "Failed after 1 attempt(s).", "SMTP 535 5.7.139", "-SmtpClientAuthenticationDisabled $false")

	c.want(1, []string{"settings", "system", "set", "--send-transport", "carrier-pigeon"}, `unknown transport "carrier-pigeon" for Send with; choose "smtp" or "graph"`)
	c.want(0, []string{"settings", "system", "set", "--send-transport", "graph"})
	c.want(0, []string{"settings", "system", "show"}, "Send with", "graph")
	c.want(0, args, "Sent from webshop@contoso.example to anna@contoso.example by graph (attempt 1).")
	if ms, _ := emu.Store().Messages("anna@contoso.example", "INBOX"); len(ms) != 1 {
		t.Errorf("anna has %d messages", len(ms))
	}
	c.want(2, []string{"send", "--to", "x@example.com"}, "give exactly one of --as USER and --webshop")
	c.want(1, []string{"send", "--as", "NOBODY", "--to", "x@example.com", "--cloud", emu.InfoFile()}, "there is no user")
}
