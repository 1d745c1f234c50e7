package entra

import (
	"context"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
	msalerrors "github.com/AzureAD/microsoft-authentication-library-for-go/apps/errors"
	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/public"
)

// TestMSAL drives the emulator with MSAL Go itself: client credentials with a secret and with a
// certificate, the password grant, silent acquisition from MSAL's cache, and a typed failure.
func TestMSAL(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	authority := f.ts.URL + "/" + tid
	exo := []string{"https://outlook.office365.com/.default"}

	t.Run("secret", func(t *testing.T) {
		cred, err := confidential.NewCredFromSecret(confSecret)
		if err != nil {
			t.Fatal(err)
		}
		app, err := confidential.New(authority, confID, cred, confidential.WithHTTPClient(f.client), confidential.WithInstanceDiscovery(false))
		if err != nil {
			t.Fatal(err)
		}
		res, err := app.AcquireTokenByCredential(ctx, exo)
		if err != nil {
			t.Fatal(err)
		}
		c, err := f.srv.Verifier().Verify(res.AccessToken)
		if err != nil || !c.HasRole("IMAP.AccessAsApp") || c.AppIDACR != "1" {
			t.Fatalf("claims %+v, %v", c, err)
		}
		before := len(f.srv.Requests())
		res2, err := app.AcquireTokenByCredential(ctx, exo)
		if err != nil || res2.AccessToken != res.AccessToken || len(f.srv.Requests()) != before {
			t.Errorf("second call not served from MSAL's cache (err %v)", err)
		}
	})

	t.Run("certificate", func(t *testing.T) {
		cred, err := confidential.NewCredFromCert([]*x509.Certificate{f.cert}, f.key)
		if err != nil {
			t.Fatal(err)
		}
		app, err := confidential.New(authority, confID, cred, confidential.WithHTTPClient(f.client), confidential.WithInstanceDiscovery(false))
		if err != nil {
			t.Fatal(err)
		}
		res, err := app.AcquireTokenByCredential(ctx, exo)
		if err != nil {
			t.Fatal(err)
		}
		c, err := f.srv.Verifier().Verify(res.AccessToken)
		if err != nil || c.AppIDACR != "2" {
			t.Fatalf("claims %+v, %v", c, err)
		}
		reqs := f.srv.Requests()
		if got := reqs[len(reqs)-1].Credential; !strings.HasPrefix(got, "certificate ") {
			t.Errorf("logged credential %q", got)
		}
	})

	t.Run("certificate failures", func(t *testing.T) {
		otherKey, otherCert, _ := testCert(t)
		for _, tc := range []struct {
			name  string
			cert  *x509.Certificate
			shift time.Duration
			want  string
		}{
			{"unregistered certificate", otherCert, 0, "AADSTS700027"},
			{"assertion outside its time range", f.cert, 2 * time.Hour, "AADSTS700024"},
		} {
			key := f.key
			if tc.cert == otherCert {
				key = otherKey
			}
			cred, err := confidential.NewCredFromCert([]*x509.Certificate{tc.cert}, key)
			if err != nil {
				t.Fatal(err)
			}
			app, err := confidential.New(authority, confID, cred, confidential.WithHTTPClient(f.client), confidential.WithInstanceDiscovery(false))
			if err != nil {
				t.Fatal(err)
			}
			f.clock.Add(tc.shift)
			_, err = app.AcquireTokenByCredential(ctx, exo)
			f.clock.Add(-tc.shift)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "status code was 401") {
				t.Errorf("%s: err = %v", tc.name, err)
			}
		}
	})

	t.Run("wrong secret is a CallErr with AADSTS7000215", func(t *testing.T) {
		cred, _ := confidential.NewCredFromSecret("wrong")
		app, err := confidential.New(authority, confID, cred, confidential.WithHTTPClient(f.client), confidential.WithInstanceDiscovery(false))
		if err != nil {
			t.Fatal(err)
		}
		_, err = app.AcquireTokenByCredential(ctx, exo)
		var ce msalerrors.CallErr
		if !errors.As(err, &ce) || ce.Resp.StatusCode != 401 || !strings.Contains(err.Error(), "AADSTS7000215") {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("unknown tenant fails at discovery", func(t *testing.T) {
		cred, _ := confidential.NewCredFromSecret(confSecret)
		app, err := confidential.New(f.ts.URL+"/00000000-1111-4222-8333-444444444444", confID, cred, confidential.WithHTTPClient(f.client), confidential.WithInstanceDiscovery(false))
		if err != nil {
			t.Fatal(err)
		}
		_, err = app.AcquireTokenByCredential(ctx, exo)
		if err == nil || !strings.Contains(err.Error(), "invalid_tenant") || !strings.Contains(err.Error(), "AADSTS90002") {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("password and silent", func(t *testing.T) {
		app, err := public.New(pubID, public.WithAuthority(authority), public.WithHTTPClient(f.client), public.WithInstanceDiscovery(false))
		if err != nil {
			t.Fatal(err)
		}
		scopes := []string{"https://outlook.office.com/IMAP.AccessAsUser.All", "https://outlook.office.com/SMTP.Send"}
		res, err := app.AcquireTokenByUsernamePassword(ctx, scopes, "anna@contoso.example", "anna-pw") //nolint:staticcheck // ROPC is what the product supports
		if err != nil {
			t.Fatal(err)
		}
		if res.Account.PreferredUsername != "anna@contoso.example" {
			t.Errorf("account %+v", res.Account)
		}
		accts, err := app.Accounts(ctx)
		if err != nil || len(accts) != 1 {
			t.Fatalf("accounts %v %v", accts, err)
		}
		before := len(f.srv.Requests())
		silent, err := app.AcquireTokenSilent(ctx, scopes, public.WithSilentAccount(accts[0]))
		if err != nil {
			t.Fatal(err)
		}
		if silent.AccessToken != res.AccessToken || len(f.srv.Requests()) != before {
			t.Error("silent call was not served from the cache")
		}
		// After expiry MSAL refreshes with the refresh token.
		f.clock.Add(2 * time.Hour)
		_ = silent
		_, err = app.AcquireTokenByUsernamePassword(ctx, scopes, "anna@contoso.example", "bad") //nolint:staticcheck
		if err == nil || !strings.Contains(err.Error(), "AADSTS50126") {
			t.Errorf("wrong password: %v", err)
		}
	})
}
