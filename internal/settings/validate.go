package settings

import (
	"fmt"
	"net/mail"
	"regexp"
	"slices"
	"strings"
)

// Severity says whether a problem stops the configuration from working (error) or only needs
// attention soon (warning).
type Severity string

// The severities.
const (
	SeverityError   Severity = "error"
	SeverityWarning Severity = "warning"
)

// Problem is one thing wrong with the settings, addressed by a field path such as "system.clientId",
// "users[WEBSHOP].exchangePassword" or "incoming[m2m@contoso.example].type", in words an ERP
// administrator understands, with what to do about it.
type Problem struct {
	Path     string   `json:"path"`
	Message  string   `json:"message"`
	Severity Severity `json:"severity"`
}

func (p Problem) String() string { return fmt.Sprintf("%s: %s: %s", p.Severity, p.Path, p.Message) }

// Problems is a list of problems; the zero value is "no problems".
type Problems []Problem

// HasErrors reports whether any problem is an error.
func (ps Problems) HasErrors() bool {
	return slices.ContainsFunc(ps, func(p Problem) bool { return p.Severity == SeverityError })
}

// Errors returns the problems that are errors.
func (ps Problems) Errors() Problems { return ps.only(SeverityError) }

// Warnings returns the problems that are warnings.
func (ps Problems) Warnings() Problems { return ps.only(SeverityWarning) }

func (ps Problems) only(s Severity) Problems {
	var out Problems
	for _, p := range ps {
		if p.Severity == s {
			out = append(out, p)
		}
	}
	return out
}

// Error makes Problems usable as an error: one problem per line.
func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

func (ps *Problems) add(sev Severity, path, format string, args ...any) {
	*ps = append(*ps, Problem{Path: path, Message: fmt.Sprintf(format, args...), Severity: sev})
}
func (ps *Problems) err(path, format string, args ...any) {
	ps.add(SeverityError, path, format, args...)
}
func (ps *Problems) warn(path, format string, args ...any) {
	ps.add(SeverityWarning, path, format, args...)
}

var (
	guidRE   = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	domainRE = regexp.MustCompile(`^(?i)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$`)
	hostRE   = regexp.MustCompile(`^(?i)[a-z0-9]([a-z0-9.-]{0,252}[a-z0-9])?$`)
)

// consumerTenant is the tenant of personal Microsoft accounts, which has no Exchange Online.
const consumerTenant = "9188040d-6c67-4c5b-b112-36a304b66dad"

// ExpiryWarningDays is how long before a client secret's (or certificate's) expiry validation starts
// to warn; ExpiryReminders are the days on which a reminder is due (30, 14 and 7 days before).
const ExpiryWarningDays = 30

// ExpiryReminders are the reminder thresholds, largest first.
var ExpiryReminders = []int{30, 14, 7}

// ExpiryReminder is the reminder threshold a secret expiring in days falls under (30, 14 or 7), or 0
// when no reminder is due yet (or it has expired, which is an error, not a reminder).
func ExpiryReminder(days int) int {
	r := 0
	for _, t := range ExpiryReminders {
		if days >= 0 && days <= t {
			r = t
		}
	}
	return r
}

// IsGUID reports whether s has the shape of a GUID.
func IsGUID(s string) bool { return guidRE.MatchString(s) }

func checkClientID(ps *Problems, path, v string) {
	if v != "" && !IsGUID(v) {
		ps.err(path, "the Application (client) ID is a GUID such as 11111111-2222-3333-4444-555555555555; copy it from the app registration's Overview page in Microsoft Entra ID")
	}
}

func checkTenantID(ps *Problems, path, v string) {
	switch l := strings.ToLower(v); {
	case v == "":
	case l == "common" || l == "organizations":
		ps.err(path, "%q is not a directory but Microsoft's multi-tenant sign-in endpoint, which Exchange Online's app-only and User name/Password sign-ins refuse; copy Directory (tenant) ID from the app registration's Overview page", v)
	case l == "consumers" || l == consumerTenant:
		ps.err(path, "%q is the directory of personal Microsoft accounts, which have no Exchange Online; copy Directory (tenant) ID from the app registration's Overview page", v)
	case !IsGUID(v) && !domainRE.MatchString(v):
		ps.err(path, "the Directory (tenant) ID is a GUID such as 11111111-2222-3333-4444-555555555555 or one of the organisation's verified domains such as contoso.onmicrosoft.com")
	}
}

