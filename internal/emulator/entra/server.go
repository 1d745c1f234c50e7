// Package entra is the emulator's Microsoft Entra ID: the v2.0 token endpoint (client credentials
// with a secret in the form or HTTP Basic or a certificate client assertion, the password grant and
// refresh tokens), OpenID discovery, JWKS, instance discovery and UserRealm, exactly as MSAL Go calls
// them. It issues v1.0 RS256 access tokens shaped like Exchange Online's, answers errors with Entra's
// JSON, status codes and AADSTS descriptions, records every token request (never a secret), and
// injects faults (5xx, stalls, secrets expired now). Its Verifier checks the tokens it issued.
package entra

import (
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"inkorg/internal/emulator/scenario"
)

// Token lifetimes.
const (
	accessTokenLifetime  = 3599 * time.Second
	tokenBackdate        = 5 * time.Minute
	refreshTokenLifetime = 90 * 24 * time.Hour
	maxRequestLog        = 10000
	maxRefreshTokens     = 100000
)

// Resource application IDs, as Entra names resources in some error descriptions.
const (
	exchangeAppID = "00000002-0000-0ff1-ce00-000000000000"
	graphAppID    = "00000003-0000-0000-c000-000000000000"
)

// Config configures a Server.
type Config struct {
	Scenario *scenario.Scenario // required, validated
	Clock    func() time.Time   // nil: time.Now
	Logger   *slog.Logger       // nil: discard
}

// Server is the Entra ID emulator. Create with New, mount with Register, and Close when done (Close
// releases requests held by a stall fault).
type Server struct {
	sc     *scenario.Scenario
	clock  func() time.Time
	log    *slog.Logger
	key    *signingKey
	verify *Verifier
	closed chan struct{}
	once   sync.Once

	mu       sync.Mutex
	faults   Faults
	expired  map[string]bool // secret IDs expired by a fault
	requests []RequestRecord
	refresh  map[string]*refreshGrant
}

type refreshGrant struct {
	clientID string
	upn      string
	tenantID string
	issued   time.Time
	expires  time.Time
}

// Faults are the token endpoint's injected failures.
type Faults struct {
	// Status, when 500..599, makes every token request fail with that status (temporarily_unavailable).
	Status int `json:"status5xx,omitempty"`
	// Stall holds every token request this long before it is answered (a timeout for clients with a
	// shorter deadline).
	Stall time.Duration `json:"stall,omitempty"`
}

// RequestRecord is one token request in the log. It never holds a secret, password or token.
type RequestRecord struct {
	Time          time.Time `json:"time"`
	Tenant        string    `json:"tenant"`
	GrantType     string    `json:"grantType"`
	ClientID      string    `json:"clientId"`
	Identity      string    `json:"identity"`             // "app" for client credentials, else the user name
	Credential    string    `json:"credential,omitempty"` // "secret <Secret ID>", "certificate <thumbprint>", "none"
	Scope         string    `json:"scope,omitempty"`
	Status        int       `json:"status"`
	Outcome       string    `json:"outcome"` // "issued" or "AADSTSnnnn"
	Error         string    `json:"error,omitempty"`
	TraceID       string    `json:"traceId"`
	CorrelationID string    `json:"correlationId"`
}

// New creates the server and its signing key.
func New(cfg Config) (*Server, error) {
	if cfg.Scenario == nil {
		return nil, fmt.Errorf("entra: no scenario")
	}
	clock := cfg.Clock
	if clock == nil {
		clock = time.Now
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	key, err := newSigningKey(clock())
	if err != nil {
		return nil, err
	}
	tenants := map[string]bool{}
	for _, t := range cfg.Scenario.Tenants {
		tenants[t.ID] = true
	}
	return &Server{
		sc: cfg.Scenario, clock: clock, log: logger, key: key,
		verify:  &Verifier{key: key, clock: clock, tenants: tenants},
		closed:  make(chan struct{}),
		expired: map[string]bool{},
		refresh: map[string]*refreshGrant{},
	}, nil
}

// Verifier returns the verifier of the tokens this server issues.
func (s *Server) Verifier() *Verifier { return s.verify }

// Close releases stalled requests. The server answers nothing useful afterwards.
func (s *Server) Close() { s.once.Do(func() { close(s.closed) }) }

// Register mounts the endpoints on mux.
func (s *Server) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", s.handleToken)
	mux.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", s.handleOpenIDConfig)
	mux.HandleFunc("GET /{tenant}/discovery/v2.0/keys", s.handleKeys)
	mux.HandleFunc("GET /common/discovery/instance", s.handleInstanceDiscovery)
	mux.HandleFunc("GET /common/UserRealm/{user}", s.handleUserRealm)
}

