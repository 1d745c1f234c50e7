package entra

import (
	"testing"
	"time"
)

func FuzzParseScopes(f *testing.F) {
	for _, s := range []string{
		"https://outlook.office365.com/.default openid profile offline_access",
		"https://outlook.office.com/IMAP.AccessAsUser.All https://outlook.office.com/SMTP.Send",
		"IMAP.AccessAsUser.All", "", " ", "https://", "a/b c/d", "00000002-0000-0ff1-ce00-000000000000/.default",
		"https://graph.microsoft.com/.default https://outlook.office365.com/.default", "api://x/", "/x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, scope string) {
		ps, err := parseScopes(scope, "https://graph.microsoft.com")
		if err != nil {
			if err.Code == 0 || err.Status < 400 {
				t.Fatalf("bad error %+v", err)
			}
			return
		}
		if len(ps.names) != len(ps.rawResource) {
			t.Fatalf("names %v raw %v", ps.names, ps.rawResource)
		}
		for _, n := range ps.names {
			if n == "" {
				t.Fatal("empty permission name")
			}
		}
		_ = knownScope(ps.resource, "x")
	})
}

func FuzzVerify(f *testing.F) {
	_, _, certPEM := testCert(f)
	srv, err := New(Config{Scenario: testScenario(f, time.Now(), certPEM), Clock: time.Now})
	if err != nil {
		f.Fatal(err)
	}
	f.Add("eyJhbGciOiJSUzI1NiJ9.e30.x")
	f.Add("a.b.c")
	f.Add("")
	f.Add("eyJhbGciOiJub25lIn0.eyJpc3MiOiJodHRwczovL3N0cy53aW5kb3dzLm5ldC94LyJ9.")
	f.Fuzz(func(t *testing.T, tok string) {
		if _, err := srv.Verifier().Verify(tok); err == nil {
			t.Fatalf("accepted %q", tok)
		}
	})
}
