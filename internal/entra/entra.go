// Package entra gets access tokens from Microsoft Entra ID through MSAL Go, for the effective settings of
// a user, an incoming account or the webshop: the Client secret flow (a confidential client, app-only),
// the certificate flow (a confidential client with a certificate credential) and the User name/Password
// flow (resource-owner password credentials, delegated).
//
// One token per identity and purpose is cached and refreshed shortly before it expires; concurrent
// callers share one request (fifty mailboxes of one app cost one token request per token lifetime).
// Every failure is a *diag.Error with the AADSTS code, Entra's trace id and a remedy; the token's claims
// are decoded (not trusted) and checked before a connection uses it, so a missing permission is named
// before Exchange answers with a bare "AUTHENTICATE failed".
package entra

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
	msalerrors "github.com/AzureAD/microsoft-authentication-library-for-go/apps/errors"
	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/public"
	"golang.org/x/sync/singleflight"

	"inkorg/internal/cloud"
	"inkorg/internal/diag"
	"inkorg/internal/settings"
)

// Purpose is what a token is for; it decides the scopes asked for and the claims checked.
type Purpose string

// The purposes.
const (
	PurposeIMAP      Purpose = "IMAP"
	PurposeSMTP      Purpose = "SMTP"
	PurposeGraphRead Purpose = "Graph (read mail)"
	PurposeGraphSend Purpose = "Graph (send mail)"
)

// Delegated scopes, with the resource in front as Microsoft's documentation insists: a bare
// "IMAP.AccessAsUser.All" would be read as Microsoft Graph's, and IMAP refuses that token.
const (
	scopeIMAPDelegated = "https://outlook.office.com/IMAP.AccessAsUser.All"
	scopeSMTPDelegated = "https://outlook.office.com/SMTP.Send"
	scopeGraphRead     = "https://graph.microsoft.com/Mail.ReadWrite"
	scopeGraphSend     = "https://graph.microsoft.com/Mail.Send"
)

// Identity is who asks for a token: the effective Exchange Online settings of a user, an account or
// the webshop.
type Identity struct {
	TenantID string
	ClientID string
	Flow     settings.AuthFlow
	Secret   settings.Secret // Client secret flow
	// Certificate flow: PEM certificate and PEM private key.
	Certificate []byte
	Key         settings.Secret
	// User name/Password flow.
	Username string
	Password settings.Secret
}

// AppOnly reports whether the identity signs in as the application (no user).
func (id Identity) AppOnly() bool { return id.Flow != settings.FlowUsernamePassword }