// SetFaults replaces the token endpoint's faults.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
}

// CurrentFaults returns the token endpoint's faults.
func (s *Server) CurrentFaults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

// ExpireSecret makes an app's secret (secretID, or all its secrets when empty) expired from now on.
func (s *Server) ExpireSecret(clientID, secretID string) error {
	app, ok := s.sc.App(clientID)
	if !ok {
		return fmt.Errorf("entra: no app with client ID %q", clientID)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	found := false
	for _, sec := range app.Secrets {
		if secretID == "" || strings.EqualFold(sec.ID, secretID) {
			s.expired[sec.ID] = true
			found = true
		}
	}
	if !found {
		return fmt.Errorf("entra: app %s has no secret %q", clientID, secretID)
	}
	return nil
}

// ClearFaults removes all faults, including secrets expired by ExpireSecret.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = Faults{}
	s.expired = map[string]bool{}
}

// Requests returns a copy of the token request log, oldest first.
func (s *Server) Requests() []RequestRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

func (s *Server) record(r RequestRecord) {
	s.mu.Lock()
	if len(s.requests) >= maxRequestLog {
		s.requests = slices.Delete(s.requests, 0, len(s.requests)-maxRequestLog+1)
	}
	s.requests = append(s.requests, r)
	s.mu.Unlock()
	s.log.Info("entra token request", "tenant", r.Tenant, "grant", r.GrantType, "client_id", r.ClientID,
		"identity", r.Identity, "credential", r.Credential, "status", r.Status, "outcome", r.Outcome)
}

func newGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func randomB64(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// tokenRequest is the state of one token request while it is handled.
type tokenRequest struct {
	rec    RequestRecord
	host   string
	form   url.Values
	tenant *scenario.Tenant // nil for common/organizations/consumers
	alias  string           // common, organizations, consumers or ""
	app    *scenario.App
	acr    string
}

func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	now := s.clock()
	req := &tokenRequest{host: r.Host}
	req.rec = RequestRecord{
		Time: now, Tenant: r.PathValue("tenant"), TraceID: newGUID(), CorrelationID: r.Header.Get("client-request-id"),
	}
	if req.rec.CorrelationID == "" {
		req.rec.CorrelationID = newGUID()
	}
	faults := s.CurrentFaults()
	if faults.Stall > 0 {
		t := time.NewTimer(faults.Stall)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			req.rec.Status, req.rec.Outcome = 0, "client gone during stall"
			s.record(req.rec)
			return
		case <-s.closed:
			t.Stop()
		}
	}
	var body any
	status := http.StatusOK
	if faults.Status >= 500 && faults.Status <= 599 {
		err := errTransient(faults.Status)
		body, status = s.fail(req, err)
	} else if resp, err := s.token(r, req); err != nil {
		body, status = s.fail(req, err)
	} else {
		body = resp
		req.rec.Status, req.rec.Outcome = http.StatusOK, "issued"
	}
	s.record(req.rec)
	w.Header().Set("x-ms-request-id", req.rec.TraceID)
	w.Header().Set("client-request-id", req.rec.CorrelationID)
	writeJSON(w, status, body)
}

func (s *Server) fail(req *tokenRequest, e *Error) (any, int) {
	req.rec.Status = e.Status
	req.rec.Outcome = fmt.Sprintf("AADSTS%d", e.Code)
	req.rec.Error = e.OAuthError
	return e.body(req.rec.Time, req.rec.TraceID, req.rec.CorrelationID, req.host), e.Status
}

// tokenResponse is the success JSON.
type tokenResponse struct {
	TokenType    string `json:"token_type"`
	Scope        string `json:"scope,omitempty"`
	ExpiresIn    int    `json:"expires_in"`
	ExtExpiresIn int    `json:"ext_expires_in"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token,omitempty"`
	IDToken      string `json:"id_token,omitempty"`
	ClientInfo   string `json:"client_info,omitempty"`
}

