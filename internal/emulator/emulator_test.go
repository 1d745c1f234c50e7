package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"

	"inkorg/internal/emulator/scenario"
)

// Exchange Online's exact replies (microsoft-protocol-facts.md §3.3).
const (
	imapAuthFailed   = "AUTHENTICATE failed."
	imapNotConnected = "User is authenticated but not connected."
	smtpAuthFailed   = "5.7.3 Authentication unsuccessful"
	smtpDisabled     = "5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information."
	smtpSendAsDenied = "5.2.252 SendAsDenied; anna@contoso.example not allowed to send as erik@contoso.example; STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied"
)

// Extra apps and mailboxes of the test scenario (on top of scenario.Default).
const (
	noRolesID   = "aaaaaaaa-1111-4111-8111-000000000001" // Mail.Read only: no IMAP/SMTP role
	limitedID   = "aaaaaaaa-1111-4111-8111-000000000002" // service principal with FullAccess on m2m@ only
	noSPID      = "aaaaaaaa-1111-4111-8111-000000000003" // roles but no Exchange service principal
	wrongOIDID  = "aaaaaaaa-1111-4111-8111-000000000004" // service principal registered with the wrong object ID
	testSecret  = "tst8Q~test-secret-for-the-extra-apps-0000"
	noIMAPBox   = "noimap@contoso.example"
	noSMTPBox   = "nosmtp@contoso.example"
	defaultApp  = scenario.DefaultAppClientID
	publicApp   = scenario.DefaultPublicID
	exoScope    = "https://outlook.office365.com/.default"
	graphScope  = "https://graph.microsoft.com/.default"
	userScopes  = "https://outlook.office.com/IMAP.AccessAsUser.All https://outlook.office.com/SMTP.Send openid profile offline_access"
	toolTimeout = 20 * time.Second
)

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func testScenario(now time.Time) *scenario.Scenario {
	sc := scenario.Default(now)
	f := false
	sec := func(n string) []scenario.Secret {
		return []scenario.Secret{{ID: "bbbbbbbb-0000-4000-8000-00000000000" + n, Value: testSecret, Expires: now.Add(48 * time.Hour)}}
	}
	sc.Apps = append(sc.Apps,
		scenario.App{Name: "no-roles", ClientID: noRolesID, Secrets: sec("1"), Roles: []string{"https://outlook.office365.com/Mail.Read"}, SingleTenant: true},
		scenario.App{Name: "limited", ClientID: limitedID, Secrets: sec("2"), Roles: []string{"IMAP.AccessAsApp", "SMTP.SendAsApp"}, SingleTenant: true},
		scenario.App{Name: "no-sp", ClientID: noSPID, Secrets: sec("3"), Roles: []string{"IMAP.AccessAsApp", "SMTP.SendAsApp"}, SingleTenant: true},
		scenario.App{Name: "wrong-oid", ClientID: wrongOIDID, Secrets: sec("4"), Roles: []string{"IMAP.AccessAsApp"}, SingleTenant: true},
	)
	sc.ServicePrincipals = append(sc.ServicePrincipals,
		scenario.ServicePrincipal{AppID: noRolesID, FullAccess: []string{scenario.All}, SendAs: []string{scenario.All}},
		scenario.ServicePrincipal{AppID: limitedID, FullAccess: []string{"m2m@contoso.example"}, SendAs: []string{"m2m@contoso.example"}},
		scenario.ServicePrincipal{AppID: wrongOIDID, ObjectID: "cccccccc-0000-4000-8000-000000000000", FullAccess: []string{scenario.All}},
	)
	sc.Mailboxes = append(sc.Mailboxes,
		scenario.Mailbox{Address: noIMAPBox, IMAPEnabled: &f},
		scenario.Mailbox{Address: noSMTPBox, SMTPAuthEnabled: &f},
	)
	return sc
}

type harness struct {
	emu    *Emulator
	info   Info
	clock  *testClock
	client *http.Client
	sc     *scenario.Scenario
}

