// Package scenario is the emulator's world: the Entra ID tenants, app registrations (client IDs,
// secrets with expiry, certificates, consented roles and scopes), Exchange service principals with
// their mailbox permissions, users (password, MFA, disabled, Conditional Access) and mailboxes (IMAP
// and SMTP AUTH switches, FullAccess and Send As grants) that the emulator serves. A scenario is loaded
// from a JSON file (unknown fields are refused, errors name file:line:column) or built with Default,
// the scenario `inkorg demo` uses. A validated Scenario is read-only; lookups are safe for concurrent use.
package scenario

import (
	"bytes"
	"crypto/sha1"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Exchange and Graph resources and permission names.
const (
	// ResourceExchange is the App ID URI Exchange Online tokens for IMAP/SMTP are requested for.
	ResourceExchange = "https://outlook.office365.com"
	// ResourceGraph is Microsoft Graph's App ID URI.
	ResourceGraph = "https://graph.microsoft.com"

	RoleIMAPAccessAsApp = "IMAP.AccessAsApp"
	RolePOPAccessAsApp  = "POP.AccessAsApp"
	RoleSMTPSendAsApp   = "SMTP.SendAsApp"
	RoleMailReadWrite   = "Mail.ReadWrite"
	RoleMailSend        = "Mail.Send"

	ScopeIMAP          = "IMAP.AccessAsUser.All"
	ScopePOP           = "POP.AccessAsUser.All"
	ScopeSMTPSend      = "SMTP.Send"
	ScopeOfflineAccess = "offline_access"

	// All is the wildcard mailbox in a service principal's FullAccess or SendAs list.
	All = "*"
)

// Scenario is the whole emulated world.
type Scenario struct {
	Tenants           []Tenant           `json:"tenants"`
	Apps              []App              `json:"apps"`
	ServicePrincipals []ServicePrincipal `json:"servicePrincipals,omitempty"`
	Users             []User             `json:"users,omitempty"`
	Mailboxes         []Mailbox          `json:"mailboxes,omitempty"`
}

// Tenant is an Entra ID directory and its Exchange Online organisation.
type Tenant struct {
	ID      string   `json:"id"`                // directory (tenant) ID, a GUID
	Name    string   `json:"name,omitempty"`    // display name
	Domains []string `json:"domains,omitempty"` // verified domains; the first is the default domain
	// SMTPAuthDisabled is Set-TransportConfig -SmtpClientAuthenticationDisabled $true.
	SMTPAuthDisabled bool `json:"smtpAuthDisabled,omitempty"`
}

// App is an app registration with its enterprise application (service principal) in its home tenant.
type App struct {
	Name     string `json:"name"`
	ClientID string `json:"clientId"`           // Application (client) ID
	TenantID string `json:"tenantId,omitempty"` // home tenant; may be omitted when there is one tenant
	// ObjectID is the enterprise application's (service principal's) object ID: the oid of app-only
	// tokens, and the ID New-ServicePrincipal -ObjectId must be given. Derived from ClientID if empty.
	ObjectID     string        `json:"objectId,omitempty"`
	Secrets      []Secret      `json:"secrets,omitempty"`
	Certificates []Certificate `json:"certificates,omitempty"`
	// Roles are application permissions with admin consent, e.g. "IMAP.AccessAsApp". A bare name is
	// on Exchange Online for IMAP/POP/SMTP/full_access_as_app roles and on Graph otherwise; a
	// resource-qualified name ("https://outlook.office365.com/Mail.Send") names its resource.
	Roles []string `json:"roles,omitempty"`
	// DelegatedScopes are consented delegated permissions, e.g. "IMAP.AccessAsUser.All", "SMTP.Send",
	// "offline_access"; qualified as Roles are.
	DelegatedScopes []string `json:"delegatedScopes,omitempty"`
	PublicClient    bool     `json:"publicClient,omitempty"` // "Allow public client flows"
	SingleTenant    bool     `json:"singleTenant,omitempty"` // AzureADMyOrg sign-in audience
	// TokenPadding adds a claim of that many bytes to its access tokens, to test multi-KB tokens.
	TokenPadding int `json:"tokenPadding,omitempty"`
}

// Secret is a client secret: Value is what the client sends, ID the "Secret ID" the portal also shows.
type Secret struct {
	ID      string    `json:"id"`
	Value   string    `json:"value"`
	Expires time.Time `json:"expires,omitzero"` // zero: never expires
}

// Certificate is a certificate credential: the public certificate in PEM form and its SHA-1
// thumbprint (hex, as the portal shows it; computed when omitted).
type Certificate struct {
	PEM        string `json:"pem"`
	Thumbprint string `json:"thumbprint,omitempty"`

	cert *x509.Certificate
}

// X509 returns the parsed certificate (nil before Validate).
func (c *Certificate) X509() *x509.Certificate { return c.cert }

// ServicePrincipal is an Exchange Online service principal (New-ServicePrincipal -AppId -ObjectId)
// and its mailbox permissions (Add-MailboxPermission FullAccess, Add-RecipientPermission SendAs).
type ServicePrincipal struct {
	AppID      string   `json:"appId"`
	ObjectID   string   `json:"objectId,omitempty"` // must equal the app's ObjectID; defaults to it
	FullAccess []string `json:"fullAccess,omitempty"`
	SendAs     []string `json:"sendAs,omitempty"`
}

// User is a member of a tenant (by the UPN's domain).
type User struct {
	UPN                      string `json:"upn"`
	ObjectID                 string `json:"objectId,omitempty"` // derived from the UPN when empty
	DisplayName              string `json:"displayName,omitempty"`
	Password                 string `json:"password"`
	MFA                      bool   `json:"mfa,omitempty"`
	Disabled                 bool   `json:"disabled,omitempty"`
	ConditionalAccessBlocked bool   `json:"conditionalAccessBlocked,omitempty"`
}

// Mailbox is an Exchange Online mailbox: a user's own (Owner set) or a shared mailbox.
type Mailbox struct {
	Address     string `json:"address"`
	DisplayName string `json:"displayName,omitempty"`
	Owner       string `json:"owner,omitempty"`       // UPN of the user whose mailbox it is
	IMAPEnabled *bool  `json:"imapEnabled,omitempty"` // default true
	// SMTPAuthEnabled is Set-CASMailbox -SmtpClientAuthenticationDisabled, inverted: nil inherits the
	// tenant's switch, and a mailbox setting takes precedence over the tenant's.
	SMTPAuthEnabled *bool    `json:"smtpAuthEnabled,omitempty"`
	FullAccess      []string `json:"fullAccess,omitempty"` // UPNs with FullAccess (besides the owner)
	SendAs          []string `json:"sendAs,omitempty"`     // UPNs with Send As (besides the owner)
	Folders         []string `json:"folders,omitempty"`    // extra folders to create
}

// IMAPOn reports whether IMAP is enabled on the mailbox.
func (m *Mailbox) IMAPOn() bool { return m.IMAPEnabled == nil || *m.IMAPEnabled }

// ValidationError lists everything wrong with a scenario.
type ValidationError struct {
	Problems []string
}

func (e *ValidationError) Error() string {
	return "scenario: invalid: " + strings.Join(e.Problems, "; ")
}

// Load reads, decodes and validates a scenario file.
func Load(path string) (*Scenario, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	s, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// Parse decodes and validates a scenario. Syntax and type errors carry line:column; unknown fields
// are refused.
func Parse(data []byte) (*Scenario, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var s Scenario
	if err := dec.Decode(&s); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return nil, fmt.Errorf("%s: %w", position(data, se.Offset), err)
		case errors.As(err, &te):
			return nil, fmt.Errorf("%s: %w", position(data, te.Offset), err)
		case errors.Is(err, io.EOF):
			return nil, fmt.Errorf("1:1: empty scenario: %w", err)
		default:
			off := dec.InputOffset()
			// "json: unknown field \"x\"" carries no offset: point at the field's first use as a key.
			if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
				key := regexp.MustCompile(regexp.QuoteMeta(name) + `\s*:`)
				if loc := key.FindIndex(data); loc != nil {
					off = int64(loc[0])
				}
			}
			return nil, fmt.Errorf("%s: %w", position(data, off), err)
		}
	}
	if dec.More() {
		return nil, fmt.Errorf("%s: unexpected data after the scenario object", position(data, dec.InputOffset()))
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

func position(data []byte, off int64) string {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	if off < 0 {
		off = 0
	}
	before := data[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	col := int(off) - bytes.LastIndexByte(before, '\n')
	return fmt.Sprintf("%d:%d", line, col)
}

var (
	dnsName = regexp.MustCompile(`^(?i)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$`)
	address = regexp.MustCompile(`^[^@\s]+@[^@\s]+$`)
)

// IsGUID reports whether s is a GUID in the 8-4-4-4-12 form.
func IsGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	_, err := uuid.Parse(s)
	return err == nil
}

// IsDNSName reports whether s looks like a DNS domain name with at least two labels.
func IsDNSName(s string) bool { return len(s) <= 253 && dnsName.MatchString(s) }

// DerivedID returns the deterministic GUID the scenario uses for an object without an explicit ID.
func DerivedID(kind, name string) string {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte("inkorg-emulator:"+kind+":"+strings.ToLower(name))).String()
}