func (s *Server) token(r *http.Request, req *tokenRequest) (*tokenResponse, *Error) {
	r.Body = http.MaxBytesReader(nil, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		return nil, errMissingParam("grant_type")
	}
	req.form = r.PostForm
	f := req.form
	grant := f.Get("grant_type")
	req.rec.GrantType = grant
	req.rec.Scope = f.Get("scope")
	clientID := f.Get("client_id")
	basicUser, basicSecret, hasBasic := r.BasicAuth()
	if hasBasic {
		// RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
		if u, err := url.QueryUnescape(basicUser); err == nil {
			basicUser = u
		}
		if p, err := url.QueryUnescape(basicSecret); err == nil {
			basicSecret = p
		}
		if clientID == "" {
			clientID = basicUser
		}
	}
	req.rec.ClientID = clientID
	if grant == "" {
		return nil, errMissingParam("grant_type")
	}
	if clientID == "" {
		return nil, errMissingParam("client_id")
	}

	// Tenant.
	tenantParam := req.rec.Tenant
	switch strings.ToLower(tenantParam) {
	case "common", "organizations", "consumers":
		req.alias = strings.ToLower(tenantParam)
	default:
		if !scenario.IsGUID(tenantParam) && !scenario.IsDNSName(tenantParam) && !isSingleLabel(tenantParam) {
			return nil, errMalformedTenant(tenantParam)
		}
		t, ok := s.sc.Tenant(tenantParam)
		if !ok {
			return nil, errTenantNotFound(tenantParam, "invalid_request")
		}
		req.tenant = t
	}

	// Application.
	app, ok := s.sc.App(clientID)
	directory := tenantParam
	if req.tenant != nil && req.tenant.Name != "" {
		directory = req.tenant.Name
	}
	if !ok || (req.tenant != nil && app.TenantID != req.tenant.ID) {
		return nil, errAppNotFound(clientID, directory)
	}
	req.app = app
	if req.alias != "" {
		if app.SingleTenant {
			return nil, errSingleTenantOnCommon(app.ClientID, app.Name)
		}
		switch {
		case grant == "password" && req.alias != "organizations":
			return nil, errGrantOnCommon()
		case grant == "client_credentials":
			return nil, errNoTenantInfo()
		}
		req.tenant = s.sc.HomeTenant(app)
	}

	secret := f.Get("client_secret")
	if secret == "" && hasBasic {
		secret = basicSecret
	}
	switch grant {
	case "client_credentials":
		req.rec.Identity = "app"
		return s.clientCredentials(req, secret)
	case "password":
		req.rec.Identity = strings.ToLower(f.Get("username"))
		return s.password(req, secret)
	case "refresh_token":
		return s.refreshToken(req, secret)
	default:
		return nil, errUnsupportedGrant(grant)
	}
}

// isSingleLabel accepts a single DNS label ("contoso"): well-formed, but never a verified domain.
func isSingleLabel(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return s[0] != '-' && s[len(s)-1] != '-'
}

// authenticateClient checks the client credential. required is false only for public clients.
func (s *Server) authenticateClient(req *tokenRequest, secret string) *Error {
	f := req.form
	assertion := f.Get("client_assertion")
	app := req.app
	switch {
	case assertion != "":
		if at := f.Get("client_assertion_type"); at != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
			if at == "" {
				return errMissingParam("client_assertion_type")
			}
			return &Error{Status: 400, Code: 50027, OAuthError: "invalid_request",
				Description: fmt.Sprintf("Invalid client_assertion_type '%s'.", at)}
		}
		return s.checkAssertion(req, assertion)
	case secret != "":
		now := s.clock()
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, sec := range app.Secrets {
			if subtle.ConstantTimeCompare([]byte(sec.Value), []byte(secret)) == 1 {
				req.rec.Credential = "secret " + sec.ID
				if s.expired[sec.ID] || (!sec.Expires.IsZero() && !now.Before(sec.Expires)) {
					return errExpiredSecret(app.ClientID)
				}
				req.acr = "1"
				return nil
			}
		}
		req.rec.Credential = "secret (unknown)"
		return errWrongSecret(app.ClientID)
	default:
		req.rec.Credential = "none"
		return errNoCredential()
	}
}

