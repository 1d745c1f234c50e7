// Package cloud says where Microsoft's services are: Entra ID's authority, Exchange Online's IMAP and
// SMTP hosts and Microsoft Graph. Without a cloud file they are Microsoft's global cloud; with one (the
// emulator.json the emulator writes, or a file of the same shape for another cloud) every address comes
// from the file, nothing goes to a Microsoft host, and TLS is verified against the file's CA — never
// skipped.
package cloud

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Resource identifiers (App ID URIs) of the services inkorg asks tokens for.
const (
	ExchangeResource = "https://outlook.office365.com"
	GraphResource    = "https://graph.microsoft.com"
)

// Endpoints are the addresses of one cloud.
type Endpoints struct {
	Name      string         // "Microsoft global cloud" or the cloud file's path
	Authority string         // scheme://host[:port] of Entra ID, without the tenant
	IMAP      string         // host:port, implicit TLS
	SMTP      string         // host:port, STARTTLS
	Graph     string         // base URL, e.g. https://graph.microsoft.com/v1.0
	RootCAs   *x509.CertPool // nil: the system's roots
	// Custom is set for a cloud file: MSAL's instance discovery (a call to login.microsoftonline.com)
	// is switched off.
	Custom bool
}

// Global is Microsoft's global cloud.
func Global() Endpoints {
	return Endpoints{
		Name:      "Microsoft global cloud",
		Authority: "https://login.microsoftonline.com",
		IMAP:      "outlook.office365.com:993",
		SMTP:      "smtp.office365.com:587",
		Graph:     "https://graph.microsoft.com/v1.0",
	}
}

// file is the part of emulator.json a cloud file needs.
type file struct {
	Authority string `json:"authority"`
	IMAP      string `json:"imap"`
	SMTP      string `json:"smtp"`
	Graph     string `json:"graph"`
	CAFile    string `json:"caFile"`
}

// Load reads a cloud file. A relative caFile is relative to the cloud file.
func Load(path string) (Endpoints, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Endpoints{}, fmt.Errorf("cloud file: %w", err)
	}
	var f file
	if err := json.Unmarshal(b, &f); err != nil {
		return Endpoints{}, fmt.Errorf("cloud file %s: %w", path, err)
	}
	e := Endpoints{Name: path, Authority: strings.TrimRight(f.Authority, "/"), IMAP: f.IMAP, SMTP: f.SMTP, Graph: strings.TrimRight(f.Graph, "/"), Custom: true}
	var problems []string
	if u, err := url.Parse(e.Authority); err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") {
		problems = append(problems, fmt.Sprintf("authority %q must be https://host[:port] (MSAL accepts nothing but https)", f.Authority))
	}
	for name, hp := range map[string]string{"imap": e.IMAP, "smtp": e.SMTP} {
		if _, _, err := net.SplitHostPort(hp); err != nil {
			problems = append(problems, fmt.Sprintf("%s %q must be host:port", name, hp))
		}
	}
	if u, err := url.Parse(e.Graph); e.Graph != "" && (err != nil || u.Scheme != "https") {
		problems = append(problems, fmt.Sprintf("graph %q must be an https URL", f.Graph))
	}
	if len(problems) > 0 {
		return Endpoints{}, fmt.Errorf("cloud file %s: %s", path, strings.Join(problems, "; "))
	}
	if f.CAFile != "" {
		ca := f.CAFile
		if !filepath.IsAbs(ca) {
			ca = filepath.Join(filepath.Dir(path), ca)
		}
		pem, err := os.ReadFile(ca)
		if err != nil {
			return Endpoints{}, fmt.Errorf("cloud file %s: CA: %w", path, err)
		}
		e.RootCAs = x509.NewCertPool()
		if !e.RootCAs.AppendCertsFromPEM(pem) {
			return Endpoints{}, fmt.Errorf("cloud file %s: CA %s holds no PEM certificate", path, ca)
		}
	}
	return e, nil
}

// TLSConfig verifies serverName against the cloud's roots.
func (e Endpoints) TLSConfig(serverName string) *tls.Config {
	return &tls.Config{ServerName: serverName, RootCAs: e.RootCAs, MinVersion: tls.VersionTLS12}
}

// HTTPClient is an HTTP client for the cloud's HTTPS services (Entra ID, Graph).
func (e Endpoints) HTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: e.RootCAs, MinVersion: tls.VersionTLS12}
	t.Proxy = nil
	if !e.Custom {
		t.Proxy = http.ProxyFromEnvironment
	}
	return &http.Client{Transport: t, Timeout: 60 * time.Second}
}

// Host is the host part of a host:port address.
func Host(hostport string) string {
	h, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return hostport
	}
	return h
}

// ErrNoGraph means the cloud file names no Graph endpoint.
var ErrNoGraph = errors.New("the cloud file names no Graph endpoint")