// Validate checks references and formats, normalises case (addresses, domains and GUIDs lower-cased)
// and fills derived IDs. It reports every problem at once.
func (s *Scenario) Validate() error {
	var p []string
	add := func(format string, a ...any) { p = append(p, fmt.Sprintf(format, a...)) }

	if len(s.Tenants) == 0 {
		add("at least one tenant is required")
	}
	domains := map[string]string{}
	tenants := map[string]bool{}
	for i := range s.Tenants {
		t := &s.Tenants[i]
		t.ID = strings.ToLower(t.ID)
		if !IsGUID(t.ID) {
			add("tenants[%d].id %q is not a GUID", i, t.ID)
		}
		if tenants[t.ID] {
			add("tenants[%d].id %q is duplicated", i, t.ID)
		}
		tenants[t.ID] = true
		for j, d := range t.Domains {
			d = strings.ToLower(d)
			t.Domains[j] = d
			if !IsDNSName(d) {
				add("tenants[%d].domains[%d] %q is not a DNS name", i, j, d)
			}
			if _, dup := domains[d]; dup {
				add("tenants[%d].domains[%d] %q is verified in two tenants", i, j, d)
			}
			domains[d] = t.ID
		}
	}
	tenantOf := func(addr string) (string, bool) {
		at := strings.LastIndexByte(addr, '@')
		if at < 0 {
			return "", false
		}
		tid, ok := domains[addr[at+1:]]
		return tid, ok
	}

	apps := map[string]*App{}
	for i := range s.Apps {
		a := &s.Apps[i]
		a.ClientID = strings.ToLower(a.ClientID)
		if a.Name == "" {
			add("apps[%d].name is required", i)
		}
		if !IsGUID(a.ClientID) {
			add("apps[%d].clientId %q is not a GUID", i, a.ClientID)
		}
		if apps[a.ClientID] != nil {
			add("apps[%d].clientId %q is duplicated", i, a.ClientID)
		}
		apps[a.ClientID] = a
		a.TenantID = strings.ToLower(a.TenantID)
		if a.TenantID == "" && len(s.Tenants) == 1 {
			a.TenantID = s.Tenants[0].ID
		}
		if !tenants[a.TenantID] {
			add("apps[%d].tenantId %q is not a tenant of the scenario", i, a.TenantID)
		}
		a.ObjectID = strings.ToLower(a.ObjectID)
		if a.ObjectID == "" {
			a.ObjectID = DerivedID("serviceprincipal", a.ClientID)
		} else if !IsGUID(a.ObjectID) {
			add("apps[%d].objectId %q is not a GUID", i, a.ObjectID)
		}
		for j := range a.Secrets {
			sec := &a.Secrets[j]
			sec.ID = strings.ToLower(sec.ID)
			if !IsGUID(sec.ID) {
				add("apps[%d].secrets[%d].id %q is not a GUID (the Secret ID)", i, j, sec.ID)
			}
			if sec.Value == "" {
				add("apps[%d].secrets[%d].value is required", i, j)
			}
		}
		for j := range a.Certificates {
			c := &a.Certificates[j]
			block, _ := pem.Decode([]byte(c.PEM))
			if block == nil || block.Type != "CERTIFICATE" {
				add("apps[%d].certificates[%d].pem holds no PEM CERTIFICATE block", i, j)
				continue
			}
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				add("apps[%d].certificates[%d].pem: %v", i, j, err)
				continue
			}
			sum := sha1.Sum(cert.Raw)
			tp := strings.ToUpper(hex.EncodeToString(sum[:]))
			if c.Thumbprint == "" {
				c.Thumbprint = tp
			} else if !strings.EqualFold(c.Thumbprint, tp) {
				add("apps[%d].certificates[%d].thumbprint %q does not match the certificate (%s)", i, j, c.Thumbprint, tp)
			}
			c.cert = cert
		}
		for j, r := range a.Roles {
			if r == "" {
				add("apps[%d].roles[%d] is empty", i, j)
			}
		}
		for j, r := range a.DelegatedScopes {
			if r == "" {
				add("apps[%d].delegatedScopes[%d] is empty", i, j)
			}
		}
		if a.TokenPadding < 0 || a.TokenPadding > 64<<10 {
			add("apps[%d].tokenPadding %d is outside 0..65536", i, a.TokenPadding)
		}
	}

	users := map[string]bool{}
	for i := range s.Users {
		u := &s.Users[i]
		u.UPN = strings.ToLower(u.UPN)
		if !address.MatchString(u.UPN) {
			add("users[%d].upn %q is not user@domain", i, u.UPN)
		} else if _, ok := tenantOf(u.UPN); !ok {
			add("users[%d].upn %q is not in a verified domain of any tenant", i, u.UPN)
		}
		if users[u.UPN] {
			add("users[%d].upn %q is duplicated", i, u.UPN)
		}
		users[u.UPN] = true
		u.ObjectID = strings.ToLower(u.ObjectID)
		if u.ObjectID == "" {
			u.ObjectID = DerivedID("user", u.UPN)
		} else if !IsGUID(u.ObjectID) {
			add("users[%d].objectId %q is not a GUID", i, u.ObjectID)
		}
		if u.Password == "" {
			add("users[%d].password is required", i)
		}
	}

	mailboxes := map[string]bool{}
	for i := range s.Mailboxes {
		m := &s.Mailboxes[i]
		m.Address = strings.ToLower(m.Address)
		if !address.MatchString(m.Address) {
			add("mailboxes[%d].address %q is not user@domain", i, m.Address)
		} else if _, ok := tenantOf(m.Address); !ok {
			add("mailboxes[%d].address %q is not in a verified domain of any tenant", i, m.Address)
		}
		if mailboxes[m.Address] {
			add("mailboxes[%d].address %q is duplicated", i, m.Address)
		}
		mailboxes[m.Address] = true
		m.Owner = strings.ToLower(m.Owner)
		if m.Owner != "" && !users[m.Owner] {
			add("mailboxes[%d].owner %q is not a user of the scenario", i, m.Owner)
		}
		for j := range m.FullAccess {
			m.FullAccess[j] = strings.ToLower(m.FullAccess[j])
			if !users[m.FullAccess[j]] {
				add("mailboxes[%d].fullAccess[%d] %q is not a user of the scenario", i, j, m.FullAccess[j])
			}
		}
		for j := range m.SendAs {
			m.SendAs[j] = strings.ToLower(m.SendAs[j])
			if !users[m.SendAs[j]] {
				add("mailboxes[%d].sendAs[%d] %q is not a user of the scenario", i, j, m.SendAs[j])
			}
		}
		for j, f := range m.Folders {
			if f == "" || strings.EqualFold(f, "INBOX") {
				add("mailboxes[%d].folders[%d] %q: folder names must be non-empty and not INBOX", i, j, f)
			}
		}
	}

	sps := map[string]bool{}
	for i := range s.ServicePrincipals {
		sp := &s.ServicePrincipals[i]
		sp.AppID = strings.ToLower(sp.AppID)
		a := apps[sp.AppID]
		if a == nil {
			add("servicePrincipals[%d].appId %q is not an app of the scenario", i, sp.AppID)
		}
		if sps[sp.AppID] {
			add("servicePrincipals[%d].appId %q is duplicated", i, sp.AppID)
		}
		sps[sp.AppID] = true
		sp.ObjectID = strings.ToLower(sp.ObjectID)
		if sp.ObjectID == "" && a != nil {
			sp.ObjectID = a.ObjectID
		} else if sp.ObjectID != "" && !IsGUID(sp.ObjectID) {
			add("servicePrincipals[%d].objectId %q is not a GUID", i, sp.ObjectID)
		}
		for _, list := range []struct {
			name string
			v    []string
		}{{"fullAccess", sp.FullAccess}, {"sendAs", sp.SendAs}} {
			for j := range list.v {
				list.v[j] = strings.ToLower(list.v[j])
				if list.v[j] != All && !mailboxes[list.v[j]] {
					add("servicePrincipals[%d].%s[%d] %q is not a mailbox of the scenario (or %q)", i, list.name, j, list.v[j], All)
				}
			}
		}
	}
	if len(p) > 0 {
		return &ValidationError{Problems: p}
	}
	return nil
}