func (s *Server) checkAssertion(req *tokenRequest, assertion string) *Error {
	app := req.app
	now := s.clock()
	var thumb string
	var mc jwt.MapClaims
	_, err := jwt.ParseWithClaims(assertion, &mc, func(t *jwt.Token) (any, error) {
		x5tS256, _ := t.Header["x5t#S256"].(string)
		x5t, _ := t.Header["x5t"].(string)
		for _, c := range app.Certificates {
			cert := c.X509()
			if cert == nil {
				continue
			}
			if x5tS256 != "" && sameThumb(x5tS256, certThumb256(cert.Raw)) || x5t != "" && sameThumb(x5t, certThumb1(cert.Raw)) {
				thumb = c.Thumbprint
				return cert.PublicKey, nil
			}
		}
		if x5tS256 != "" {
			thumb = x5tS256
		} else {
			thumb = x5t
		}
		return nil, errKeyNotFound
	}, jwt.WithValidMethods([]string{"PS256", "RS256"}), jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithExpirationRequired(), jwt.WithLeeway(5*time.Minute))
	req.rec.Credential = "certificate " + thumb
	if err != nil {
		switch {
		case errors.Is(err, errKeyNotFound):
			return errAssertionKey(thumb, app.ClientID)
		case errors.Is(err, jwt.ErrTokenSignatureInvalid):
			return errAssertionSignature(app.ClientID)
		case errors.Is(err, jwt.ErrTokenExpired), errors.Is(err, jwt.ErrTokenNotValidYet):
			var nbf, exp time.Time
			if t, _ := mc.GetNotBefore(); t != nil {
				nbf = t.Time
			}
			if t, _ := mc.GetExpirationTime(); t != nil {
				exp = t.Time
			}
			return errAssertionTime(now, nbf, exp)
		default:
			return errAssertionInvalid(err.Error())
		}
	}
	iss, _ := mc["iss"].(string)
	sub, _ := mc["sub"].(string)
	if !strings.EqualFold(iss, app.ClientID) || !strings.EqualFold(sub, app.ClientID) {
		return errAssertionAppMismatch()
	}
	aud, _ := mc["aud"].(string)
	if u, err := url.Parse(aud); err != nil || !(strings.HasSuffix(u.Path, "/oauth2/v2.0/token") || strings.HasSuffix(u.Path, "/oauth2/token")) {
		return &Error{Status: 401, Code: 700212, OAuthError: "invalid_client",
			Description: fmt.Sprintf("No matching federated identity record found for presented assertion audience '%s'.", aud)}
	}
	req.acr = "2"
	return nil
}

// parsedScopes is a scope parameter split into the resource part and the OIDC scopes.
type parsedScopes struct {
	resource    string   // canonical resource
	audience    string   // as requested, without the permission
	names       []string // permission names on that resource (".default" included)
	oidc        []string // openid, profile, email, offline_access
	openid      bool
	offline     bool
	rawResource []string
}

func parseScopes(scope string, defaultResource string) (parsedScopes, *Error) {
	var p parsedScopes
	fields := strings.Fields(scope)
	if len(fields) == 0 {
		return p, errScopeMissing()
	}
	for _, f := range fields {
		switch strings.ToLower(f) {
		case "openid", "profile", "email", "offline_access":
			lf := strings.ToLower(f)
			if !slices.Contains(p.oidc, lf) {
				p.oidc = append(p.oidc, lf)
			}
			p.openid = p.openid || lf == "openid"
			p.offline = p.offline || lf == "offline_access"
			continue
		}
		aud, name := defaultResource, f
		if i := strings.LastIndexByte(f, '/'); i > 0 && strings.Contains(f, "://") {
			aud, name = f[:i], f[i+1:]
		} else if i > 0 && scenario.IsGUID(f[:i]) {
			aud, name = f[:i], f[i+1:]
		}
		if name == "" {
			return p, errScopeInvalid(f)
		}
		res := scenario.CanonicalResource(aud)
		if p.resource != "" && p.resource != res {
			e := errMultipleResources()
			e.Description = strings.Replace(e.Description, "{scopes}", scope, 1)
			return p, e
		}
		p.resource, p.audience = res, aud
		p.names = append(p.names, name)
		p.rawResource = append(p.rawResource, f)
	}
	return p, nil
}