func start(t *testing.T) *harness {
	t.Helper()
	clock := &testClock{t: time.Now()}
	sc := testScenario(clock.Now())
	emu, err := New(Config{Dir: t.TempDir(), Scenario: sc, Clock: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := emu.Start(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := emu.Close(); err != nil {
			t.Error(err)
		}
	})
	return &harness{emu: emu, info: emu.Info(), clock: clock, client: emu.HTTPClient(), sc: sc}
}

func (h *harness) password(upn string) string {
	u, _ := h.sc.User(upn)
	return u.Password
}

// token gets an access token from the emulator's token endpoint over HTTPS.
func (h *harness) token(t *testing.T, form url.Values) string {
	t.Helper()
	resp, err := h.client.PostForm(h.info.Authority+"/"+h.info.TenantID+"/oauth2/v2.0/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode != 200 {
		t.Fatalf("token: %d %v %v", resp.StatusCode, m, err)
	}
	return m["access_token"].(string)
}

func appToken(t *testing.T, h *harness, clientID, secret, scope string) string {
	return h.token(t, url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {secret}, "scope": {scope}})
}

func userToken(t *testing.T, h *harness, upn, scope string) string {
	return h.token(t, url.Values{"grant_type": {"password"}, "client_id": {publicApp}, "username": {upn},
		"password": {h.password(upn)}, "scope": {scope}, "client_info": {"1"}})
}

func (h *harness) defaultSecret() string { return h.info.Apps[0].ClientSecret }

func (h *harness) admin(t *testing.T, method, path string, body []byte) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, h.info.Admin+path, bytes.NewReader(body))
	resp, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// tool returns the path of a third-party client; a missing one fails the test (CI installs them).
func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is required (Debian package %s): %v", name, map[string]string{"curl": "curl", "python3": "python3"}[name], err)
	}
	return p
}

func run(t *testing.T, name string, stdin []byte, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, tool(t, name), args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code = 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("%s timed out: %s", name, e.String())
	}
	return o.String(), e.String(), code
}

func TestEmulatorJSONAndMSAL(t *testing.T) {
	h := start(t)
	b, err := os.ReadFile(h.emu.InfoFile())
	if err != nil {
		t.Fatal(err)
	}
	var got Info
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, h.info) {
		t.Errorf("emulator.json = %+v\nInfo() = %+v", got, h.info)
	}
	var keys map[string]any
	_ = json.Unmarshal(b, &keys)
	for _, k := range []string{"authority", "imap", "smtp", "graph", "admin", "caFile", "tenantId", "apps", "users", "mailboxes"} {
		if _, ok := keys[k]; !ok {
			t.Errorf("emulator.json lacks %q", k)
		}
	}
	if st, err := os.Stat(h.emu.InfoFile()); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("emulator.json mode: %v %v", st.Mode(), err)
	}
	if !strings.HasPrefix(h.info.Authority, "https://127.0.0.1:") || h.info.Graph != h.info.Authority+"/v1.0" ||
		h.info.Admin != h.info.Authority+"/_emulator" || h.info.CAFile != filepath.Join(filepath.Dir(h.emu.InfoFile()), "ca.pem") ||
		h.info.TenantID != scenario.DefaultTenantID {
		t.Errorf("info = %+v", h.info)
	}
	if h.info.Apps[0].ClientSecret == "" || h.info.Apps[0].PublicClient || !h.info.Apps[1].PublicClient {
		t.Errorf("apps = %+v", h.info.Apps)
	}
	// MSAL Go against the emulator through emulator.json alone.
	cred, _ := confidential.NewCredFromSecret(h.info.Apps[0].ClientSecret)
	app, err := confidential.New(h.info.Authority+"/"+h.info.TenantID, h.info.Apps[0].ClientID, cred,
		confidential.WithHTTPClient(h.emu.HTTPClient()), confidential.WithInstanceDiscovery(false))
	if err != nil {
		t.Fatal(err)
	}
	res, err := app.AcquireTokenByCredential(context.Background(), []string{exoScope})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.emu.Entra().Verifier().Verify(res.AccessToken); err != nil {
		t.Error(err)
	}
}

