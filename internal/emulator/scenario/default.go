package scenario

import (
	"fmt"
	"io"
	"time"
)

// Fixed identifiers of the default scenario, so documentation and tests can name them.
const (
	DefaultTenantID     = "8d2c1f4e-5b6a-4c3d-9e8f-0a1b2c3d4e5f"
	DefaultDomain       = "contoso.example"
	DefaultAppName      = "inkorg"
	DefaultAppClientID  = "3f6e9a2b-1c4d-4e5f-8a7b-9c0d1e2f3a4b"
	DefaultAppObjectID  = "5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d"
	DefaultAppSecretID  = "2c3d4e5f-6a7b-4c8d-9e0f-1a2b3c4d5e6f"
	DefaultPublicName   = "inkorg-user-flow"
	DefaultPublicID     = "7b8c9d0e-1f2a-4b3c-8d4e-5f6a7b8c9d0e"
	DefaultPublicObject = "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b"
)

// Default is the scenario `inkorg demo` uses, in tenant DefaultTenantID (domain contoso.example):
//   - app "inkorg" (confidential, single-tenant): IMAP.AccessAsApp, SMTP.SendAsApp (Exchange) and
//     Mail.ReadWrite, Mail.Send (Graph) consented; one secret valid for 180 days from now; its Exchange
//     service principal with FullAccess and Send As on every mailbox;
//   - app "inkorg-user-flow" (public client): IMAP.AccessAsUser.All, SMTP.Send and offline_access;
//   - users anna@, erik@ and webshop@ (the ERP's WEBSHOP user), each with a mailbox of their own; anna
//     also has FullAccess and Send As on info@ and orders@;
//   - shared mailboxes m2m@ (Monitor-to-Monitor), invoices@ (supplier invoices), orders@ (customer
//     orders) and info@ (general mail).
//
// Secret values and passwords are fixed placeholders; RandomizeCredentials replaces them.
func Default(now time.Time) *Scenario {
	d := func(local string) string { return local + "@" + DefaultDomain }
	s := &Scenario{
		Tenants: []Tenant{{ID: DefaultTenantID, Name: "Contoso (emulated)", Domains: []string{DefaultDomain}}},
		Apps: []App{
			{
				Name:         DefaultAppName,
				ClientID:     DefaultAppClientID,
				TenantID:     DefaultTenantID,
				ObjectID:     DefaultAppObjectID,
				Secrets:      []Secret{{ID: DefaultAppSecretID, Value: "emu8Q~DefaultConfidentialAppSecret0000000", Expires: now.Add(180 * 24 * time.Hour).UTC().Truncate(time.Second)}},
				Roles:        []string{RoleIMAPAccessAsApp, RoleSMTPSendAsApp, RoleMailReadWrite, RoleMailSend},
				SingleTenant: true,
			},
			{
				Name:            DefaultPublicName,
				ClientID:        DefaultPublicID,
				TenantID:        DefaultTenantID,
				ObjectID:        DefaultPublicObject,
				DelegatedScopes: []string{ScopeIMAP, ScopeSMTPSend, ScopeOfflineAccess},
				PublicClient:    true,
				SingleTenant:    true,
			},
		},
		ServicePrincipals: []ServicePrincipal{{AppID: DefaultAppClientID, ObjectID: DefaultAppObjectID, FullAccess: []string{All}, SendAs: []string{All}}},
		Users: []User{
			{UPN: d("anna"), DisplayName: "Anna Lind", Password: "Anna-Emulator-Pass-1"},
			{UPN: d("erik"), DisplayName: "Erik Berg", Password: "Erik-Emulator-Pass-1"},
			{UPN: d("webshop"), DisplayName: "WEBSHOP", Password: "Webshop-Emulator-Pass-1"},
		},
		Mailboxes: []Mailbox{
			{Address: d("anna"), DisplayName: "Anna Lind", Owner: d("anna")},
			{Address: d("erik"), DisplayName: "Erik Berg", Owner: d("erik")},
			{Address: d("webshop"), DisplayName: "Webshop", Owner: d("webshop")},
			{Address: d("m2m"), DisplayName: "Monitor-to-Monitor"},
			{Address: d("invoices"), DisplayName: "Supplier invoices"},
			{Address: d("orders"), DisplayName: "Customer orders", FullAccess: []string{d("anna")}, SendAs: []string{d("anna")}},
			{Address: d("info"), DisplayName: "General", FullAccess: []string{d("anna")}, SendAs: []string{d("anna")}},
		},
	}
	if err := s.Validate(); err != nil {
		panic(fmt.Sprintf("scenario: default scenario invalid: %v", err)) // a programming error
	}
	return s
}

// RandomizeCredentials replaces every secret value and password with a fresh random one read from r
// (crypto/rand.Reader in production). Secret values get Entra's shape (3 characters, a digit, "Q~",
// 34 characters: 40 in all).
func (s *Scenario) RandomizeCredentials(r io.Reader) error {
	for i := range s.Apps {
		for j := range s.Apps[i].Secrets {
			v, err := randomString(r, 37)
			if err != nil {
				return err
			}
			s.Apps[i].Secrets[j].Value = v[:3] + "8Q~" + v[3:]
		}
	}
	for i := range s.Users {
		v, err := randomString(r, 16)
		if err != nil {
			return err
		}
		s.Users[i].Password = "Emu-" + v + "-1"
	}
	return nil
}

func randomString(r io.Reader, n int) (string, error) {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("scenario: random credentials: %w", err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b), nil
}