func (s *Server) clientCredentials(req *tokenRequest, secret string) (*tokenResponse, *Error) {
	ps, aerr := parseScopes(req.form.Get("scope"), scenario.ResourceGraph)
	if aerr != nil {
		return nil, aerr
	}
	if len(ps.names) == 0 {
		return nil, errScopeMissing()
	}
	for i, n := range ps.names {
		if n != ".default" {
			return nil, errScopeNotDefault(ps.rawResource[i])
		}
	}
	if ps.resource != scenario.ResourceExchange && ps.resource != scenario.ResourceGraph {
		return nil, errResourceNotFound(ps.audience, req.tenant.ID)
	}
	if aerr := s.authenticateClient(req, secret); aerr != nil {
		return nil, aerr
	}
	app := req.app
	now := s.clock()
	claims := s.baseClaims(req, ps.audience, now)
	claims["idtyp"] = "app"
	claims["oid"] = app.ObjectID
	claims["sub"] = app.ObjectID
	if roles := app.RolesFor(ps.resource); len(roles) > 0 {
		claims["roles"] = roles
	}
	at, err := s.key.sign(claims)
	if err != nil {
		return nil, &Error{Status: 500, Code: 90033, OAuthError: "server_error", Description: err.Error()}
	}
	return &tokenResponse{TokenType: "Bearer", ExpiresIn: int(accessTokenLifetime / time.Second),
		ExtExpiresIn: int(accessTokenLifetime / time.Second), AccessToken: at}, nil
}

func (s *Server) baseClaims(req *tokenRequest, audience string, now time.Time) jwt.MapClaims {
	app := req.app
	tid := req.tenant.ID
	c := jwt.MapClaims{
		"aud":             audience,
		"iss":             "https://sts.windows.net/" + tid + "/",
		"iat":             now.Add(-tokenBackdate).Unix(),
		"nbf":             now.Add(-tokenBackdate).Unix(),
		"exp":             now.Add(accessTokenLifetime).Unix(),
		"aio":             randomB64(60),
		"app_displayname": app.Name,
		"appid":           app.ClientID,
		"appidacr":        req.acr,
		"idp":             "https://sts.windows.net/" + tid + "/",
		"rh":              "0." + randomB64(48) + ".",
		"tid":             tid,
		"uti":             randomB64(16),
		"ver":             "1.0",
	}
	if app.TokenPadding > 0 {
		c["xms_pad"] = strings.Repeat("A", app.TokenPadding)
	}
	return c
}

// knownScope reports whether a delegated permission exists on the resource: Office 365 Exchange
// Online's fixed list, or any well-formed Graph permission name.
func knownScope(resource, name string) bool {
	switch resource {
	case scenario.ResourceExchange:
		switch strings.ToLower(name) {
		case "imap.accessasuser.all", "pop.accessasuser.all", "smtp.send", "ews.accessasuser.all",
			"mail.read", "mail.readwrite", "mail.send", "user.read", ".default":
			return true
		}
		return false
	case scenario.ResourceGraph:
		if name == ".default" {
			return true
		}
		parts := strings.Split(name, ".")
		if len(parts) < 2 {
			return false
		}
		for _, p := range parts {
			if p == "" {
				return false
			}
			for _, c := range p {
				if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
					return false
				}
			}
		}
		return true
	}
	return false
}