// key identifies the identity in the caches: a hash over every field, so a rotated secret or a new
// password makes a new entry (and the old one is never used again).
func (id Identity) key() string {
	h := sha256.New()
	for _, s := range []string{id.TenantID, id.ClientID, string(id.Flow), id.Secret.Reveal(), string(id.Certificate), id.Key.Reveal(),
		strings.ToLower(id.Username), id.Password.Reveal()} {
		fmt.Fprintf(h, "%d:%s;", len(s), s)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// scopes is what to ask for.
func (id Identity) scopes(p Purpose) []string {
	if id.AppOnly() {
		if p == PurposeGraphRead || p == PurposeGraphSend {
			return []string{cloud.GraphResource + "/.default"}
		}
		return []string{cloud.ExchangeResource + "/.default"}
	}
	switch p {
	case PurposeIMAP:
		return []string{scopeIMAPDelegated}
	case PurposeSMTP:
		return []string{scopeSMTPDelegated}
	case PurposeGraphRead:
		return []string{scopeGraphRead}
	default:
		return []string{scopeGraphSend}
	}
}

// Token is an access token. Its value shows only through Value; printing it shows the expiry.
type Token struct {
	value     string
	ExpiresOn time.Time
	Claims    Claims // decoded, not verified: for diagnosis only
	FromCache bool   // served without a request to Entra ID
}

// Value is the bearer token, for the one place that sends it.
func (t Token) Value() string { return t.value }

func (t Token) String() string {
	return "access token (expires " + t.ExpiresOn.UTC().Format(time.RFC3339) + ")"
}

// Config configures a Provider.
type Config struct {
	Cloud  cloud.Endpoints
	Logger *slog.Logger
	Clock  func() time.Time
	// RefreshBefore: a cached token this close to expiry is replaced (default 5 minutes, as MSAL does).
	RefreshBefore time.Duration
}

// Provider hands out tokens. It is safe for concurrent use; make one per process.
type Provider struct {
	cfg   Config
	http  *http.Client
	log   *slog.Logger
	group singleflight.Group

	mu      sync.Mutex
	tokens  map[string]Token // identity key + purpose → token
	clients map[string]any   // identity key → confidential.Client or public.Client
}

// New makes a Provider.
func New(cfg Config) *Provider {
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.RefreshBefore == 0 {
		cfg.RefreshBefore = 5 * time.Minute
	}
	if cfg.Cloud.Authority == "" {
		cfg.Cloud = cloud.Global()
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Provider{cfg: cfg, http: cfg.Cloud.HTTPClient(), log: log, tokens: map[string]Token{}, clients: map[string]any{}}
}

// Facts are the IDs an error about this identity names.
func (p *Provider) Facts(id Identity, mailbox string) diag.Facts {
	return diag.Facts{Authority: p.cfg.Cloud.Authority, TenantID: id.TenantID, ClientID: id.ClientID, AppOnly: id.AppOnly(),
		Mailbox: mailbox, Username: id.Username}
}

// Token returns a valid token for the identity and purpose, from the cache when it has one that is
// not about to expire. Errors are *diag.Error.
func (p *Provider) Token(ctx context.Context, id Identity, purpose Purpose) (Token, error) {
	if err := id.check(); err != nil {
		return Token{}, err
	}
	k := id.key() + "|" + string(purpose)
	if t, ok := p.cached(k); ok {
		return t, nil
	}
	v, err, _ := p.group.Do(k, func() (any, error) {
		if t, ok := p.cached(k); ok { // another caller just refreshed it
			return t, nil
		}
		t, err := p.acquire(ctx, id, purpose)
		if err != nil {
			return Token{}, err
		}
		p.mu.Lock()
		p.tokens[k] = t
		p.mu.Unlock()
		return t, nil
	})
	if err != nil {
		return Token{}, err
	}
	return v.(Token), nil
}

// Forget drops the cached tokens of an identity (after Exchange refused one, say), MSAL's included,
// so the next Token asks Entra ID again — and learns, for example, that the secret has expired.
func (p *Provider) Forget(id Identity, purpose Purpose) {
	k := id.key()
	p.mu.Lock()
	defer p.mu.Unlock()
	for tk := range p.tokens {
		if strings.HasPrefix(tk, k+"|") {
			delete(p.tokens, tk)
		}
	}
	delete(p.clients, k)
}

func (p *Provider) cached(k string) (Token, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.tokens[k]
	if !ok || !p.cfg.Clock().Add(p.cfg.RefreshBefore).Before(t.ExpiresOn) {
		return Token{}, false
	}
	t.FromCache = true
	return t, true
}

func (id Identity) check() error {
	missing := func(what string) error {
		return &diag.Error{Stage: diag.StageSettings, Kind: diag.KindConfig, Code: "settings", Summary: what + " is not set",
			Remedy: "complete the Exchange Online settings (inkorg settings validate lists what is missing)"}
	}
	switch {
	case id.TenantID == "":
		return missing("Directory (tenant) ID")
	case id.ClientID == "":
		return missing("Application (client) ID")
	}
	switch id.Flow {
	case settings.FlowClientSecret:
		if !id.Secret.IsSet() {
			return missing("Client secret")
		}
	case settings.FlowUsernamePassword:
		if id.Username == "" {
			return missing("User name (Exchange)")
		}
		if !id.Password.IsSet() {
			return missing("Password (Exchange)")
		}
	case settings.FlowCertificate:
		if len(id.Certificate) == 0 || !id.Key.IsSet() {
			return missing("Client certificate and key")
		}
	default:
		return missing("Authentication flow")
	}
	return nil
}

func (p *Provider) authority(id Identity) string { return p.cfg.Cloud.Authority + "/" + id.TenantID }

// client returns the MSAL client of an identity, making it on first use.
func (p *Provider) client(id Identity) (any, error) {
	k := id.key()
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.clients[k]; ok {
		return c, nil
	}
	var c any
	switch id.Flow {
	case settings.FlowUsernamePassword:
		pc, err := public.New(id.ClientID, public.WithAuthority(p.authority(id)), public.WithHTTPClient(p.http),
			public.WithInstanceDiscovery(!p.cfg.Cloud.Custom))
		if err != nil {
			return nil, p.settingsError(err)
		}
		c = pc
	default:
		var cred confidential.Credential
		var err error
		if id.Flow == settings.FlowClientSecret {
			cred, err = confidential.NewCredFromSecret(id.Secret.Reveal())
		} else {
			certs, key, perr := confidential.CertFromPEM(append(append([]byte{}, id.Certificate...), []byte("\n"+id.Key.Reveal())...), "")
			if perr != nil {
				return nil, &diag.Error{Stage: diag.StageSettings, Kind: diag.KindConfig, Code: "certificate", Summary: "the client certificate or its key cannot be read",
					Remedy: "give the certificate and its private key as PEM files (the key unencrypted)", Err: perr}
			}
			cred, err = confidential.NewCredFromCert(certs, key)
		}
		if err != nil {
			return nil, p.settingsError(err)
		}
		cc, err := confidential.New(p.authority(id), id.ClientID, cred, confidential.WithHTTPClient(p.http),
			confidential.WithInstanceDiscovery(!p.cfg.Cloud.Custom))
		if err != nil {
			return nil, p.settingsError(err)
		}
		c = &cc
	}
	p.clients[k] = c
	return c, nil
}

func (p *Provider) settingsError(err error) error {
	return &diag.Error{Stage: diag.StageSettings, Kind: diag.KindConfig, Code: "settings", Summary: "the Exchange Online settings cannot be used: " + err.Error(),
		Remedy: "check the Directory (tenant) ID and the Application (client) ID", Err: err}
}

// acquire asks MSAL (whose own cache may answer) for a token.
func (p *Provider) acquire(ctx context.Context, id Identity, purpose Purpose) (Token, error) {
	c, err := p.client(id)
	if err != nil {
		return Token{}, err
	}
	scopes := id.scopes(purpose)
	start := p.cfg.Clock()
	var tok string
	var expires time.Time
	switch c := c.(type) {
	case *confidential.Client:
		r, err := c.AcquireTokenByCredential(ctx, scopes)
		if err != nil {
			return Token{}, p.tokenError(err, id)
		}
		tok, expires = r.AccessToken, r.ExpiresOn
	case public.Client:
		r, err := p.silent(ctx, c, id, scopes)
		if err != nil {
			r, err = c.AcquireTokenByUsernamePassword(ctx, scopes, id.Username, id.Password.Reveal())
		}
		if err != nil {
			return Token{}, p.tokenError(err, id)
		}
		tok, expires = r.AccessToken, r.ExpiresOn
	}
	claims, _ := DecodeClaims(tok)
	p.log.Info("token acquired", "tenant", id.TenantID, "client", id.ClientID, "flow", id.Flow, "purpose", purpose,
		"expires", expires.UTC().Format(time.RFC3339), "took", p.cfg.Clock().Sub(start).Round(time.Millisecond))
	return Token{value: tok, ExpiresOn: expires, Claims: claims}, nil
}

// silent refreshes a delegated token from MSAL's cache (the refresh token) before signing in again.
func (p *Provider) silent(ctx context.Context, c public.Client, id Identity, scopes []string) (public.AuthResult, error) {
	accounts, err := c.Accounts(ctx)
	if err != nil {
		return public.AuthResult{}, err
	}
	for _, a := range accounts {
		if strings.EqualFold(a.PreferredUsername, id.Username) {
			return c.AcquireTokenSilent(ctx, scopes, public.WithSilentAccount(a))
		}
	}
	return public.AuthResult{}, errors.New("no cached account")
}

// tokenError turns an MSAL error into a *diag.Error.
func (p *Provider) tokenError(err error, id Identity) error {
	facts := p.Facts(id, "")
	var call msalerrors.CallErr
	if errors.As(err, &call) && call.Resp != nil {
		body := ""
		if i := strings.Index(call.Err.Error(), ":\n"); i >= 0 {
			body = call.Err.Error()[i+2:]
		}
		e := diag.FromEntra(call.Resp.StatusCode, []byte(body), facts)
		e.Err = err
		return e
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &diag.Error{Stage: diag.StageToken, Kind: diag.KindTransient, Code: "timeout", Summary: "Entra ID did not answer in time",
			Remedy: "inkorg retries by itself; check the network connection to " + p.cfg.Cloud.Authority, Err: err}
	}
	msg := err.Error()
	e := &diag.Error{Stage: diag.StageToken, Kind: diag.KindTransient, Code: "network", Summary: "cannot reach Entra ID at " + p.cfg.Cloud.Authority,
		Server: msg, Remedy: "check the network, the proxy and the firewall; inkorg retries by itself", Err: err}
	if strings.Contains(msg, "x509") || strings.Contains(msg, "certificate") {
		e.Stage, e.Kind, e.Code = diag.StageTLS, diag.KindConfig, "x509"
		e.Summary = "the TLS certificate of " + p.cfg.Cloud.Authority + " is not trusted"
		e.Remedy = "with a cloud file, its caFile must be the CA that signed the server's certificate; otherwise check for a TLS-inspecting proxy"
	}
	if strings.Contains(msg, "invalid_tenant") || strings.Contains(msg, "AADSTS") {
		// Tenant discovery failed with an Entra error body inside the message.
		if i := strings.Index(msg, "{"); i >= 0 {
			d := diag.FromEntra(400, []byte(msg[i:]), facts)
			d.Err = err
			return d
		}
	}
	return e
}

// IdentityFor is who signs in for a user, an incoming account or the webshop: the effective Exchange
// Online values, the system's certificate (certificates are set there only), and the mailbox's User
// name (Exchange) and Password (Exchange) for the User name/Password flow.
func IdentityFor(sys settings.System, x settings.Exchange, username string, password settings.Secret) Identity {
	return Identity{TenantID: x.TenantID.Value, ClientID: x.ClientID.Value, Flow: x.AuthFlow.Value, Secret: x.ClientSecret.Value,
		Certificate: []byte(sys.ClientCertificate), Key: sys.ClientKey, Username: username, Password: password}
}

// CheckedToken is Token followed by CheckClaims: a token for p, refused before any connection when it
// lacks the audience or permission p needs. The facts returned are f with the app's service
// principal (from the token) filled in for app-only identities, for the errors that follow.
func (p *Provider) CheckedToken(ctx context.Context, id Identity, pu Purpose, f diag.Facts) (Token, diag.Facts, error) {
	t, err := p.Token(ctx, id, pu)
	if err != nil {
		return Token{}, f, err
	}
	if id.AppOnly() && t.Claims.ObjectID != "" {
		f.ServicePrincipalID = t.Claims.ObjectID
	}
	if e := CheckClaims(t, pu, id.AppOnly(), f); e != nil {
		return Token{}, f, e
	}
	return t, f, nil
}