func checkClientSecret(ps *Problems, path string, s Secret, clientID string) {
	v := s.Reveal()
	switch {
	case !s.IsSet():
	case IsGUID(strings.TrimSpace(v)):
		ps.err(path, "this looks like the Secret ID — paste the secret's Value (Entra ID shows the Value only once, right after the secret is created; if it is gone, create a new secret)")
	case clientID != "" && strings.EqualFold(v, clientID):
		ps.err(path, "this is the Application (client) ID, not a client secret — paste the secret's Value from Certificates & secrets")
	case strings.ContainsAny(v, "\r\n\t "):
		ps.err(path, "the client secret contains spaces or line breaks; paste the Value alone")
	}
}

func checkExpiry(ps *Problems, path string, d Date, today Date) {
	if d.IsZero() || today.IsZero() {
		return
	}
	switch n := d.DaysFrom(today); {
	case n < 0:
		ps.err(path, "the client secret expired on %s: create a new client secret in Microsoft Entra ID (Certificates & secrets), paste its Value and its new expiry date", d)
	case n == 0:
		ps.warn(path, "the client secret expires today (%s): create a new client secret in Microsoft Entra ID now and paste its Value", d)
	case n <= 7:
		ps.warn(path, "the client secret expires on %s, in %d days — mail stops then: create a new client secret in Microsoft Entra ID now and paste its Value", d, n)
	case n <= ExpiryWarningDays:
		ps.warn(path, "the client secret expires on %s, in %d days: create a new client secret in Microsoft Entra ID before then and paste its Value", d, n)
	}
}

func checkAddress(ps *Problems, path, v string) {
	if v == "" {
		return
	}
	a, err := mail.ParseAddress(v)
	if err != nil || a.Address != v || !strings.Contains(v[strings.LastIndexByte(v, '@')+1:], ".") {
		ps.err(path, "%q is not an e-mail address; write it as name@example.com, without a display name or brackets", v)
	}
}

func checkServerAddress(ps *Problems, path, v string) {
	switch {
	case v == "":
	case strings.Contains(v, "://"):
		ps.err(path, "give the server's host name only, without %q", v[:strings.Index(v, "://")+3])
	case strings.Contains(v, ":"):
		ps.err(path, "give the server's host name only; put the port number in Port")
	case !hostRE.MatchString(v):
		ps.err(path, "%q is not a host name or IP address", v)
	}
}

func checkPort(ps *Problems, path string, p int) {
	if p < 0 || p > 65535 {
		ps.err(path, "the port must be between 0 and 65535 (0 means the standard port)")
	}
}

func checkMethod(ps *Problems, path string, m EmailMethod) {
	if m != "" && !m.Valid() {
		ps.err(path, "unknown e-mail method %q; choose %s", m, choices(EmailMethods()))
	}
}

func checkFlow(ps *Problems, path string, f AuthFlow) {
	if f != "" && !f.Valid() {
		ps.err(path, "unknown authentication flow %q; choose %s", f, choices(AuthFlows()))
	}
}

// notApplicable reports a field given for a method or flow that does not use it: the flow's fault
// when another flow of the same method would use it, else the method's.
func notApplicable(ps *Problems, path, field string, u uses) {
	label := FieldLabel(field)
	byFlow := false
	for _, f := range AuthFlows() {
		byFlow = byFlow || FieldApplies(u.method, f, field)
	}
	switch {
	case u.method == "":
		ps.err(path, "%s does not apply until an e-mail method is chosen", label)
	case byFlow && u.flow == "":
		ps.err(path, "%s does not apply until an authentication flow is chosen", label)
	case byFlow && (field == "exchangeUsername" || field == "exchangePassword"):
		ps.err(path, "%s is not used with the authentication flow %s: the application reads and sends with its own permission (the seeds disable this field)", label, u.flow.Label())
	case byFlow:
		ps.err(path, "%s is not used with the authentication flow %s; choose the flow that uses it, or leave it empty", label, u.flow.Label())
	default:
		ps.err(path, "%s does not apply to the e-mail method %q (%s)", label, u.method.Label(), u.method)
	}
}

