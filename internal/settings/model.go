package settings

import (
	"strings"
	"time"
)

// System is the procedure "System settings": the defaults every user and incoming account inherits.
type System struct {
	EmailMethod EmailMethod `json:"emailMethod"` // E-mail method
	// Server based, via Microsoft Exchange / via SMTP.
	ServerAddress string `json:"serverAddress"` // Server address
	Port          int    `json:"port"`          // Port; 0 means the standard port
	UseSSL        bool   `json:"useSsl"`        // Use SSL
	Username      string `json:"username"`      // User name
	Password      Secret `json:"password"`      // Password
	// Server based, via Microsoft Exchange Online.
	ClientID            string   `json:"clientId"`            // Application (client) ID
	TenantID            string   `json:"tenantId"`            // Directory (tenant) ID
	AuthFlow            AuthFlow `json:"authFlow"`            // Authentication flow
	ClientSecret        Secret   `json:"clientSecret"`        // Client secret: the secret's Value, never its Secret ID
	ClientSecretExpires Date     `json:"clientSecretExpires"` // the expiry date Entra ID shows beside the secret
	// The certificate flow (inkorg's addition): the certificate uploaded to the app registration, and its
	// private key.
	ClientCertificate string `json:"clientCertificate"` // PEM; public
	ClientKey         Secret `json:"clientKey"`         // PEM, unencrypted in memory, sealed at rest
	// SendTransport is inkorg's "Send with" under Exchange Online: SMTP submission with XOAUTH2 (the
	// default) or Microsoft Graph sendMail, for tenants where SMTP AUTH is switched off.
	SendTransport SendTransport `json:"sendTransport"`
}

// User is a user's e-mail settings (procedure Users). A nil field inherits the system setting (or the
// default); a set field overrides it.
type User struct {
	Name             string       `json:"name"`
	EmailMethod      *EmailMethod `json:"emailMethod"`      // E-mail method
	EmailAddress     *string      `json:"emailAddress"`     // E-mail address
	ExchangeUsername *string      `json:"exchangeUsername"` // User name (Exchange)
	ExchangePassword *Secret      `json:"exchangePassword"` // Password (Exchange)
	CopyToSelf       *CopyToSelf  `json:"copyToSelf"`       // Send copy to own e-mail address
	Signature        *string      `json:"signature"`        // E-mail signature
}

// IsWebshop reports whether u is the reserved user WEBSHOP.
func (u User) IsWebshop() bool { return IsWebshopUser(u.Name) }

// IncomingAccount is one row of "Settings for incoming e-mail": a mailbox whose mail inkorg reads.
// The Exchange Online values (client ID, tenant ID, flow, client secret) inherit the system settings
// unless the account overrides them; the seeds make the admin copy them into every account, inkorg
// makes that one place.
type IncomingAccount struct {
	ID               int64        `json:"id"`
	Address          string       `json:"address"`          // E-mail
	Type             IncomingType `json:"type"`             // Type
	ExchangeUsername string       `json:"exchangeUsername"` // User name (Exchange); not applicable under the client-secret flow
	ExchangePassword Secret       `json:"exchangePassword"` // Password (Exchange); not applicable under the client-secret flow
	AvailableTo      []string     `json:"availableTo"`      // Available: users or roles that may use the account; empty = all users

	ClientID            *string   `json:"clientId"`
	TenantID            *string   `json:"tenantId"`
	AuthFlow            *AuthFlow `json:"authFlow"`
	ClientSecret        *Secret   `json:"clientSecret"`
	ClientSecretExpires *Date     `json:"clientSecretExpires"`

	// What inkorg does with the mailbox (not on the ERP's page: inkorg's own, with defaults).
	Folder          string        `json:"folder"`          // the folder read; "" = INBOX
	ProcessedFolder string        `json:"processedFolder"` // where stored messages are moved; "" = DefaultProcessedFolder
	FailedFolder    string        `json:"failedFolder"`    // where unreadable messages are moved; "" = DefaultFailedFolder
	LeaveInPlace    bool          `json:"leaveInPlace"`    // do not move messages after storing them
	PollInterval    time.Duration `json:"pollInterval"`    // without IDLE, how often to look; 0 = DefaultPollInterval
}

// Defaults of an incoming account's mailbox handling.
const (
	DefaultFolder          = "INBOX"
	DefaultProcessedFolder = "inkorg/Processed"
	DefaultFailedFolder    = "inkorg/Failed"
	DefaultPollInterval    = time.Minute
	MinPollInterval        = 10 * time.Second
)

// Webshop is Webshop – Administration's e-mail setting.
type Webshop struct {
	EmailMethod WebshopMethod `json:"emailMethod"`
}

// Config is every procedure's settings at once: what validation looks across.
type Config struct {
	System   System
	Users    []User
	Accounts []IncomingAccount
	Webshop  Webshop
}

// User returns the user with the given name (case-insensitive).
func (c Config) User(name string) (User, bool) {
	for _, u := range c.Users {
		if strings.EqualFold(u.Name, name) {
			return u, true
		}
	}
	return User{}, false
}

// Account returns the incoming account with the given address (case-insensitive).
func (c Config) Account(address string) (IncomingAccount, bool) {
	for _, a := range c.Accounts {
		if strings.EqualFold(a.Address, address) {
			return a, true
		}
	}
	return IncomingAccount{}, false
}

// Ptr returns a pointer to v: a shorthand for setting an override.
func Ptr[T any](v T) *T { return &v }
