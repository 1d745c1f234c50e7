package scenario

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaultRoundTrip(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	s := Default(now)
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "s.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	s2, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := json.MarshalIndent(s2, "", "  ")
	if !bytes.Equal(b, b2) {
		t.Fatalf("round trip differs:\n%s\n---\n%s", b, b2)
	}
	app, ok := s2.App(strings.ToUpper(DefaultAppClientID))
	if !ok || app.ObjectID != DefaultAppObjectID {
		t.Fatalf("app lookup: %v %+v", ok, app)
	}
	if got := app.RolesFor("https://outlook.office365.com/"); strings.Join(got, ",") != "IMAP.AccessAsApp,SMTP.SendAsApp" {
		t.Errorf("exchange roles = %v", got)
	}
	if got := app.RolesFor(ResourceGraph); strings.Join(got, ",") != "Mail.ReadWrite,Mail.Send" {
		t.Errorf("graph roles = %v", got)
	}
	sp, ok := s2.ServicePrincipal(DefaultAppClientID)
	if !ok || !sp.HasFullAccess("m2m@contoso.example") || !sp.CanSendAs("INFO@contoso.example") {
		t.Errorf("service principal = %+v", sp)
	}
	for _, want := range []string{"m2m", "invoices", "orders", "info", "webshop", "anna", "erik"} {
		if _, ok := s2.Mailbox(want + "@" + DefaultDomain); !ok {
			t.Errorf("mailbox %s@ missing", want)
		}
	}
	if u, _ := s2.User("anna@contoso.example"); u.ObjectID != DerivedID("user", "anna@contoso.example") {
		t.Errorf("derived user id %q", u.ObjectID)
	}
	if tn, ok := s2.Tenant("CONTOSO.example"); !ok || tn.ID != DefaultTenantID {
		t.Errorf("tenant by domain: %v", ok)
	}
}

func TestRandomizeCredentials(t *testing.T) {
	s := Default(time.Now())
	if err := s.RandomizeCredentials(rand.Reader); err != nil {
		t.Fatal(err)
	}
	v := s.Apps[0].Secrets[0].Value
	if len(v) != 40 || v[3:6] != "8Q~" {
		t.Errorf("secret %q has not Entra's shape", v)
	}
	if s.Users[0].Password == "Anna-Emulator-Pass-1" {
		t.Error("password not replaced")
	}
}

func TestParseErrors(t *testing.T) {
	good := `{"tenants":[{"id":"8d2c1f4e-5b6a-4c3d-9e8f-0a1b2c3d4e5f","domains":["x.example"]}],"apps":[]}`
	cases := []struct {
		name, in, want string
	}{
		{"syntax", "{\n  \"tenants\": [\n    {\"id\": }\n  ]\n}", "3:13"},
		{"type", "{\n\"tenants\": 5}", "2:"},
		{"unknown field", "{\n\"tenants\": [],\n\"bogus\": 1}", `3:1: json: unknown field "bogus"`},
		{"unknown nested field", "{\n  \"tenants\": [\n    {\"id\": \"x\", \"bogus\": 1}\n  ]\n}", `3:17: json: unknown field "bogus"`},
		{"empty", "", "empty scenario"},
		{"trailing", good + " {}", "unexpected data"},
		{"no tenant", `{"tenants":[],"apps":[]}`, "at least one tenant"},
		{"bad guid", `{"tenants":[{"id":"nope"}],"apps":[]}`, `tenants[0].id "nope" is not a GUID`},
		{"bad ref", `{"tenants":[{"id":"8d2c1f4e-5b6a-4c3d-9e8f-0a1b2c3d4e5f","domains":["x.example"]}],"apps":[],
			"mailboxes":[{"address":"a@x.example","owner":"b@x.example"}]}`, `owner "b@x.example" is not a user`},
		{"foreign domain", `{"tenants":[{"id":"8d2c1f4e-5b6a-4c3d-9e8f-0a1b2c3d4e5f","domains":["x.example"]}],"apps":[],
			"users":[{"upn":"a@y.example","password":"p"}]}`, "not in a verified domain"},
		{"bad cert", `{"tenants":[{"id":"8d2c1f4e-5b6a-4c3d-9e8f-0a1b2c3d4e5f"}],"apps":[{"name":"a","clientId":"8d2c1f4e-5b6a-4c3d-9e8f-0a1b2c3d4e50","certificates":[{"pem":"x"}]}]}`, "no PEM CERTIFICATE"},
		{"sp unknown mailbox", `{"tenants":[{"id":"8d2c1f4e-5b6a-4c3d-9e8f-0a1b2c3d4e5f"}],"apps":[{"name":"a","clientId":"8d2c1f4e-5b6a-4c3d-9e8f-0a1b2c3d4e50"}],
			"servicePrincipals":[{"appId":"8d2c1f4e-5b6a-4c3d-9e8f-0a1b2c3d4e50","fullAccess":["z@x.example"]}]}`, "is not a mailbox"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	if _, err := Parse([]byte(good)); err != nil {
		t.Fatal(err)
	}
	_, err := Parse([]byte(`{"tenants":[]}`))
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want *ValidationError, got %T", err)
	}
}

func TestSplitPermission(t *testing.T) {
	cases := map[string]Permission{
		"IMAP.AccessAsApp":                       {ResourceExchange, "IMAP.AccessAsApp"},
		"https://outlook.office.com/SMTP.Send":   {ResourceExchange, "SMTP.Send"},
		"https://ps.outlook.com/Mail.Send":       {ResourceExchange, "Mail.Send"},
		"Mail.Send":                              {ResourceGraph, "Mail.Send"},
		"OFFLINE_ACCESS":                         {"", "offline_access"},
		"https://graph.microsoft.com/.default":   {ResourceGraph, ".default"},
		"api://something/else.scope":             {"api://something", "else.scope"},
		"https://outlook.office365.com/.default": {ResourceExchange, ".default"},
	}
	for in, want := range cases {
		if got := SplitPermission(in); got != want {
			t.Errorf("SplitPermission(%q) = %+v, want %+v", in, got, want)
		}
	}
}

func FuzzScenario(f *testing.F) {
	b, _ := json.Marshal(Default(time.Unix(1_800_000_000, 0)))
	f.Add(b)
	f.Add([]byte(`{"tenants":[{"id":"8d2c1f4e-5b6a-4c3d-9e8f-0a1b2c3d4e5f","domains":["x.example"]}],"apps":[]}`))
	f.Add([]byte(`{"tenants":[`))
	f.Add([]byte(`{"apps":[{"certificates":[{"pem":"-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----"}]}]}`))
	f.Add([]byte("\n\n{\"x\":1}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data)
		if err != nil {
			if s != nil {
				t.Fatal("scenario returned with an error")
			}
			return
		}
		// A valid scenario re-encodes to a valid scenario.
		out, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(out); err != nil {
			t.Fatalf("re-parse of a valid scenario failed: %v\n%s", err, out)
		}
	})
}