// checkApplies refuses each changed field that the method and flow do not use.
func checkApplies(ps *Problems, prefix string, u uses, changed []string) {
	for _, f := range changed {
		if !FieldApplies(u.method, u.flow, f) {
			notApplicable(ps, prefix+f, f, u)
		}
	}
}

// CheckSystem checks the values of system settings s: the format of every value that is set and,
// for the fields named in changed (JSON names), that the chosen method and flow use them. A set with
// any of these problems is refused.
func CheckSystem(s System, changed []string) Problems {
	var ps Problems
	const p = "system."
	if s.EmailMethod != "" && !s.EmailMethod.Valid() {
		checkMethod(&ps, p+"emailMethod", s.EmailMethod)
	}
	checkServerAddress(&ps, p+"serverAddress", s.ServerAddress)
	checkPort(&ps, p+"port", s.Port)
	checkClientID(&ps, p+"clientId", s.ClientID)
	checkTenantID(&ps, p+"tenantId", s.TenantID)
	checkFlow(&ps, p+"authFlow", s.AuthFlow)
	checkClientSecret(&ps, p+"clientSecret", s.ClientSecret, s.ClientID)
	checkCertificate(&ps, p, s.ClientCertificate, s.ClientKey)
	if !s.SendTransport.Valid() {
		ps.err(p+"sendTransport", "unknown transport %q for Send with; choose %s", s.SendTransport, choices(SendTransports()))
	}

	checkApplies(&ps, p, uses{method: s.EmailMethod, flow: s.AuthFlow}, changed)
	return ps
}

// UserPath is the field path prefix of a user.
func UserPath(name string) string { return "users[" + name + "]." }

// AccountPath is the field path prefix of an incoming account.
func AccountPath(address string) string { return "incoming[" + address + "]." }

// CheckUser checks user u's overrides against system settings s, as CheckSystem does.
func CheckUser(s System, u User, changed []string) Problems {
	var ps Problems
	p := UserPath(u.Name)
	if strings.TrimSpace(u.Name) == "" {
		ps.err("users[].name", "a user needs a name")
	}
	if u.EmailMethod != nil {
		if *u.EmailMethod == "" {
			ps.err(p+"emailMethod", "choose %s, or inherit the system setting", choices(EmailMethods()))
		}
		checkMethod(&ps, p+"emailMethod", *u.EmailMethod)
	}
	if u.EmailAddress != nil {
		checkAddress(&ps, p+"emailAddress", *u.EmailAddress)
	}
	if u.CopyToSelf != nil && !u.CopyToSelf.Valid() {
		ps.err(p+"copyToSelf", "unknown choice %q; choose %s", *u.CopyToSelf, choices([]CopyToSelf{CopyNone, CopyCc, CopyBcc}))
	}
	e := ResolveUser(s, u)
	checkApplies(&ps, p, uses{method: e.EmailMethod.Value, flow: e.AuthFlow.Value}, changed)
	return ps
}

