package store

import (
	"fmt"
	"path/filepath"
	"testing"

	"inkorg/internal/secrets"
	"inkorg/internal/settings"
)

// The names secrets are sealed under are part of the stored format: a change here makes every
// database's secrets unreadable.
func TestSealedFieldNames(t *testing.T) {
	for got, want := range map[string]string{
		SystemPasswordField:                              "system.password",
		SystemClientSecretField:                          "system.clientSecret",
		SystemClientKeyField:                             "system.clientKey",
		UserPasswordField("WebShop"):                     "users[webshop].exchangePassword",
		AccountPasswordField(7):                          "incoming[7].exchangePassword",
		AccountClientSecretField(7):                      "incoming[7].clientSecret",
		WebhookSecretField(settings.TypeSupplierInvoice): "webhooks[supplier-invoice].secret",
	} {
		if got != want {
			t.Errorf("sealed under %q, want %q", got, want)
		}
	}
}

func TestSealUnseal(t *testing.T) {
	sealer, err := secrets.CreateKeyFile(filepath.Join(t.TempDir(), "inkorg.key"))
	if err != nil {
		t.Fatal(err)
	}
	if b, err := Seal(sealer, settings.Secret{}, SystemPasswordField); b != nil || err != nil {
		t.Errorf("an unset secret sealed as %x, %v", b, err)
	}
	if sec, err := Unseal(sealer, nil, SystemPasswordField); sec.IsSet() || err != nil {
		t.Errorf("nil opened as %v, %v", sec, err)
	}
	b, err := Seal(sealer, settings.NewSecret("hunter2"), SystemPasswordField)
	if err != nil {
		t.Fatal(err)
	}
	if sec, err := Unseal(sealer, b, SystemPasswordField); err != nil || sec.Reveal() != "hunter2" {
		t.Errorf("opened as %q, %v", sec.Reveal(), err)
	}
	if _, err := Unseal(sealer, b, SystemClientSecretField); err == nil {
		t.Error("opened under another field's name")
	}
}

func TestWebhookChanges(t *testing.T) {
	for _, tt := range []struct {
		oldURL string
		oldSet bool
		newURL string
		want   string
	}{
		{"", false, "https://a", `[url: "" → "https://a" secret: "not set" → "changed"]`},
		{"https://a", true, "https://a", `[secret: "set" → "changed"]`},
		{"https://a", true, "https://b", `[url: "https://a" → "https://b" secret: "set" → "changed"]`},
		{"https://a", true, "", `[url: "https://a" → ""]`},
		{"", false, "", `[]`},
	} {
		if got := fmt.Sprint(WebhookChanges(tt.oldURL, tt.oldSet, tt.newURL)); got != tt.want {
			t.Errorf("WebhookChanges(%q, %v, %q) = %s, want %s", tt.oldURL, tt.oldSet, tt.newURL, got, tt.want)
		}
	}
}

func TestPageLimit(t *testing.T) {
	for limit, want := range map[int]int{-1: MaxPage, 0: MaxPage, 1: 1, MaxPage: MaxPage, MaxPage + 1: MaxPage} {
		if got := PageLimit(limit); got != want {
			t.Errorf("PageLimit(%d) = %d, want %d", limit, got, want)
		}
	}
}
