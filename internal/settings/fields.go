package settings

// The field names (as in JSON, the API and problem paths) and their labels in the seeds' English.
var fieldLabels = map[string]string{
	"emailMethod":         "E-mail method",
	"serverAddress":       "Server address",
	"port":                "Port",
	"useSsl":              "Use SSL",
	"username":            "User name",
	"password":            "Password",
	"clientId":            "Application (client) ID",
	"tenantId":            "Directory (tenant) ID",
	"authFlow":            "Authentication flow",
	"clientSecret":        "Client secret",
	"clientSecretExpires": "Client secret expires",
	"clientCertificate":   "Client certificate",
	"clientKey":           "Client certificate's private key",
	"emailAddress":        "E-mail address",
	"exchangeUsername":    "User name (Exchange)",
	"exchangePassword":    "Password (Exchange)",
	"copyToSelf":          "Send copy to own e-mail address",
	"signature":           "E-mail signature",
	"address":             "E-mail",
	"type":                "Type",
	"availableTo":         "Available",
	"folder":              "Folder read",
	"processedFolder":     "Folder for processed mail",
	"failedFolder":        "Folder for failed mail",
	"leaveInPlace":        "Leave mail in place",
	"pollInterval":        "Poll interval",
	"sendTransport":       "Send with",
}

// FieldLabel is the seeds' English label of a field name ("clientId" → "Application (client) ID").
func FieldLabel(field string) string {
	if l, ok := fieldLabels[field]; ok {
		return l
	}
	return field
}

// FieldApplies reports whether a field is used under an e-mail method and authentication flow; the
// UI disables, and a change refuses, a field that is not. Fields that always apply (e-mail address,
// signature, type…) report true. "username" and "password" are the system's own (on-premises Exchange
// and SMTP); "exchangeUsername" and "exchangePassword" a user's or an incoming account's.
func FieldApplies(method EmailMethod, flow AuthFlow, field string) bool {
	u := uses{method: method, flow: flow}
	switch field {
	case "serverAddress", "port", "useSsl", "username", "password":
		return u.server()
	case "clientId", "tenantId", "authFlow", "sendTransport":
		return u.oauth()
	case "clientSecret", "clientSecretExpires":
		return u.secret()
	case "clientCertificate", "clientKey":
		return u.cert()
	case "exchangeUsername", "exchangePassword":
		return u.exchangeCredentials()
	case "copyToSelf":
		return method.ServerBased()
	}
	return true
}