// CheckAccount checks incoming account a against system settings s, as CheckSystem does.
func CheckAccount(s System, a IncomingAccount, changed []string) Problems {
	var ps Problems
	p := AccountPath(a.Address)
	if a.Address == "" {
		ps.err(p+"address", "an incoming e-mail account needs its e-mail address")
	}
	checkAddress(&ps, p+"address", a.Address)
	switch {
	case a.Type == "":
		ps.err(p+"type", "choose the account's type: %s", choices(IncomingTypes()))
	case !a.Type.Valid():
		ps.err(p+"type", "unknown type %q; choose %s", a.Type, choices(IncomingTypes()))
	}
	for _, f := range []struct{ name, v string }{{"folder", a.Folder}, {"processedFolder", a.ProcessedFolder}, {"failedFolder", a.FailedFolder}} {
		if strings.ContainsAny(f.v, "\r\n\x00*%\"") {
			ps.err(p+f.name, "a folder name cannot hold line breaks or the characters * %% \"")
		}
	}
	folder, processed, failed := orDefault(a.Folder, DefaultFolder).Value, orDefault(a.ProcessedFolder, DefaultProcessedFolder).Value, orDefault(a.FailedFolder, DefaultFailedFolder).Value
	switch {
	case !a.LeaveInPlace && strings.EqualFold(processed, folder):
		ps.err(p+"processedFolder", "the folder for processed mail must differ from the folder read (%s), or choose to leave mail in place", folder)
	case strings.EqualFold(failed, folder):
		ps.err(p+"failedFolder", "the folder for failed mail must differ from the folder read (%s)", folder)
	}
	if a.PollInterval != 0 && a.PollInterval < MinPollInterval {
		ps.err(p+"pollInterval", "poll at most every %s: Exchange throttles clients that look more often", MinPollInterval)
	}
	for i, n := range a.AvailableTo {
		if strings.TrimSpace(n) == "" {
			ps.err(fmt.Sprintf("%savailableTo[%d]", p, i), "an empty user or role name")
		}
	}
	if a.ClientID != nil {
		checkClientID(&ps, p+"clientId", *a.ClientID)
	}
	if a.TenantID != nil {
		checkTenantID(&ps, p+"tenantId", *a.TenantID)
	}
	if a.AuthFlow != nil {
		checkFlow(&ps, p+"authFlow", *a.AuthFlow)
	}
	e := ResolveAccount(s, a)
	if a.ClientSecret != nil {
		checkClientSecret(&ps, p+"clientSecret", *a.ClientSecret, e.ClientID.Value)
	}
	checkApplies(&ps, p, uses{method: s.EmailMethod, flow: e.AuthFlow.Value}, changed)
	return ps
}

// CheckWebshop checks Webshop – Administration's settings.
func CheckWebshop(w Webshop) Problems {
	var ps Problems
	if !w.EmailMethod.Valid() {
		ps.err("webshop.emailMethod", "unknown e-mail method %q; the webshop's e-mail method is %q (According to user settings)", w.EmailMethod, WebshopAccordingToUserSettings)
	}
	return ps
}

// Validate checks all settings at once: every value, and whether the procedures together are
// complete (for example, the user WEBSHOP has the Exchange password the User name/Password flow needs).
// today decides whether client secrets have expired or will soon.
func Validate(c Config, today Date) Problems {
	ps := CheckSystem(c.System, nil)
	s := c.System
	use := uses{method: s.EmailMethod, flow: s.AuthFlow}
	switch {
	case s.EmailMethod == "":
		ps.err("system.emailMethod", "choose an e-mail method: %s", choices(EmailMethods()))
	case use.server():
		if s.ServerAddress == "" {
			ps.err("system.serverAddress", "the e-mail method %q needs the mail server's address", s.EmailMethod.Label())
		}
	case use.oauth():
		requireExchange(&ps, "system.", ResolveUser(s, User{}).Exchange, s, today)
	}

	for _, u := range c.Users {
		ps = append(ps, CheckUser(s, u, nil)...)
		if !(u.IsWebshop() && c.Webshop.EmailMethod == WebshopAccordingToUserSettings) {
			validateSender(&ps, s, u, "") // the webshop's check below covers WEBSHOP
		}
	}

	if c.Webshop.EmailMethod == WebshopAccordingToUserSettings {
		u, ok := c.User(WebshopUser)
		if !ok {
			ps.err(UserPath(WebshopUser)+"emailMethod", "the webshop sends according to user settings, so the user WEBSHOP needs e-mail settings: at least its e-mail address%s", webshopNeeds(s))
		}
		if !ok {
			u = User{Name: WebshopUser}
		}
		validateSender(&ps, s, u, "the webshop sends according to the user settings of WEBSHOP")
	}
	ps = append(ps, CheckWebshop(c.Webshop)...)

	seen := map[string]bool{}
	for _, a := range c.Accounts {
		p := AccountPath(a.Address)
		ps = append(ps, CheckAccount(s, a, nil)...)
		if k := strings.ToLower(a.Address); seen[k] {
			ps.err(p+"address", "the address is registered twice")
		} else {
			seen[k] = true
		}
		e := ResolveAccount(s, a)
		use := uses{method: s.EmailMethod, flow: e.AuthFlow.Value}
		switch {
		case s.EmailMethod == MethodOutlookClient:
			ps.err(p+"emailMethod", "incoming e-mail is read by the server, but the system e-mail method is %q; choose a server-based method", s.EmailMethod.Label())
		case use.oauth():
			if a.ClientID != nil || a.TenantID != nil || a.AuthFlow != nil || a.ClientSecret != nil || a.ClientSecretExpires != nil {
				requireExchange(&ps, p, e.Exchange, s, today)
			}
		}
		if use.exchangeCredentials() {
			if e.ExchangeUsername.Value == "" {
				ps.err(p+"exchangeUsername", "%s needs the mailbox's User name (Exchange)", describe(use))
			}
			if !e.ExchangePassword.Value.IsSet() {
				ps.err(p+"exchangePassword", "%s needs the mailbox's Password (Exchange)", describe(use))
			}
		}
	}
	return ps
}

