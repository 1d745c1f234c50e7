package settings

import (
	"fmt"
	"strings"
)

// EmailMethod is the system setting "E-mail method" (and its per-user override).
type EmailMethod string

// The four e-mail methods of the seeds.
const (
	MethodOutlookClient  EmailMethod = "outlook-client"  // Client based, via Microsoft Outlook
	MethodExchangeServer EmailMethod = "exchange-server" // Server based, via Microsoft Exchange (on-premises)
	MethodSMTP           EmailMethod = "smtp"            // Server based, via SMTP
	MethodExchangeOnline EmailMethod = "exchange-online" // Server based, via Microsoft Exchange Online
)

// EmailMethods lists the methods in the order the ERP shows them.
func EmailMethods() []EmailMethod {
	return []EmailMethod{MethodOutlookClient, MethodExchangeServer, MethodSMTP, MethodExchangeOnline}
}

// Valid reports whether m is one of the four methods.
func (m EmailMethod) Valid() bool {
	switch m {
	case MethodOutlookClient, MethodExchangeServer, MethodSMTP, MethodExchangeOnline:
		return true
	}
	return false
}

// ServerBased reports whether inkorg itself talks to a mail server under this method (everything but
// the Outlook client).
func (m EmailMethod) ServerBased() bool { return m.Valid() && m != MethodOutlookClient }

// Label is the seeds' English label.
func (m EmailMethod) Label() string {
	switch m {
	case MethodOutlookClient:
		return "Client based, via Microsoft Outlook"
	case MethodExchangeServer:
		return "Server based, via Microsoft Exchange"
	case MethodSMTP:
		return "Server based, via SMTP"
	case MethodExchangeOnline:
		return "Server based, via Microsoft Exchange Online"
	}
	return string(m)
}

// AuthFlow is the system setting "Authentication flow" for Exchange Online.
type AuthFlow string

// The authentication flows of the seeds.
const (
	FlowClientSecret     AuthFlow = "client-secret"     // OAuth client credentials, app-only
	FlowUsernamePassword AuthFlow = "username-password" // OAuth resource-owner password credentials, delegated
)

// AuthFlows lists the flows in the order the ERP shows them.
func AuthFlows() []AuthFlow {
	return []AuthFlow{FlowClientSecret, FlowUsernamePassword, FlowCertificate}
}

// Valid reports whether f is a known flow.
func (f AuthFlow) Valid() bool {
	return f == FlowClientSecret || f == FlowUsernamePassword || f == FlowCertificate
}

// Label is the seeds' English label.
func (f AuthFlow) Label() string {
	switch f {
	case FlowClientSecret:
		return "Client secret"
	case FlowUsernamePassword:
		return "User name/Password"
	case FlowCertificate:
		return "Certificate"
	}
	return string(f)
}

// CopyToSelf is the user setting "Send copy to own e-mail address".
type CopyToSelf string

// The copy-to-self choices.
const (
	CopyNone CopyToSelf = "none"
	CopyCc   CopyToSelf = "cc"
	CopyBcc  CopyToSelf = "bcc"
)

// Valid reports whether c is a known choice.
func (c CopyToSelf) Valid() bool { return c == CopyNone || c == CopyCc || c == CopyBcc }

// IncomingType is the type of an incoming e-mail account: which kind of record its mail serves.
type IncomingType string

// The incoming types.
const (
	TypeMonitorToMonitor IncomingType = "monitor-to-monitor"
	TypeSupplierInvoice  IncomingType = "supplier-invoice"
	TypeCustomerOrder    IncomingType = "customer-order"
	TypePurchaseOrder    IncomingType = "purchase-order"
	TypeGeneral          IncomingType = "general"
)

// IncomingTypes lists the types.
func IncomingTypes() []IncomingType {
	return []IncomingType{TypeMonitorToMonitor, TypeSupplierInvoice, TypeCustomerOrder, TypePurchaseOrder, TypeGeneral}
}

// Valid reports whether t is a known type.
func (t IncomingType) Valid() bool {
	for _, k := range IncomingTypes() {
		if t == k {
			return true
		}
	}
	return false
}

// WebshopMethod is Webshop – Administration's "E-mail method".
type WebshopMethod string

// The webshop's e-mail methods. NotSet means the webshop sends no mail through inkorg.
const (
	WebshopNotSet                  WebshopMethod = ""
	WebshopAccordingToUserSettings WebshopMethod = "according-to-user-settings"
)

// Valid reports whether w is a known webshop method (including not set).
func (w WebshopMethod) Valid() bool { return w == WebshopNotSet || w == WebshopAccordingToUserSettings }

// WebshopUser is the reserved user whose settings the webshop's mail uses.
const WebshopUser = "WEBSHOP"

// IsWebshopUser reports whether name is the reserved WEBSHOP user (user names are case-insensitive).
func IsWebshopUser(name string) bool { return strings.EqualFold(strings.TrimSpace(name), WebshopUser) }

// choices formats a list of allowed values for an error message: "a, b or c".
func choices[T ~string](vs []T) string {
	var b strings.Builder
	for i, v := range vs {
		switch {
		case i == 0:
		case i == len(vs)-1:
			b.WriteString(" or ")
		default:
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", string(v))
	}
	return b.String()
}

// SendTransport is the system setting "Send with": how mail goes out under Exchange Online.
type SendTransport string

// The transports. Empty means the default, SMTP.
const (
	SendDefault SendTransport = ""
	SendSMTP    SendTransport = "smtp"  // SMTP submission with XOAUTH2 (smtp.office365.com:587)
	SendGraph   SendTransport = "graph" // Microsoft Graph sendMail (needs Mail.Send)
)

// SendTransports lists the choices.
func SendTransports() []SendTransport { return []SendTransport{SendSMTP, SendGraph} }

// Valid reports whether t is a known transport (including the default).
func (t SendTransport) Valid() bool { return t == SendDefault || t == SendSMTP || t == SendGraph }

// Label is the English label.
func (t SendTransport) Label() string {
	switch t {
	case SendGraph:
		return "Microsoft Graph sendMail"
	case SendSMTP, SendDefault:
		return "SMTP with OAuth 2.0 (XOAUTH2)"
	}
	return string(t)
}