func TestAdminAPI(t *testing.T) {
	h := start(t)
	msg := []byte("From: a@fabrikam.example\r\nTo: invoices@contoso.example\r\nSubject: Invoice 42\r\n\r\nPay.\r\n")
	status, b := h.admin(t, "POST", "/mailboxes/invoices@contoso.example/messages?folder=Archive", msg)
	if status != 201 || !strings.Contains(string(b), `"uid": 1`) {
		t.Fatalf("deliver: %d %s", status, b)
	}
	status, b = h.admin(t, "GET", "/mailboxes/invoices@contoso.example/folders", nil)
	if status != 200 || !strings.Contains(string(b), `"name": "Archive"`) {
		t.Errorf("folders: %d %s", status, b)
	}
	status, b = h.admin(t, "GET", "/mailboxes/invoices@contoso.example/folders/Archive/messages", nil)
	if status != 200 || !strings.Contains(string(b), `"subject": "Invoice 42"`) {
		t.Errorf("messages: %d %s", status, b)
	}
	status, b = h.admin(t, "GET", "/mailboxes/invoices@contoso.example/folders/Archive/messages/1", nil)
	if status != 200 || !bytes.Equal(b, msg) {
		t.Errorf("raw: %d %q", status, b)
	}
	for _, tc := range []struct {
		method, path, body string
		status             int
		want               string
	}{
		{"POST", "/mailboxes/nobody@contoso.example/messages", "Subject: x\r\n\r\nx", 404, "no mailbox"},
		{"POST", "/mailboxes/info@contoso.example/messages", "", 400, "empty message"},
		{"GET", "/mailboxes/nobody@contoso.example/folders", "", 404, "folders"},
		{"GET", "/mailboxes/info@contoso.example/folders/Nope/messages", "", 404, "messages"},
		{"GET", "/mailboxes/info@contoso.example/folders/INBOX/messages/x", "", 400, "uid"},
		{"POST", "/faults", `{"bogus":1}`, 400, "unknown field"},
		{"POST", "/faults", `{}`, 400, "at least one"},
		{"POST", "/faults", `{"token":{"status5xx":404}}`, 400, "500..599"},
		{"POST", "/faults", `{"imap":{"stallMs":-1}}`, 400, "durations"},
		{"POST", "/faults", `{"expireSecret":{"clientId":"nope"}}`, 404, "no app"},
		{"GET", "/nothing", "", 404, "no admin endpoint"},
	} {
		status, b := h.admin(t, tc.method, tc.path, []byte(tc.body))
		if status != tc.status || !strings.Contains(string(b), tc.want) {
			t.Errorf("%s %s %s: %d %s", tc.method, tc.path, tc.body, status, b)
		}
	}
	// Token faults through the admin API.
	status, b = h.admin(t, "POST", "/faults", []byte(`{"token":{"status5xx":503}}`))
	if status != 200 || !strings.Contains(string(b), `"status5xx": 503`) {
		t.Fatalf("set faults: %d %s", status, b)
	}
	resp, err := h.client.PostForm(h.info.Authority+"/"+h.info.TenantID+"/oauth2/v2.0/token",
		url.Values{"grant_type": {"client_credentials"}, "client_id": {defaultApp}, "client_secret": {h.defaultSecret()}, "scope": {exoScope}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Errorf("token under 5xx fault: %d", resp.StatusCode)
	}
	if status, _ := h.admin(t, "DELETE", "/faults", nil); status != 204 {
		t.Errorf("clear: %d", status)
	}
	status, b = h.admin(t, "POST", "/faults", []byte(`{"expireSecret":{"clientId":"`+defaultApp+`"}}`))
	if status != 200 {
		t.Fatalf("expire: %d %s", status, b)
	}
	resp, err = h.client.PostForm(h.info.Authority+"/"+h.info.TenantID+"/oauth2/v2.0/token",
		url.Values{"grant_type": {"client_credentials"}, "client_id": {defaultApp}, "client_secret": {h.defaultSecret()}, "scope": {exoScope}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.Contains(string(body), "AADSTS7000222") {
		t.Errorf("expired secret: %d %s", resp.StatusCode, body)
	}
	// The request log names client and identity, never the secret.
	status, b = h.admin(t, "GET", "/requests", nil)
	if status != 200 || !strings.Contains(string(b), `"outcome": "AADSTS7000222"`) || strings.Contains(string(b), h.defaultSecret()) {
		t.Errorf("requests: %d %s", status, b)
	}
}

// curlLines returns the server lines ("< ...") of curl -v output.
func curlLines(stderr string) []string {
	var out []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, "< ") {
			out = append(out, strings.TrimRight(l[2:], "\r"))
		}
	}
	return out
}

func hasLine(lines []string, pred func(string) bool) bool {
	for _, l := range lines {
		if pred(l) {
			return true
		}
	}
	return false
}

func TestCurl(t *testing.T) {
	h := start(t)
	appTok := appToken(t, h, defaultApp, h.defaultSecret(), exoScope)
	msg := "From: supplier@fabrikam.example\r\nTo: m2m@contoso.example\r\nSubject: Order 1001\r\n\r\nM2M payload\r\n"
	if status, b := h.admin(t, "POST", "/mailboxes/m2m@contoso.example/messages", []byte(msg)); status != 201 {
		t.Fatalf("deliver: %d %s", status, b)
	}
	imapURL := "imaps://" + h.info.IMAP
	smtpURL := "smtp://" + h.info.SMTP
	ca := h.info.CAFile

	t.Run("imap fetch with an app token", func(t *testing.T) {
		out, errOut, code := run(t, "curl", nil, "-sS", "--cacert", ca, "--user", "m2m@contoso.example",
			"--oauth2-bearer", appTok, imapURL+"/INBOX;UID=1")
		if code != 0 || out != msg {
			t.Fatalf("curl exit %d, out %q, err %s", code, out, errOut)
		}
	})
	t.Run("smtp send with an app token", func(t *testing.T) {
		body := "From: m2m@contoso.example\r\nTo: anna@contoso.example\r\nSubject: curl says hi\r\n\r\nhello\r\n"
		_, errOut, code := run(t, "curl", []byte(body), "-sS", "-v", "--ssl-reqd", "--cacert", ca, "--user", "m2m@contoso.example",
			"--oauth2-bearer", appTok, "--mail-from", "m2m@contoso.example", "--mail-rcpt", "anna@contoso.example", "-T", "-", smtpURL)
		if code != 0 {
			t.Fatalf("curl exit %d: %s", code, errOut)
		}
		lines := curlLines(errOut)
		if !hasLine(lines, func(l string) bool { return l == "235 2.7.0 Authentication successful" }) {
			t.Errorf("no 235 in %q", lines)
		}
		status, b := h.admin(t, "GET", "/mailboxes/anna@contoso.example/folders/INBOX/messages", nil)
		if status != 200 || !strings.Contains(string(b), "curl says hi") {
			t.Errorf("not delivered: %s", b)
		}
	})

	graphTok := appToken(t, h, defaultApp, h.defaultSecret(), graphScope)
	negIMAP := []struct {
		name, user, token string
		want              string
	}{
		{"graph token used for imap", "m2m@contoso.example", graphTok, imapAuthFailed},
		{"missing role", "m2m@contoso.example", appToken(t, h, noRolesID, testSecret, exoScope), imapAuthFailed},
		{"imap disabled on the mailbox", noIMAPBox, appTok, imapAuthFailed},
		{"garbage token", "m2m@contoso.example", "eyJhbGciOiJub25lIn0.e30.", imapAuthFailed},
		{"missing mailbox permission", "invoices@contoso.example", appToken(t, h, limitedID, testSecret, exoScope), imapNotConnected},
	}
	for _, tc := range negIMAP {
		t.Run("imap "+tc.name, func(t *testing.T) {
			_, errOut, code := run(t, "curl", nil, "-sS", "-v", "--cacert", ca, "--user", tc.user, "--oauth2-bearer", tc.token, imapURL+"/INBOX;UID=1")
			if code == 0 {
				t.Fatal("curl succeeded")
			}
			lines := curlLines(errOut)
			want := " NO " + tc.want
			if tc.want == imapNotConnected {
				want = " BAD " + tc.want
			}
			if !hasLine(lines, func(l string) bool { return strings.HasSuffix(l, want) }) {
				t.Errorf("no line ending %q in %q", want, lines)
			}
		})
	}
	t.Run("smtp auth disabled", func(t *testing.T) {
		_, errOut, code := run(t, "curl", []byte("Subject: x\r\n\r\nx\r\n"), "-sS", "-v", "--ssl-reqd", "--cacert", ca, "--user", noSMTPBox,
			"--oauth2-bearer", appTok, "--mail-from", noSMTPBox, "--mail-rcpt", "anna@contoso.example", "-T", "-", smtpURL)
		if code == 0 {
			t.Fatal("curl succeeded")
		}
		if lines := curlLines(errOut); !hasLine(lines, func(l string) bool { return strings.HasPrefix(l, "535 "+smtpDisabled+" [") }) {
			t.Errorf("no 5.7.139 reply in %q", lines)
		}
	})
	t.Run("smtp graph token", func(t *testing.T) {
		_, errOut, code := run(t, "curl", []byte("Subject: x\r\n\r\nx\r\n"), "-sS", "-v", "--ssl-reqd", "--cacert", ca, "--user", "m2m@contoso.example",
			"--oauth2-bearer", graphTok, "--mail-from", "m2m@contoso.example", "--mail-rcpt", "anna@contoso.example", "-T", "-", smtpURL)
		if code == 0 {
			t.Fatal("curl succeeded")
		}
		if lines := curlLines(errOut); !hasLine(lines, func(l string) bool { return strings.HasPrefix(l, "535 "+smtpAuthFailed+" [") }) {
			t.Errorf("no 5.7.3 reply in %q", lines)
		}
	})
}

// pyClient is a small imaplib/smtplib driver: it reads a list of operations (JSON) on stdin and
// prints one JSON result per operation.
const pyClient = `
import imaplib, json, smtplib, ssl, sys

cfg = json.load(sys.stdin)
ctx = ssl.create_default_context(cafile=cfg["ca"])
ih, ip = cfg["imap"].rsplit(":", 1)
sh, sp = cfg["smtp"].rsplit(":", 1)
out = []

def auth(user, tok):
    return "user=%s\x01auth=Bearer %s\x01\x01" % (user, tok)

for op in cfg["ops"]:
    r = {"name": op["name"], "stage": "", "error": "", "code": 0, "data": ""}
    try:
        if op["kind"] == "imap":
            m = imaplib.IMAP4_SSL(ih, int(ip), ssl_context=ctx, timeout=15)
            try:
                r["stage"] = "auth"
                m.authenticate("XOAUTH2", lambda _: auth(op["user"], op["token"]).encode())
                r["stage"] = "select"
                typ, data = m.select("INBOX", readonly=True)
                r["stage"] = "fetch"
                typ, data = m.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
                r["data"] = " ".join(d[1].decode().strip() for d in data if isinstance(d, tuple))
                r["stage"] = "done"
            finally:
                try:
                    m.logout()
                except Exception:
                    pass
        else:
            s = smtplib.SMTP(sh, int(sp), timeout=15)
            try:
                s.starttls(context=ctx)
                s.ehlo()
                r["stage"] = "auth"
                s.auth("XOAUTH2", lambda challenge=None: auth(op["user"], op["token"]) if challenge is None else "", initial_response_ok=True)
                r["stage"] = "send"
                s.sendmail(op["from"], [op["to"]], op["msg"])
                r["stage"] = "done"
            finally:
                try:
                    s.quit()
                except Exception:
                    pass
    except smtplib.SMTPResponseException as e:
        r["code"], r["error"] = e.smtp_code, e.smtp_error.decode()
    except Exception as e:
        r["error"] = str(e)
    out.append(r)
print(json.dumps(out))
`

type pyOp struct {
	Name  string `json:"name"`
	Kind  string `json:"kind"`
	User  string `json:"user"`
	Token string `json:"token"`
	From  string `json:"from,omitempty"`
	To    string `json:"to,omitempty"`
	Msg   string `json:"msg,omitempty"`
}

type pyResult struct {
	Name  string `json:"name"`
	Stage string `json:"stage"`
	Error string `json:"error"`
	Code  int    `json:"code"`
	Data  string `json:"data"`
}

func runPython(t *testing.T, h *harness, ops []pyOp) map[string]pyResult {
	t.Helper()
	in, _ := json.Marshal(map[string]any{"ca": h.info.CAFile, "imap": h.info.IMAP, "smtp": h.info.SMTP, "ops": ops})
	out, errOut, code := run(t, "python3", in, "-c", pyClient)
	if code != 0 {
		t.Fatalf("python3 exit %d: %s", code, errOut)
	}
	var res []pyResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("python output %q: %v", out, err)
	}
	m := map[string]pyResult{}
	for _, r := range res {
		m[r.Name] = r
	}
	return m
}

