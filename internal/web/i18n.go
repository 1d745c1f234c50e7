package web

import "inkorg/internal/settings"

// Lang is a UI language.
type Lang string

// The languages: the seeds' English and Swedish.
const (
	English Lang = "en"
	Swedish Lang = "sv"
)

// swedish is the Swedish text of every English string the pages show; the labels of the procedures and
// fields are the Swedish seed's own. A string without a translation shows in English.
var swedish = map[string]string{
	// The procedures, in the seeds' order.
	"System settings":              "Systeminställningar",
	"Users":                        "Användare",
	"Settings for incoming e-mail": "Inställningar för inkommande e-post",
	"Webshop – Administration":     "Webbshop Administration",
	// The fields.
	"E-mail method":                    "Metod för e-post",
	"Application (client) ID":          "Program-ID (klient)",
	"Directory (tenant) ID":            "Katalog-ID (klientorganisation)",
	"Authentication flow":              "Autentiseringsflöde",
	"Client secret":                    "Klienthemlighet",
	"User name (Exchange)":             "Användarnamn (Exchange)",
	"Password (Exchange)":              "Lösenord (Exchange)",
	"Server address":                   "Serveradress",
	"Port":                             "Port",
	"Use SSL":                          "Använd SSL",
	"User name":                        "Användarnamn",
	"Password":                         "Lösenord",
	"Client secret expires":            "Klienthemligheten upphör",
	"Client certificate":               "Klientcertifikat",
	"Client certificate's private key": "Klientcertifikatets privata nyckel",
	"E-mail address":                   "E-postadress",
	"Send copy to own e-mail address":  "Skicka kopia till egen e-postadress",
	"E-mail signature":                 "E-postsignatur",
	"E-mail":                           "E-post",
	"Type":                             "Typ",
	"Available":                        "Tillgänglig",
	"Folder read":                      "Mapp som läses",
	"Folder for processed mail":        "Mapp för behandlad e-post",
	"Folder for failed mail":           "Mapp för e-post som inte kunde läsas",
	"Leave mail in place":              "Lämna e-posten kvar",
	"Poll interval (seconds)":          "Kontrollintervall (sekunder)",
	"Send with":                        "Skicka med",
	// The choices.
	"Client based, via Microsoft Outlook":         "Klientbaserat, via Microsoft Outlook",
	"Server based, via Microsoft Exchange":        "Serverbaserat, via Microsoft Exchange",
	"Server based, via SMTP":                      "Serverbaserat, via SMTP",
	"Server based, via Microsoft Exchange Online": "Serverbaserat, via Microsoft Exchange Online",
	"User name/Password":                          "Användarnamn/Lösenord",
	"Certificate":                                 "Certifikat",
	"According to user settings":                  "Enligt användarinställningar",
	"Not set":                                     "Ej inställt",
	"None":                                        "Ingen",
	"Monitor-to-Monitor":                          "Monitor-till-Monitor",
	"Supplier invoice":                            "Leverantörsfaktura",
	"Customer order":                              "Kundorder",
	"Purchase order":                              "Inköpsorder",
	"General":                                     "Allmän",
	"SMTP with OAuth 2.0 (XOAUTH2)":               "SMTP med OAuth 2.0 (XOAUTH2)",
	"Microsoft Graph sendMail":                    "Microsoft Graph sendMail",
	// Sources.
	"system":  "systeminställningar",
	"user":    "användaren",
	"account": "kontot",
	"webshop": "webbshopen",
	"default": "standard",
	// The rest of the UI.
	"set":                                    "angiven",
	"not set":                                "ej angiven",
	"Save":                                   "Spara",
	"Saved.":                                 "Sparat.",
	"Add":                                    "Lägg till",
	"Remove":                                 "Ta bort",
	"Open":                                   "Öppna",
	"Sign in":                                "Logga in",
	"Sign out":                               "Logga ut",
	"Name":                                   "Namn",
	"Effective":                              "Gäller",
	"from":                                   "från",
	"inherit":                                "ärv",
	"Inherit":                                "Ärv",
	"Clear":                                  "Töm",
	"Not used with this method or flow":      "Används inte med denna metod eller detta flöde",
	"Validate selected address":              "Validera vald adress",
	"Accounts":                               "Konton",
	"Messages":                               "Meddelanden",
	"Outbox":                                 "Utkorg",
	"Audit log":                              "Ändringslogg",
	"State":                                  "Status",
	"Last poll":                              "Senaste kontroll",
	"Backlog":                                "Kö",
	"Last error":                             "Senaste fel",
	"Token expires":                          "Token upphör",
	"Remedy":                                 "Åtgärd",
	"Problems":                               "Problem",
	"Wrong name or password.":                "Fel namn eller lösenord.",
	"Too many attempts; try again later.":    "För många försök; försök igen senare.",
	"Effective settings of the user WEBSHOP": "Gällande inställningar för användaren WEBSHOP",
	"User with e-mail settings":              "Användare med e-postinställningar",
	"Add or open user":                       "Lägg till eller öppna användare",
	"Empty fields inherit the system settings.":                                     "Tomma fält ärver systeminställningarna.",
	"The Exchange Online values inherit the system settings unless filled in here.": "Värdena för Exchange Online ärver systeminställningarna om de inte fylls i här.",
	"Add an incoming e-mail account":                                                "Lägg till ett konto för inkommande e-post",
	"Subject":                                                                       "Ämne",
	"From":                                                                          "Från",
	"Received":                                                                      "Mottaget",
	"Attachments":                                                                   "Bilagor",
	"Document":                                                                      "Dokument",
	"When":                                                                          "När",
	"Who":                                                                           "Vem",
	"What":                                                                          "Vad",
	"Field":                                                                         "Fält",
	"Old":                                                                           "Före",
	"New":                                                                           "Efter",
	"Sender":                                                                        "Avsändare",
	"Recipients":                                                                    "Mottagare",
	"Attempts":                                                                      "Försök",
	"All types":                                                                     "Alla typer",
	"expires in %d days":                                                            "upphör om %d dagar",
	"has expired":                                                                   "har upphört",
	"Steps":                                                                         "Steg",
	"Overview":                                                                      "Översikt",
	"Language":                                                                      "Språk",
	"You may only change your own e-mail settings.": "Du får bara ändra dina egna e-postinställningar.",
}

// T translates an English string.
func (l Lang) T(s string) string {
	if l == Swedish {
		if t, ok := swedish[s]; ok {
			return t
		}
	}
	return s
}

// fieldLabel is a field's label (the seeds' words) in l.
func (l Lang) fieldLabel(field string) string {
	if field == "pollSeconds" {
		return l.T("Poll interval (seconds)")
	}
	return l.T(settings.FieldLabel(field))
}

// typeLabels are the incoming types' English names.
var typeLabels = map[settings.IncomingType]string{
	settings.TypeMonitorToMonitor: "Monitor-to-Monitor",
	settings.TypeSupplierInvoice:  "Supplier invoice",
	settings.TypeCustomerOrder:    "Customer order",
	settings.TypePurchaseOrder:    "Purchase order",
	settings.TypeGeneral:          "General",
}
