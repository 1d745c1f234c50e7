package settings

import (
	"net"
	"strconv"
	"strings"
	"time"
)

// Source says where an effective value comes from.
type Source string

// The sources of an effective value.
const (
	SourceSystem  Source = "system"  // System settings
	SourceUser    Source = "user"    // the user's own e-mail settings
	SourceAccount Source = "account" // the incoming account's own values
	SourceWebshop Source = "webshop" // Webshop – Administration
	SourceDefault Source = "default" // nobody set it: inkorg's default
)

// Field is one effective value with its source. NotApplicable marks a field that the effective
// e-mail method or authentication flow does not use (the UI disables it, as the seeds describe).
type Field[T any] struct {
	Value         T      `json:"value"`
	Source        Source `json:"source"`
	NotApplicable bool   `json:"notApplicable,omitempty"`
}

func field[T any](v T, s Source) Field[T] { return Field[T]{Value: v, Source: s} }

// override returns the override when it is set, else the inherited value.
func override[T any](o *T, os Source, inherited T, is Source) Field[T] {
	if o != nil {
		return field(*o, os)
	}
	return field(inherited, is)
}

// uses answers which fields a method and flow use; it is the one place that knows.
type uses struct {
	method EmailMethod
	flow   AuthFlow
}

func (u uses) server() bool { return u.method == MethodExchangeServer || u.method == MethodSMTP }
func (u uses) oauth() bool  { return u.method == MethodExchangeOnline }
func (u uses) secret() bool { return u.oauth() && u.flow == FlowClientSecret }
func (u uses) cert() bool   { return u.oauth() && u.flow == FlowCertificate }

// exchangeCredentials: the user name and password of a mailbox are used by the on-premises and SMTP
// methods, and by Exchange Online under the User name/Password flow.
func (u uses) exchangeCredentials() bool {
	return u.server() || (u.oauth() && u.flow == FlowUsernamePassword)
}

func na[T any](f Field[T], applicable bool) Field[T] { f.NotApplicable = !applicable; return f }

// Exchange is the effective Exchange Online application settings shared by users and accounts.
type Exchange struct {
	ClientID            Field[string]   `json:"clientId"`
	TenantID            Field[string]   `json:"tenantId"`
	AuthFlow            Field[AuthFlow] `json:"authFlow"`
	ClientSecret        Field[Secret]   `json:"clientSecret"`
	ClientSecretExpires Field[Date]     `json:"clientSecretExpires"`
	// ClientCertificate describes the certificate (subject, thumbprint, expiry); the PEM itself is
	// System.ClientCertificate. Certificates are set in the system settings only.
	ClientCertificate Field[string] `json:"clientCertificate"`
	ClientKey         Field[Secret] `json:"clientKey"`
}

// Server is the effective server connection of the on-premises Exchange and SMTP methods.
type Server struct {
	ServerAddress Field[string] `json:"serverAddress"`
	Port          Field[int]    `json:"port"`
	UseSSL        Field[bool]   `json:"useSsl"`
}

// EffectiveUser is what a user's mail goes out with.
type EffectiveUser struct {
	Name             string             `json:"name"`
	EmailMethod      Field[EmailMethod] `json:"emailMethod"`
	EmailAddress     Field[string]      `json:"emailAddress"`
	ExchangeUsername Field[string]      `json:"exchangeUsername"`
	ExchangePassword Field[Secret]      `json:"exchangePassword"`
	CopyToSelf       Field[CopyToSelf]  `json:"copyToSelf"`
	Signature        Field[string]      `json:"signature"`
	// SendTransport is "Send with" (system setting; Exchange Online only): smtp or graph, never empty.
	SendTransport Field[SendTransport] `json:"sendTransport"`
	Server
	Exchange
}

// EffectiveAccount is what an incoming account is read with.
type EffectiveAccount struct {
	ID               int64               `json:"id"`
	Address          Field[string]       `json:"address"`
	Type             Field[IncomingType] `json:"type"`
	AvailableTo      Field[[]string]     `json:"availableTo"`
	EmailMethod      Field[EmailMethod]  `json:"emailMethod"`
	ExchangeUsername Field[string]       `json:"exchangeUsername"`
	ExchangePassword Field[Secret]       `json:"exchangePassword"`
	Server
	Exchange
	Mailbox
}