// Tenant returns the tenant with the given ID or verified domain (case-insensitive).
func (s *Scenario) Tenant(idOrDomain string) (*Tenant, bool) {
	k := strings.ToLower(idOrDomain)
	for i := range s.Tenants {
		t := &s.Tenants[i]
		if t.ID == k || slices.Contains(t.Domains, k) {
			return t, true
		}
	}
	return nil, false
}

// TenantOfAddress returns the tenant whose verified domain the address is in.
func (s *Scenario) TenantOfAddress(addr string) (*Tenant, bool) {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return nil, false
	}
	for i := range s.Tenants {
		if slices.Contains(s.Tenants[i].Domains, strings.ToLower(addr[at+1:])) {
			return &s.Tenants[i], true
		}
	}
	return nil, false
}

// App returns the app with the given client ID.
func (s *Scenario) App(clientID string) (*App, bool) {
	k := strings.ToLower(clientID)
	for i := range s.Apps {
		if s.Apps[i].ClientID == k {
			return &s.Apps[i], true
		}
	}
	return nil, false
}

// User returns the user with the given UPN.
func (s *Scenario) User(upn string) (*User, bool) {
	k := strings.ToLower(upn)
	for i := range s.Users {
		if s.Users[i].UPN == k {
			return &s.Users[i], true
		}
	}
	return nil, false
}