// consentedScopes returns the app's consented delegated scopes on a resource. Graph's IMAP/POP/SMTP
// permissions count for Graph too (the portal lists them under Microsoft Graph), which is how a bare
// "IMAP.AccessAsUser.All" yields a Graph token that IMAP then refuses.
func consentedScopes(app *scenario.App, resource string) []string {
	out := app.ScopesFor(resource)
	if resource == scenario.ResourceGraph {
		for _, n := range app.ScopesFor(scenario.ResourceExchange) {
			if !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	return out
}

func (s *Server) delegatedScopes(req *tokenRequest, ps parsedScopes) *Error {
	if ps.resource == "" {
		return errScopeMissing()
	}
	if ps.resource != scenario.ResourceExchange && ps.resource != scenario.ResourceGraph {
		return errResourceNotFound(ps.audience, req.tenant.ID)
	}
	for i, n := range ps.names {
		if !knownScope(ps.resource, n) {
			return errScopeInvalid(ps.rawResource[i])
		}
	}
	return nil
}

func (s *Server) checkConsent(req *tokenRequest, ps parsedScopes) ([]string, *Error) {
	consented := consentedScopes(req.app, ps.resource)
	if len(consented) == 0 {
		return nil, errNoConsent(req.app.ClientID, req.app.Name)
	}
	for _, n := range ps.names {
		if n == ".default" {
			continue
		}
		if !slices.ContainsFunc(consented, func(c string) bool { return strings.EqualFold(c, n) }) {
			return nil, errNoConsent(req.app.ClientID, req.app.Name)
		}
	}
	return consented, nil
}

func resourceAppID(resource string) string {
	if resource == scenario.ResourceExchange {
		return exchangeAppID
	}
	return graphAppID
}

func (s *Server) password(req *tokenRequest, secret string) (*tokenResponse, *Error) {
	f := req.form
	app := req.app
	username := strings.ToLower(f.Get("username"))
	if username == "" {
		return nil, errMissingParam("username")
	}
	if f.Get("password") == "" {
		return nil, errMissingParam("password")
	}
	ps, aerr := parseScopes(f.Get("scope"), scenario.ResourceGraph)
	if aerr != nil {
		return nil, aerr
	}
	if aerr := s.delegatedScopes(req, ps); aerr != nil {
		return nil, aerr
	}
	if app.PublicClient {
		if secret != "" || f.Get("client_assertion") != "" {
			return nil, errPublicWithCredential()
		}
		req.acr = "0"
		req.rec.Credential = "none"
	} else if aerr := s.authenticateClient(req, secret); aerr != nil {
		return nil, aerr
	}
	if req.alias == "organizations" {
		t, ok := s.sc.TenantOfAddress(username)
		if !ok {
			return nil, errUnknownUser(req.tenant.ID)
		}
		req.tenant = t
	}
	user, ok := s.sc.User(username)
	if ut, tok := s.sc.TenantOfAddress(username); !ok || !tok || ut.ID != req.tenant.ID {
		return nil, errUnknownUser(req.tenant.ID)
	}
	if subtle.ConstantTimeCompare([]byte(user.Password), []byte(f.Get("password"))) != 1 {
		return nil, errWrongPassword()
	}
	if user.Disabled {
		return nil, errUserDisabled()
	}
	consented, aerr := s.checkConsent(req, ps)
	if aerr != nil {
		return nil, aerr
	}
	if user.ConditionalAccessBlocked {
		return nil, errConditionalAccess(scenario.DerivedID("capolicy", req.tenant.ID))
	}
	if user.MFA {
		return nil, errMFARequired(resourceAppID(ps.resource))
	}
	return s.issueDelegated(req, user, ps, consented)
}

func (s *Server) issueDelegated(req *tokenRequest, user *scenario.User, ps parsedScopes, consented []string) (*tokenResponse, *Error) {
	now := s.clock()
	app := req.app
	claims := s.baseClaims(req, ps.audience, now)
	claims["idtyp"] = "user"
	claims["oid"] = user.ObjectID
	claims["sub"] = user.ObjectID
	claims["upn"] = user.UPN
	claims["unique_name"] = user.UPN
	claims["name"] = user.DisplayName
	claims["amr"] = []string{"pwd"}
	claims["scp"] = strings.Join(consented, " ")
	at, err := s.key.sign(claims)
	if err != nil {
		return nil, &Error{Status: 500, Code: 90033, OAuthError: "server_error", Description: err.Error()}
	}
	granted := make([]string, 0, len(consented)+len(ps.oidc))
	for _, c := range consented {
		granted = append(granted, ps.audience+"/"+c)
	}
	resp := &tokenResponse{TokenType: "Bearer", ExpiresIn: int(accessTokenLifetime / time.Second),
		ExtExpiresIn: int(accessTokenLifetime / time.Second), AccessToken: at}
	offlineConsented := slices.ContainsFunc(app.DelegatedScopes, func(s string) bool { return strings.EqualFold(s, "offline_access") })
	for _, o := range ps.oidc {
		if o == "offline_access" && !offlineConsented {
			continue
		}
		granted = append(granted, o)
	}
	resp.Scope = strings.Join(granted, " ")
	if ps.offline && offlineConsented {
		rt := "1.emu." + randomB64(96)
		s.mu.Lock()
		if len(s.refresh) >= maxRefreshTokens {
			s.pruneRefreshLocked(now)
		}
		s.refresh[rt] = &refreshGrant{clientID: app.ClientID, upn: user.UPN, tenantID: req.tenant.ID,
			issued: now, expires: now.Add(refreshTokenLifetime)}
		s.mu.Unlock()
		resp.RefreshToken = rt
	}
	if ps.openid || req.form.Get("client_info") == "1" {
		idc := jwt.MapClaims{
			"aud":                app.ClientID,
			"iss":                "https://" + req.host + "/" + req.tenant.ID + "/v2.0",
			"iat":                now.Add(-tokenBackdate).Unix(),
			"nbf":                now.Add(-tokenBackdate).Unix(),
			"exp":                now.Add(accessTokenLifetime).Unix(),
			"name":               user.DisplayName,
			"oid":                user.ObjectID,
			"preferred_username": user.UPN,
			"sub":                user.ObjectID,
			"tid":                req.tenant.ID,
			"ver":                "2.0",
		}
		if resp.IDToken, err = s.key.sign(idc); err != nil {
			return nil, &Error{Status: 500, Code: 90033, OAuthError: "server_error", Description: err.Error()}
		}
	}
	if req.form.Get("client_info") == "1" {
		ci, _ := json.Marshal(map[string]string{"uid": user.ObjectID, "utid": req.tenant.ID})
		resp.ClientInfo = base64.RawURLEncoding.EncodeToString(ci)
	}
	return resp, nil
}

func (s *Server) refreshToken(req *tokenRequest, secret string) (*tokenResponse, *Error) {
	f := req.form
	rt := f.Get("refresh_token")
	if rt == "" {
		return nil, errMissingParam("refresh_token")
	}
	s.mu.Lock()
	g := s.refresh[rt]
	s.mu.Unlock()
	if g == nil {
		return nil, errBadRefreshToken()
	}
	req.rec.Identity = g.upn
	if g.clientID != req.app.ClientID || (req.tenant != nil && req.tenant.ID != g.tenantID) {
		return nil, errRefreshTokenClient()
	}
	req.tenant, _ = s.sc.Tenant(g.tenantID)
	now := s.clock()
	if !now.Before(g.expires) {
		return nil, errRefreshTokenExpired(g.issued)
	}
	scope := f.Get("scope")
	if strings.TrimSpace(scope) == "" {
		scope = "https://outlook.office.com/.default offline_access"
	}
	ps, aerr := parseScopes(scope, scenario.ResourceGraph)
	if aerr != nil {
		return nil, aerr
	}
	if aerr := s.delegatedScopes(req, ps); aerr != nil {
		return nil, aerr
	}
	if req.app.PublicClient {
		if secret != "" || f.Get("client_assertion") != "" {
			return nil, errPublicWithCredential()
		}
		req.acr = "0"
		req.rec.Credential = "none"
	} else if aerr := s.authenticateClient(req, secret); aerr != nil {
		return nil, aerr
	}
	user, ok := s.sc.User(g.upn)
	if !ok {
		return nil, errUnknownUser(g.tenantID)
	}
	if user.Disabled {
		return nil, errUserDisabled()
	}
	consented, aerr := s.checkConsent(req, ps)
	if aerr != nil {
		return nil, aerr
	}
	if user.ConditionalAccessBlocked {
		return nil, errConditionalAccess(scenario.DerivedID("capolicy", g.tenantID))
	}
	ps.offline = true
	if !slices.Contains(ps.oidc, "offline_access") {
		ps.oidc = append(ps.oidc, "offline_access")
	}
	return s.issueDelegated(req, user, ps, consented)
}

// Discovery endpoints.

func (s *Server) resolveTenantForGET(w http.ResponseWriter, r *http.Request) (tid string, ok bool) {
	t := r.PathValue("tenant")
	switch strings.ToLower(t) {
	case "common", "organizations", "consumers":
		return strings.ToLower(t), true
	}
	var e *Error
	if !scenario.IsGUID(t) && !scenario.IsDNSName(t) && !isSingleLabel(t) {
		e = errMalformedTenant(t)
		e.OAuthError = "invalid_tenant"
	} else if tn, found := s.sc.Tenant(t); found {
		return tn.ID, true
	} else {
		e = errTenantNotFound(t, "invalid_tenant")
	}
	now := s.clock()
	writeJSON(w, e.Status, e.body(now, newGUID(), newGUID(), r.Host))
	return "", false
}

func (s *Server) handleOpenIDConfig(w http.ResponseWriter, r *http.Request) {
	tid, ok := s.resolveTenantForGET(w, r)
	if !ok {
		return
	}
	base := "https://" + r.Host + "/" + tid
	issuerTenant := tid
	if !scenario.IsGUID(tid) {
		issuerTenant = "{tenantid}"
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"jwks_uri":                              base + "/discovery/v2.0/keys",
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"issuer":                                "https://" + r.Host + "/" + issuerTenant + "/v2.0",
		"request_uri_parameter_supported":       false,
		"userinfo_endpoint":                     "https://graph.microsoft.com/oidc/userinfo",
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"device_authorization_endpoint":         base + "/oauth2/v2.0/devicecode",
		"http_logout_supported":                 true,
		"frontchannel_logout_supported":         true,
		"end_session_endpoint":                  base + "/oauth2/v2.0/logout",
		"claims_supported": []string{"sub", "iss", "cloud_instance_name", "cloud_instance_host_name",
			"cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce",
			"preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"},
		"kerberos_endpoint":     "https://" + r.Host + "/" + tid + "/kerberos",
		"tenant_region_scope":   "EU",
		"cloud_instance_name":   "microsoftonline.com",
		"cloud_graph_host_name": "graph.windows.net",
		"msgraph_host":          "graph.microsoft.com",
		"rbac_url":              "https://pas.windows.net",
	})
}

func (s *Server) handleKeys(w http.ResponseWriter, r *http.Request) {
	tid, ok := s.resolveTenantForGET(w, r)
	if !ok {
		return
	}
	issuerTenant := tid
	if !scenario.IsGUID(tid) {
		issuerTenant = "{tenantid}"
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"keys": []jwk{s.key.jwk("https://" + r.Host + "/" + issuerTenant + "/v2.0")},
	})
}

