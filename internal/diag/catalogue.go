package diag

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// Facts are the IDs a remedy names, so that an administrator can copy a line and run it.
type Facts struct {
	Authority          string // https://login.microsoftonline.com (or the cloud file's)
	TenantID           string
	ClientID           string
	AppOnly            bool   // the Client secret / certificate flows; false for User name/Password
	Mailbox            string // the mailbox being opened (XOAUTH2 user=)
	Username           string // User name (Exchange), for User name/Password
	ServicePrincipalID string // the app's Enterprise-application object id (an app-only token's oid)
	SecretExpires      string // the client secret's expiry date, YYYY-MM-DD, when known
	From               string // the From address of a send
}

// ConsentURL is the admin-consent link for the app in the tenant.
func (f Facts) ConsentURL() string {
	auth := f.Authority
	if auth == "" {
		auth = "https://login.microsoftonline.com"
	}
	return fmt.Sprintf("%s/%s/adminconsent?client_id=%s", auth, url.PathEscape(or(f.TenantID, "<tenant>")), url.QueryEscape(or(f.ClientID, "<client id>")))
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (f Facts) sp() string {
	return or(f.ServicePrincipalID, "<Object ID of the Enterprise application (not of the App registration)>")
}

func (f Facts) mailbox() string { return or(f.Mailbox, "<mailbox>") }

// servicePrincipalActions are the Exchange Online PowerShell lines that let an app open a mailbox.
func (f Facts) servicePrincipalActions() []string {
	return []string{
		fmt.Sprintf("Connect-ExchangeOnline -Organization %s", or(f.TenantID, "<tenant>")),
		fmt.Sprintf("New-ServicePrincipal -AppId %s -ObjectId %s", or(f.ClientID, "<client id>"), f.sp()),
		fmt.Sprintf("Add-MailboxPermission -Identity \"%s\" -User %s -AccessRights FullAccess", f.mailbox(), f.sp()),
	}
}

// entraBody is Entra ID's error JSON.
type entraBody struct {
	Error         string `json:"error"`
	Description   string `json:"error_description"`
	Codes         []int  `json:"error_codes"`
	TraceID       string `json:"trace_id"`
	CorrelationID string `json:"correlation_id"`
	SubError      string `json:"suberror"`
}

var aadstsRE = regexp.MustCompile(`AADSTS(\d+)`)

// FromEntra turns a failed token request (HTTP status and body) into an Error with its remedy.
func FromEntra(status int, body []byte, f Facts) *Error {
	var b entraBody
	jsonErr := json.Unmarshal(body, &b)
	e := &Error{Stage: StageToken, Kind: KindConfig, OAuth: b.Error, TraceID: b.TraceID, CorrelationID: b.CorrelationID}
	if len(b.Codes) > 0 {
		e.AADSTS = b.Codes[0]
	} else if m := aadstsRE.FindStringSubmatch(b.Description); m != nil {
		e.AADSTS, _ = strconv.Atoi(m[1])
	}
	// The server's words: the description's first line (the rest is the trace and timestamp).
	e.Server = strings.TrimSpace(strings.SplitN(strings.ReplaceAll(b.Description, "\r\n", "\n"), "\n", 2)[0])
	if i := strings.Index(e.Server, " Trace ID:"); i > 0 {
		e.Server = e.Server[:i]
	}
	switch {
	case jsonErr != nil || (b.Error == "" && e.AADSTS == 0):
		e.Code = fmt.Sprintf("HTTP %d", status)
		e.Server = strings.TrimSpace(string(body))
		if len(e.Server) > 300 {
			e.Server = e.Server[:300] + "…"
		}
		if status >= 500 || status == 429 || status == 0 {
			e.Kind, e.Summary, e.Remedy = KindTransient, "Microsoft Entra ID is not answering properly", "inkorg retries by itself; if it lasts, check https://status.cloud.microsoft"
		} else {
			e.Summary, e.Remedy = "the token endpoint gave an answer inkorg does not understand", "check the Directory (tenant) ID and, with a cloud file, the authority address"
		}
		return e
	}
	e.Code = fmt.Sprintf("AADSTS%d", e.AADSTS)
	app := or(f.ClientID, "the app")
	user := or(f.Username, "the account")
	switch e.AADSTS {
	case 7000215:
		e.Summary = "the client secret is wrong"
		e.Remedy = "paste the secret's Value — not its Secret ID — from Entra ID › App registrations › " + app + " › Certificates & secrets; if the Value is no longer shown, create a new client secret"
	case 7000222:
		e.Summary = "the client secret has expired"
		if f.SecretExpires != "" {
			e.Summary = "the client secret expired on " + f.SecretExpires
		}
		e.Remedy = "create a new client secret in Entra ID › App registrations › " + app + " › Certificates & secrets, paste its Value and its expiry date (inkorg settings system set --client-secret-file - --client-secret-expires YYYY-MM-DD)"
	case 700016:
		e.Summary = fmt.Sprintf("no application with the Application (client) ID %s exists in the directory %s", or(f.ClientID, "?"), or(f.TenantID, "?"))
		e.Remedy = "copy both IDs again from the Overview page of the app registration; the app must be registered in this organisation's directory"
	case 90002, 90033:
		e.Summary = fmt.Sprintf("the directory (tenant) %s does not exist", or(f.TenantID, "?"))
		e.Remedy = "copy the Directory (tenant) ID from the Overview page of the app registration"
	case 900023:
		e.Summary = fmt.Sprintf("%q is not a valid Directory (tenant) ID", f.TenantID)
		e.Remedy = "use the tenant's GUID or one of its verified domains, such as contoso.onmicrosoft.com"
	case 50194, 9001023:
		e.Summary = "the sign-in went to a multi-tenant endpoint (common) instead of the organisation's own directory"
		e.Remedy = "set Directory (tenant) ID to the organisation's tenant GUID or verified domain"
	case 50126:
		e.Summary = "the User name (Exchange) or Password (Exchange) of " + user + " is wrong"
		e.Remedy = "enter the account's current password; accounts federated to on-premises AD FS cannot use the User name/Password flow — use Client secret instead"
	case 50034:
		e.Summary = "the account " + user + " does not exist in the directory " + or(f.TenantID, "")
		e.Remedy = "check User name (Exchange): it is the account's sign-in name (user principal name), e.g. name@contoso.com"
	case 50057:
		e.Summary = "the account " + user + " is disabled"
		e.Remedy = "enable the account in Entra ID › Users, or enter another account"
	case 50053:
		e.Summary = "the account " + user + " is locked after too many failed sign-ins"
		e.Remedy = "wait for the lock to expire or ask the tenant administrator to unlock it, then enter the right password"
	case 50055:
		e.Summary = "the password of " + user + " has expired"
		e.Remedy = "change the password (sign in once at https://portal.office.com) and enter the new one as Password (Exchange)"
	case 50076, 50079:
		e.Summary = "the account " + user + " must use multi-factor authentication, which the User name/Password flow cannot do"
		e.Remedy = "switch the Authentication flow to Client secret (recommended), or have the tenant administrator exclude this account from MFA"
	case 53003:
		e.Summary = "a Conditional Access policy blocks this sign-in"
		e.Remedy = "the tenant administrator finds the policy in Entra ID › Sign-in logs (trace id " + or(e.TraceID, "?") + ") and excludes this app or account, or switch to the Client secret flow"
	case 530035:
		e.Summary = "the tenant's security defaults block this sign-in"
		e.Remedy = "use the Client secret flow; security defaults block User name/Password sign-ins"
	case 65001:
		e.Summary = "the app's permissions have not been consented to by an administrator"
		e.Remedy = "a Global Administrator opens " + f.ConsentURL() + " and accepts, or presses \"Grant admin consent\" under the app's API permissions"
		e.Actions = []string{f.ConsentURL()}
	case 7000218:
		e.Summary = "the app does not allow the User name/Password flow"
		e.Remedy = "in Entra ID › App registrations › " + app + " › Authentication, set \"Allow public client flows\" to Yes"
	case 700025:
		e.Summary = "the app is a public client and must not send a client secret"
		e.Remedy = "use the Client secret flow with a confidential app, or clear the client secret for the User name/Password flow"
	case 70011, 1002012:
		e.Summary = "the requested permission scope is not valid"
		e.Remedy = "this is inkorg's request; report it with the trace id " + or(e.TraceID, "?")
	case 700024:
		e.Summary = "the certificate's signed assertion is outside its valid time"
		e.Remedy = "set this machine's clock right (NTP)"
	case 500011:
		e.Summary = "Office 365 Exchange Online is not present in this tenant"
		e.Remedy = "check that the organisation has Exchange Online licences and that the tenant ID is the right one"
	case 700082, 70000, 70008, 50173:
		e.Summary = "the stored sign-in has expired or been revoked"
		e.Remedy = "inkorg signs in again with the stored User name/Password; if this persists, enter the password again"
	case 50196:
		e.Kind, e.Summary, e.Remedy = KindTransient, "Entra ID saw too many identical sign-ins", "inkorg backs off and reuses its tokens; if it persists, report it"
	default:
		e.Summary = e.Server
		e.Remedy = fmt.Sprintf("look the code up at https://login.microsoftonline.com/error?code=%d", e.AADSTS)
		if status >= 500 || b.Error == "temporarily_unavailable" {
			e.Kind, e.Remedy = KindTransient, "inkorg retries by itself"
		}
	}
	return e
}

var throttleRE = regexp.MustCompile(`Suggested Backoff Time: (\d+) milliseconds`)

// FromIMAP turns an IMAP server's refusal at a stage into an Error. status is "NO", "BAD" or "BYE";
// text is the server's words after the tag.
func FromIMAP(stage Stage, status, text string, f Facts) *Error {
	e := &Error{Stage: stage, Kind: KindConfig, Code: "IMAP " + status, Server: strings.TrimSpace(status + " " + text)}
	lower := strings.ToLower(text)
	switch {
	case throttleRE.MatchString(text):
		ms, _ := strconv.ParseInt(throttleRE.FindStringSubmatch(text)[1], 10, 64)
		e.Kind, e.RetryAfterMS = KindThrottled, ms
		e.Summary = fmt.Sprintf("Exchange is throttling this mailbox for %d ms", ms)
		e.Remedy = "inkorg waits and retries; if it happens often, fewer connections to the mailbox help"
	case strings.Contains(lower, "authenticated but not connected"):
		e.Summary = "the sign-in worked but the identity has no access to the mailbox " + f.mailbox()
		if f.AppOnly {
			e.Remedy = "register the app's service principal in Exchange Online and give it FullAccess to the mailbox (Exchange Online PowerShell, lines below)"
			e.Actions = f.servicePrincipalActions()
		} else {
			e.Remedy = "give " + or(f.Username, "the account") + " FullAccess to " + f.mailbox() + ", or set User name (Exchange) to the mailbox's own account"
			e.Actions = []string{fmt.Sprintf("Add-MailboxPermission -Identity \"%s\" -User \"%s\" -AccessRights FullAccess", f.mailbox(), or(f.Username, "<user>"))}
		}
	case stage == StageAuthenticate && strings.Contains(lower, "authenticate failed"):
		e.Summary = "Exchange refused the access token for " + f.mailbox()
		if f.AppOnly {
			e.Remedy = "check, in this order: the app has the application permission IMAP.AccessAsApp under Office 365 Exchange Online with admin consent; its service principal is registered in Exchange Online and has FullAccess to the mailbox; IMAP is enabled for the mailbox"
			e.Actions = append(f.servicePrincipalActions(), fmt.Sprintf("Set-CASMailbox -Identity \"%s\" -ImapEnabled $true", f.mailbox()))
		} else {
			e.Remedy = "check that the app has the delegated permission IMAP.AccessAsUser.All under Office 365 Exchange Online with consent, that " + or(f.Username, "the account") + " may open " + f.mailbox() + ", and that IMAP is enabled for the mailbox"
			e.Actions = []string{fmt.Sprintf("Set-CASMailbox -Identity \"%s\" -ImapEnabled $true", f.mailbox())}
		}
	case stage == StageSelect:
		e.Summary = "the folder could not be opened in " + f.mailbox()
		e.Remedy = "check the folder name; Exchange names the inbox INBOX"
	default:
		e.Summary = "the IMAP server refused: " + text
	}
	return e
}

// FromSMTP turns an SMTP reply at a stage into an Error.
func FromSMTP(stage Stage, code int, enhanced, text string, f Facts) *Error {
	e := &Error{Stage: stage, Kind: KindConfig, Code: strings.TrimSpace(fmt.Sprintf("SMTP %d %s", code, enhanced)),
		Server: strings.TrimSpace(fmt.Sprintf("%d %s %s", code, enhanced, text))}
	lower := strings.ToLower(text)
	switch {
	case code >= 400 && code < 500:
		e.Kind, e.Summary, e.Remedy = KindTransient, "the SMTP server asked to try again later", "inkorg retries with backoff"
	case enhanced == "5.7.139" && strings.Contains(lower, "smtpclientauthentication is disabled"):
		e.Summary = "SMTP AUTH is switched off for the tenant or for the mailbox " + f.mailbox()
		e.Remedy = "switch SMTP AUTH on for this mailbox (line below) — it overrides the tenant setting — or send with Microsoft Graph instead"
		e.Actions = []string{fmt.Sprintf("Set-CASMailbox -Identity \"%s\" -SmtpClientAuthenticationDisabled $false", f.mailbox())}
	case enhanced == "5.7.139":
		e.Summary = "Exchange refused the sign-in (security defaults, Conditional Access or basic authentication disabled)"
		e.Remedy = "use the Client secret flow, or have the tenant administrator check the sign-in logs"
	case enhanced == "5.7.3":
		e.Summary = "Exchange refused the access token for sending as " + f.mailbox()
		if f.AppOnly {
			e.Remedy = "check that the app has the application permission SMTP.SendAsApp under Office 365 Exchange Online with admin consent, and that its service principal is registered in Exchange Online with FullAccess to the mailbox"
			e.Actions = f.servicePrincipalActions()
		} else {
			e.Remedy = "check that the app has the delegated permission SMTP.Send under Office 365 Exchange Online with consent, and that " + or(f.Username, "the account") + " is the sending mailbox's account"
		}
	case enhanced == "5.7.30":
		e.Summary = "Exchange no longer accepts basic authentication (user name and password) for sending"
		e.Remedy = "switch the e-mail method to Exchange Online (OAuth 2.0)"
	case enhanced == "5.2.252" || strings.Contains(lower, "sendasdenied"):
		from := or(f.From, "the From address")
		e.Summary = "the sender may not send as " + from
		if f.AppOnly {
			e.Remedy = "give the app's service principal Send As on " + from + " (line below)"
			e.Actions = []string{fmt.Sprintf("Add-RecipientPermission -Identity \"%s\" -Trustee %s -AccessRights SendAs", from, f.sp())}
		} else {
			e.Remedy = "give " + or(f.Username, "the account") + " Send As on " + from
			e.Actions = []string{fmt.Sprintf("Add-RecipientPermission -Identity \"%s\" -Trustee \"%s\" -AccessRights SendAs", from, or(f.Username, "<user>"))}
		}
	case enhanced == "5.7.57" || code == 530:
		e.Summary, e.Remedy = "the SMTP server wants a sign-in before sending", "this is inkorg's order of commands; report it"
	case enhanced == "5.1.1" || enhanced == "5.1.10":
		e.Summary, e.Remedy = "a recipient's address does not exist", "check the recipient addresses in the message"
	case enhanced == "5.4.1" || strings.Contains(lower, "relay access denied"):
		e.Summary, e.Remedy = "the server does not accept mail for this recipient (relaying refused)", "check the recipient address; to send outside the organisation, the sender must be signed in"
	case enhanced == "5.2.2":
		e.Summary, e.Remedy = "the recipient's mailbox is full", "ask the recipient to make room, then send again"
	case enhanced == "5.3.4" || code == 552:
		e.Summary, e.Remedy = "the message is too large for the server", "send smaller attachments (Exchange Online accepts up to 35 MB by default)"
	case strings.HasPrefix(enhanced, "5.1."):
		e.Summary, e.Remedy = "an address in the message was refused: "+strings.TrimSpace(text), "check the sender and recipient addresses"
	default:
		e.Summary = "the SMTP server refused: " + strings.TrimSpace(text)
		e.Remedy = "the server's own words above say why; if they name a setting, change it, otherwise report them"
	}
	return e
}