// Mailbox is the effective handling of an incoming account's mailbox.
type Mailbox struct {
	Folder          Field[string] `json:"folder"`
	ProcessedFolder Field[string] `json:"processedFolder"`
	FailedFolder    Field[string] `json:"failedFolder"`
	LeaveInPlace    Field[bool]   `json:"leaveInPlace"`
	PollSeconds     Field[int]    `json:"pollSeconds"`
}

// EffectiveWebshop is what the webshop's mail goes out with: under according-to-user-settings, the
// effective settings of the user WEBSHOP.
type EffectiveWebshop struct {
	EmailMethod Field[WebshopMethod] `json:"emailMethod"`
	User        *EffectiveUser       `json:"user,omitempty"`
}

func resolveServer(s System, u uses) Server {
	return Server{
		ServerAddress: na(field(s.ServerAddress, SourceSystem), u.server()),
		Port:          na(field(s.Port, SourceSystem), u.server()),
		UseSSL:        na(field(s.UseSSL, SourceSystem), u.server()),
	}
}

// resolveExchange applies an account's (or nobody's: all nil) overrides to the system's Exchange
// Online values. The expiry date follows the secret: an account's own secret has its own expiry.
func resolveExchange(s System, method EmailMethod, clientID, tenantID *string, flow *AuthFlow, secret *Secret, expires *Date) (Exchange, uses) {
	e := Exchange{
		ClientID: override(clientID, SourceAccount, s.ClientID, SourceSystem),
		TenantID: override(tenantID, SourceAccount, s.TenantID, SourceSystem),
		AuthFlow: override(flow, SourceAccount, s.AuthFlow, SourceSystem),
	}
	if secret != nil {
		var d Date
		if expires != nil {
			d = *expires
		}
		e.ClientSecret, e.ClientSecretExpires = field(*secret, SourceAccount), field(d, SourceAccount)
	} else {
		e.ClientSecret = field(s.ClientSecret, SourceSystem)
		e.ClientSecretExpires = override(expires, SourceAccount, s.ClientSecretExpires, SourceSystem)
	}
	e.ClientCertificate = field("", SourceSystem)
	if s.ClientCertificate != "" {
		if c, _, err := ParseCertificate(s.ClientCertificate); err == nil {
			e.ClientCertificate.Value = c.String()
		} else {
			e.ClientCertificate.Value = "unreadable certificate"
		}
	}
	e.ClientKey = field(s.ClientKey, SourceSystem)
	u := uses{method: method, flow: e.AuthFlow.Value}
	e.ClientCertificate.NotApplicable = !u.cert()
	e.ClientKey.NotApplicable = !u.cert()
	e.ClientID.NotApplicable = !u.oauth()
	e.TenantID.NotApplicable = !u.oauth()
	e.AuthFlow.NotApplicable = !u.oauth()
	e.ClientSecret.NotApplicable = !u.secret()
	e.ClientSecretExpires.NotApplicable = !u.secret()
	return e, u
}

// ResolveUser gives the effective settings of user u: each field of u that is set overrides the system
// settings; the rest is inherited. Under the on-premises Exchange and SMTP methods the user name and
// password fall back to the system's; under Exchange Online they are the user's own.
func ResolveUser(s System, u User) EffectiveUser {
	method := override(u.EmailMethod, SourceUser, s.EmailMethod, SourceSystem)
	ex, use := resolveExchange(s, method.Value, nil, nil, nil, nil, nil)
	e := EffectiveUser{
		Name:        u.Name,
		EmailMethod: method,
		Server:      resolveServer(s, use),
		Exchange:    ex,
	}
	if u.EmailAddress != nil {
		e.EmailAddress = field(*u.EmailAddress, SourceUser)
	} else {
		e.EmailAddress = field("", SourceDefault)
	}
	switch {
	case use.server():
		e.ExchangeUsername = override(u.ExchangeUsername, SourceUser, s.Username, SourceSystem)
		e.ExchangePassword = override(u.ExchangePassword, SourceUser, s.Password, SourceSystem)
	default:
		e.ExchangeUsername = override(u.ExchangeUsername, SourceUser, "", SourceDefault)
		e.ExchangePassword = override(u.ExchangePassword, SourceUser, Secret{}, SourceDefault)
	}
	e.ExchangeUsername.NotApplicable = !use.exchangeCredentials()
	e.ExchangePassword.NotApplicable = !use.exchangeCredentials()
	e.CopyToSelf = na(override(u.CopyToSelf, SourceUser, CopyNone, SourceDefault), method.Value.ServerBased())
	e.Signature = override(u.Signature, SourceUser, "", SourceDefault)
	e.SendTransport = na(field(s.SendTransport, SourceSystem), use.oauth())
	if s.SendTransport == SendDefault {
		e.SendTransport = na(field(SendSMTP, SourceDefault), use.oauth())
	}
	return e
}