func (s *Server) handleInstanceDiscovery(w http.ResponseWriter, r *http.Request) {
	tenant := "common"
	if ae := r.URL.Query().Get("authorization_endpoint"); ae != "" {
		if u, err := url.Parse(ae); err == nil {
			if parts := strings.Split(strings.Trim(u.Path, "/"), "/"); len(parts) > 0 && parts[0] != "" {
				tenant = parts[0]
			}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"tenant_discovery_endpoint": "https://" + r.Host + "/" + tenant + "/v2.0/.well-known/openid-configuration",
		"api-version":               "1.1",
		"metadata": []map[string]any{{
			"preferred_network": r.Host,
			"preferred_cache":   r.Host,
			"aliases":           []string{r.Host},
		}},
	})
}

func (s *Server) handleUserRealm(w http.ResponseWriter, r *http.Request) {
	user := r.PathValue("user")
	domain := user
	if i := strings.LastIndexByte(user, '@'); i >= 0 {
		domain = user[i+1:]
	}
	accountType := "Unknown"
	if _, ok := s.sc.Tenant(domain); ok && domain != "" {
		accountType = "Managed"
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"ver":                 "1.0",
		"account_type":        accountType,
		"domain_name":         strings.ToLower(domain),
		"cloud_instance_name": "microsoftonline.com",
		"cloud_audience_urn":  "urn:federation:MicrosoftOnline",
	})
}