// Mailbox returns the mailbox with the given address.
func (s *Scenario) Mailbox(addr string) (*Mailbox, bool) {
	k := strings.ToLower(addr)
	for i := range s.Mailboxes {
		if s.Mailboxes[i].Address == k {
			return &s.Mailboxes[i], true
		}
	}
	return nil, false
}

// ServicePrincipal returns the Exchange service principal registered for an app.
func (s *Scenario) ServicePrincipal(appID string) (*ServicePrincipal, bool) {
	k := strings.ToLower(appID)
	for i := range s.ServicePrincipals {
		if s.ServicePrincipals[i].AppID == k {
			return &s.ServicePrincipals[i], true
		}
	}
	return nil, false
}

// SMTPAuthEnabled reports whether SMTP AUTH is allowed for the mailbox: the mailbox's own setting if
// it has one, else the tenant's.
func (s *Scenario) SMTPAuthEnabled(m *Mailbox) bool {
	if m.SMTPAuthEnabled != nil {
		return *m.SMTPAuthEnabled
	}
	if t, ok := s.TenantOfAddress(m.Address); ok {
		return !t.SMTPAuthDisabled
	}
	return true
}

// HasFullAccess reports whether the user (UPN) may open the mailbox: its owner or a FullAccess trustee.
func (m *Mailbox) HasFullAccess(upn string) bool {
	upn = strings.ToLower(upn)
	return m.Owner == upn || slices.Contains(m.FullAccess, upn)
}