func webshopNeeds(s System) string {
	if s.EmailMethod == MethodExchangeOnline && s.AuthFlow == FlowUsernamePassword {
		return ", and User name (Exchange) and Password (Exchange) for the flow User name/Password"
	}
	return ""
}

func describe(u uses) string {
	if u.oauth() {
		return "the authentication flow User name/Password"
	}
	return fmt.Sprintf("the e-mail method %q", u.method.Label())
}

// requireExchange reports the missing Exchange Online values of a system or account, and the secret's expiry.
func requireExchange(ps *Problems, p string, e Exchange, s System, today Date) {
	if e.ClientID.Value == "" {
		ps.err(p+"clientId", "Exchange Online needs the Application (client) ID of the app registered in Microsoft Entra ID")
	}
	if e.TenantID.Value == "" {
		ps.err(p+"tenantId", "Exchange Online needs the Directory (tenant) ID of the organisation")
	}
	switch e.AuthFlow.Value {
	case "":
		ps.err(p+"authFlow", "choose the authentication flow: %s", choices(AuthFlows()))
	case FlowClientSecret:
		if !e.ClientSecret.Value.IsSet() {
			ps.err(p+"clientSecret", "the authentication flow Client secret needs the client secret's Value from Microsoft Entra ID (Certificates & secrets)")
		}
		checkExpiry(ps, p+"clientSecretExpires", e.ClientSecretExpires.Value, today)
	case FlowCertificate:
		if s.ClientCertificate == "" {
			ps.err("system.clientCertificate", "the authentication flow Certificate needs the certificate uploaded to the app registration (PEM)")
		}
		if !s.ClientKey.IsSet() {
			ps.err("system.clientKey", "the authentication flow Certificate needs the certificate's private key (PEM)")
		}
		checkCertificateExpiry(ps, "system.", s.ClientCertificate, today)
	}
}

// validateSender checks that a user who sends mail has what the effective method and flow need.
// why, when set, says why this user must be able to send (the webshop).
func validateSender(ps *Problems, s System, u User, why string) {
	e := ResolveUser(s, u)
	p := UserPath(u.Name)
	because := ""
	if why != "" {
		because = " (" + why + ")"
	}
	use := uses{method: e.EmailMethod.Value, flow: e.AuthFlow.Value}
	if why != "" {
		if e.EmailMethod.Value == MethodOutlookClient {
			ps.err(p+"emailMethod", "the webshop runs on the server and cannot hand its mail to Outlook; set the e-mail method of WEBSHOP to %q", MethodExchangeOnline.Label())
		}
		if e.EmailAddress.Value == "" {
			ps.err(p+"emailAddress", "WEBSHOP needs the e-mail address the webshop's mail is sent from%s", because)
		}
	}
	if use.oauth() && use.flow == FlowUsernamePassword {
		if e.ExchangeUsername.Value == "" {
			ps.err(p+"exchangeUsername", "the authentication flow User name/Password needs this user's User name (Exchange)%s", because)
		}
		if !e.ExchangePassword.Value.IsSet() {
			ps.err(p+"exchangePassword", "the authentication flow User name/Password needs this user's Password (Exchange)%s", because)
		}
	}
}