// errKeyNotFound is the keyfunc's answer when no registered certificate matches the assertion.
var errKeyNotFound = errors.New("entra: assertion key not registered")

// certThumb256 is the x5t#S256 header value of a certificate: base64url SHA-256 of its DER.
func certThumb256(der []byte) string {
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// certThumb1 is the x5t header value of a certificate: base64url SHA-1 of its DER.
func certThumb1(der []byte) string {
	sum := sha1.Sum(der)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// sameThumb compares a thumbprint header with a base64url thumbprint; clients send base64url (the
// JOSE encoding) or, like MSAL Go, standard base64 with padding.
func sameThumb(header, want string) bool {
	for _, enc := range []*base64.Encoding{base64.RawURLEncoding, base64.URLEncoding, base64.StdEncoding, base64.RawStdEncoding} {
		if b, err := enc.DecodeString(header); err == nil {
			return base64.RawURLEncoding.EncodeToString(b) == want
		}
	}
	return false
}

// pruneRefreshLocked drops expired refresh tokens and, if that is not enough, the oldest half, so a
// long-running emulator's memory stays bounded.
func (s *Server) pruneRefreshLocked(now time.Time) {
	for k, g := range s.refresh {
		if !now.Before(g.expires) {
			delete(s.refresh, k)
		}
	}
	if len(s.refresh) < maxRefreshTokens {
		return
	}
	issued := make([]time.Time, 0, len(s.refresh))
	for _, g := range s.refresh {
		issued = append(issued, g.issued)
	}
	slices.SortFunc(issued, func(a, b time.Time) int { return a.Compare(b) })
	cut := issued[len(issued)/2]
	for k, g := range s.refresh {
		if g.issued.Before(cut) || len(s.refresh) >= maxRefreshTokens && g.issued.Equal(cut) {
			delete(s.refresh, k)
		}
	}
}