// CanSendAs reports whether the user (UPN) may send as the mailbox: its owner or a SendAs trustee.
func (m *Mailbox) CanSendAs(upn string) bool {
	upn = strings.ToLower(upn)
	return m.Owner == upn || slices.Contains(m.SendAs, upn)
}

// HasFullAccess reports whether the service principal holds FullAccess on the mailbox.
func (sp *ServicePrincipal) HasFullAccess(addr string) bool {
	return slices.Contains(sp.FullAccess, All) || slices.Contains(sp.FullAccess, strings.ToLower(addr))
}

// CanSendAs reports whether the service principal holds Send As on the mailbox.
func (sp *ServicePrincipal) CanSendAs(addr string) bool {
	return slices.Contains(sp.SendAs, All) || slices.Contains(sp.SendAs, strings.ToLower(addr))
}

// Permission is one role or scope split into its resource and name.
type Permission struct {
	Resource string // ResourceExchange, ResourceGraph or another App ID URI; "" for OIDC scopes
	Name     string
}

// SplitPermission maps a role or scope as written in a scenario to its resource: qualified names keep
// theirs (outlook.office.com and ps.outlook.com are Exchange too), bare IMAP/POP/SMTP/EWS names are
// Exchange's, openid/profile/email/offline_access are OIDC scopes, everything else is Graph's.
func SplitPermission(p string) Permission {
	if i := strings.LastIndexByte(p, '/'); i > 0 && strings.Contains(p, "://") {
		return Permission{Resource: CanonicalResource(p[:i]), Name: p[i+1:]}
	}
	switch strings.ToLower(p) {
	case "openid", "profile", "email", "offline_access":
		return Permission{Name: strings.ToLower(p)}
	}
	up := strings.ToUpper(p)
	if strings.HasPrefix(up, "IMAP.") || strings.HasPrefix(up, "POP.") || strings.HasPrefix(up, "SMTP.") ||
		strings.HasPrefix(up, "EWS.") || strings.EqualFold(p, "full_access_as_app") {
		return Permission{Resource: ResourceExchange, Name: p}
	}
	return Permission{Resource: ResourceGraph, Name: p}
}