// ResolveAccount gives the effective settings of an incoming account: the e-mail method and server
// come from the system settings, the Exchange Online values from the system unless the account
// overrides them, the mailbox credentials from the account.
func ResolveAccount(s System, a IncomingAccount) EffectiveAccount {
	ex, use := resolveExchange(s, s.EmailMethod, a.ClientID, a.TenantID, a.AuthFlow, a.ClientSecret, a.ClientSecretExpires)
	avail := a.AvailableTo
	if avail == nil {
		avail = []string{}
	}
	return EffectiveAccount{
		ID:               a.ID,
		Address:          field(a.Address, SourceAccount),
		Type:             field(a.Type, SourceAccount),
		AvailableTo:      field(avail, SourceAccount),
		EmailMethod:      field(s.EmailMethod, SourceSystem),
		ExchangeUsername: na(field(a.ExchangeUsername, SourceAccount), use.exchangeCredentials()),
		ExchangePassword: na(field(a.ExchangePassword, SourceAccount), use.exchangeCredentials()),
		Server:           resolveServer(s, use),
		Exchange:         ex,
		Mailbox:          resolveMailbox(a),
	}
}

func orDefault[T comparable](v, def T) Field[T] {
	var zero T
	if v == zero {
		return field(def, SourceDefault)
	}
	return field(v, SourceAccount)
}

func resolveMailbox(a IncomingAccount) Mailbox {
	m := Mailbox{
		Folder:          orDefault(a.Folder, DefaultFolder),
		ProcessedFolder: orDefault(a.ProcessedFolder, DefaultProcessedFolder),
		FailedFolder:    orDefault(a.FailedFolder, DefaultFailedFolder),
		LeaveInPlace:    orDefault(a.LeaveInPlace, false),
		PollSeconds:     orDefault(int(a.PollInterval/time.Second), int(DefaultPollInterval/time.Second)),
	}
	m.ProcessedFolder.NotApplicable = a.LeaveInPlace
	return m
}

// ResolveWebshop gives the webshop's effective settings. Under according-to-user-settings they are
// the effective settings of the user WEBSHOP (inheriting the system settings wholesale when that user
// has no settings of its own).
func ResolveWebshop(c Config) EffectiveWebshop {
	w := EffectiveWebshop{EmailMethod: field(c.Webshop.EmailMethod, SourceWebshop)}
	if c.Webshop.EmailMethod == WebshopNotSet {
		w.EmailMethod.Source = SourceDefault
		return w
	}
	u, ok := c.User(WebshopUser)
	if !ok {
		u = User{Name: WebshopUser}
	}
	eu := ResolveUser(c.System, u)
	w.User = &eu
	return w
}

// AvailableTo reports whether the account may be used by the named user or one of the user's roles.
func (a IncomingAccount) AvailableToAny(names ...string) bool {
	if len(a.AvailableTo) == 0 {
		return true
	}
	for _, x := range a.AvailableTo {
		for _, n := range names {
			if strings.EqualFold(x, n) {
				return true
			}
		}
	}
	return false
}

// The standard ports that port 0 stands for.
const (
	StandardIMAPPort       = 993 // IMAP with implicit TLS
	StandardSubmissionPort = 587 // SMTP submission with STARTTLS
	ImplicitTLSSMTPPort    = 465 // SMTP with implicit TLS
)

// IMAPAddr is where the on-premises Exchange or IMAP server is read: the server address and the port,
// 0 meaning the standard port 993.
func (s Server) IMAPAddr() string {
	return joinHostPort(s.ServerAddress.Value, s.Port.Value, StandardIMAPPort)
}

// SMTPAddr is where mail is submitted to the on-premises Exchange or SMTP server (port 0 meaning 587
// with STARTTLS), and whether the port is 465, which speaks implicit TLS.
func (s Server) SMTPAddr() (addr string, implicitTLS bool) {
	return joinHostPort(s.ServerAddress.Value, s.Port.Value, StandardSubmissionPort), s.Port.Value == ImplicitTLSSMTPPort
}

func joinHostPort(host string, port, standard int) string {
	if port == 0 {
		port = standard
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}