func TestPython(t *testing.T) {
	h := start(t)
	for i, subj := range []string{"Invoice A", "Invoice B"} {
		msg := "From: x@fabrikam.example\r\nTo: invoices@contoso.example\r\nSubject: " + subj + "\r\n\r\nbody\r\n"
		if status, _ := h.admin(t, "POST", "/mailboxes/invoices@contoso.example/messages", []byte(msg)); status != 201 {
			t.Fatalf("deliver %d", i)
		}
	}
	if status, _ := h.admin(t, "POST", "/mailboxes/anna@contoso.example/messages", []byte("Subject: For Anna\r\n\r\nx\r\n")); status != 201 {
		t.Fatal("deliver to anna")
	}
	appTok := appToken(t, h, defaultApp, h.defaultSecret(), exoScope)
	annaTok := userToken(t, h, "anna@contoso.example", userScopes)
	annaGraphTok := userToken(t, h, "anna@contoso.example", "IMAP.AccessAsUser.All SMTP.Send") // bare names: Graph audience
	mail := func(from, to, subj string) string {
		return "From: " + from + "\r\nTo: " + to + "\r\nSubject: " + subj + "\r\n\r\nhello from smtplib\r\n"
	}
	ops := []pyOp{
		{Name: "app imap", Kind: "imap", User: "invoices@contoso.example", Token: appTok},
		{Name: "user imap", Kind: "imap", User: "anna@contoso.example", Token: annaTok},
		{Name: "user imap shared mailbox", Kind: "imap", User: "info@contoso.example", Token: annaTok},
		{Name: "app smtp", Kind: "smtp", User: "webshop@contoso.example", Token: appTok, From: "webshop@contoso.example", To: "erik@contoso.example", Msg: mail("webshop@contoso.example", "erik@contoso.example", "Order confirmation")},
		{Name: "user smtp", Kind: "smtp", User: "anna@contoso.example", Token: annaTok, From: "anna@contoso.example", To: "erik@contoso.example", Msg: mail("anna@contoso.example", "erik@contoso.example", "From Anna")},
		// Negative cases, each with Exchange's exact reply.
		{Name: "wrong audience", Kind: "imap", User: "anna@contoso.example", Token: annaGraphTok},
		{Name: "graph token imap", Kind: "imap", User: "invoices@contoso.example", Token: appToken(t, h, defaultApp, h.defaultSecret(), graphScope)},
		{Name: "missing role", Kind: "imap", User: "invoices@contoso.example", Token: appToken(t, h, noRolesID, testSecret, exoScope)},
		{Name: "missing role smtp", Kind: "smtp", User: "invoices@contoso.example", Token: appToken(t, h, noRolesID, testSecret, exoScope), From: "invoices@contoso.example", To: "erik@contoso.example", Msg: mail("invoices@contoso.example", "erik@contoso.example", "x")},
		{Name: "missing mailbox permission", Kind: "imap", User: "invoices@contoso.example", Token: appToken(t, h, limitedID, testSecret, exoScope)},
		{Name: "no service principal", Kind: "imap", User: "invoices@contoso.example", Token: appToken(t, h, noSPID, testSecret, exoScope)},
		{Name: "service principal with wrong object id", Kind: "imap", User: "invoices@contoso.example", Token: appToken(t, h, wrongOIDID, testSecret, exoScope)},
		{Name: "user opens a mailbox without FullAccess", Kind: "imap", User: "erik@contoso.example", Token: annaTok},
		{Name: "imap disabled", Kind: "imap", User: noIMAPBox, Token: appTok},
		{Name: "smtp auth disabled", Kind: "smtp", User: noSMTPBox, Token: appTok, From: noSMTPBox, To: "erik@contoso.example", Msg: mail(noSMTPBox, "erik@contoso.example", "x")},
		{Name: "send as denied", Kind: "smtp", User: "anna@contoso.example", Token: annaTok, From: "anna@contoso.example", To: "info@contoso.example", Msg: mail("erik@contoso.example", "info@contoso.example", "spoof")},
	}
	res := runPython(t, h, ops)
	expect := func(name, stage, errContains string, code int) {
		t.Helper()
		r, ok := res[name]
		if !ok {
			t.Errorf("%s: no result", name)
			return
		}
		if r.Stage != stage || !strings.Contains(r.Error, errContains) || r.Code != code || (errContains == "" && r.Error != "") {
			t.Errorf("%s: got stage %q code %d error %q, want stage %q code %d error containing %q", name, r.Stage, r.Code, r.Error, stage, code, errContains)
		}
	}
	expect("app imap", "done", "", 0)
	if d := res["app imap"].Data; !strings.Contains(d, "Invoice A") || !strings.Contains(d, "Invoice B") {
		t.Errorf("app imap fetched %q", d)
	}
	expect("user imap", "done", "", 0)
	if d := res["user imap"].Data; !strings.Contains(d, "For Anna") {
		t.Errorf("user imap fetched %q", d)
	}
	expect("user imap shared mailbox", "done", "", 0)
	expect("app smtp", "done", "", 0)
	expect("user smtp", "done", "", 0)
	expect("wrong audience", "auth", imapAuthFailed, 0)
	expect("graph token imap", "auth", imapAuthFailed, 0)
	expect("missing role", "auth", imapAuthFailed, 0)
	expect("missing role smtp", "auth", smtpAuthFailed, 535)
	expect("missing mailbox permission", "select", imapNotConnected, 0)
	expect("no service principal", "select", imapNotConnected, 0)
	expect("service principal with wrong object id", "auth", imapAuthFailed, 0)
	expect("user opens a mailbox without FullAccess", "auth", imapAuthFailed, 0)
	expect("imap disabled", "auth", imapAuthFailed, 0)
	expect("smtp auth disabled", "auth", smtpDisabled, 535)
	expect("send as denied", "send", smtpSendAsDenied, 554)
	// Python's messages: the exact words, e.g. imaplib's "AUTHENTICATE failed." as the whole error.
	if e := res["imap disabled"].Error; e != imapAuthFailed {
		t.Errorf("imaplib error %q, want exactly %q", e, imapAuthFailed)
	}
	status, b := h.admin(t, "GET", "/mailboxes/erik@contoso.example/folders/INBOX/messages", nil)
	if status != 200 || !strings.Contains(string(b), "Order confirmation") || !strings.Contains(string(b), "From Anna") {
		t.Errorf("erik's INBOX: %s", b)
	}

	// An expired token: the clock moves past its exp.
	h.clock.Add(2 * time.Hour)
	res = runPython(t, h, []pyOp{
		{Name: "expired imap", Kind: "imap", User: "invoices@contoso.example", Token: appTok},
		{Name: "expired smtp", Kind: "smtp", User: "invoices@contoso.example", Token: appTok, From: "invoices@contoso.example", To: "erik@contoso.example", Msg: mail("invoices@contoso.example", "erik@contoso.example", "x")},
	})
	expect("expired imap", "auth", imapAuthFailed, 0)
	expect("expired smtp", "auth", smtpAuthFailed, 535)
	// Refused logins through the admin API.
	h.clock.Add(-2 * time.Hour)
	if status, b := h.admin(t, "POST", "/faults", []byte(`{"imap":{"refuseLogins":true}}`)); status != 200 {
		t.Fatalf("faults: %d %s", status, b)
	}
	res = runPython(t, h, []pyOp{{Name: "refused", Kind: "imap", User: "invoices@contoso.example", Token: appTok}})
	expect("refused", "auth", imapAuthFailed, 0)
}