// CanonicalResource maps the App ID URIs and app IDs of Exchange Online and Graph to ResourceExchange
// and ResourceGraph; others are returned without a trailing slash.
func CanonicalResource(r string) string {
	r = strings.TrimSuffix(strings.ToLower(r), "/")
	switch r {
	case "https://outlook.office365.com", "https://outlook.office.com", "https://ps.outlook.com",
		"00000002-0000-0ff1-ce00-000000000000":
		return ResourceExchange
	case "https://graph.microsoft.com", "00000003-0000-0000-c000-000000000000":
		return ResourceGraph
	}
	return r
}

// RolesFor returns the app's consented application permissions on a resource.
func (a *App) RolesFor(resource string) []string {
	return permsFor(a.Roles, resource)
}

// ScopesFor returns the app's consented delegated permissions on a resource.
func (a *App) ScopesFor(resource string) []string {
	return permsFor(a.DelegatedScopes, resource)
}

func permsFor(list []string, resource string) []string {
	resource = CanonicalResource(resource)
	var out []string
	for _, p := range list {
		sp := SplitPermission(p)
		if sp.Resource == resource && !slices.Contains(out, sp.Name) {
			out = append(out, sp.Name)
		}
	}
	return out
}

// HomeTenant returns the app's home tenant.
func (s *Scenario) HomeTenant(a *App) *Tenant {
	t, _ := s.Tenant(a.TenantID)
	return t
}
