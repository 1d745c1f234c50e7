package web

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"inkorg/internal/cloud"
	"inkorg/internal/doctor"
	"inkorg/internal/emulator"
	"inkorg/internal/entra"
	"inkorg/internal/store"
)

// TestBrowser drives the real UI in Debian's chromium (headless, through chromedp) against the
// emulator: sign in, set the system settings to Exchange Online with a client secret, override a user,
// add an incoming account and validate it (every step ✓), see the secret only as "set", switch to
// Swedish. It saves a screenshot of each procedure into $INKORG_SCREENSHOTS (the README's
// docs/screenshots: INKORG_SCREENSHOTS=$PWD/docs/screenshots go test ./internal/web -run Browser),
// else into the test's temporary directory. Needs the Debian package chromium.
func TestBrowser(t *testing.T) {
	chrome, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("the browser test needs Debian's chromium (apt-get install -y chromium)")
	}
	shots := os.Getenv("INKORG_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}

	emu, err := emulator.New(emulator.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := emu.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	info := emu.Info()
	var app emulator.InfoApp
	for _, a := range info.Apps {
		if !a.PublicClient && a.ClientSecret != "" {
			app = a
		}
	}
	cl, err := cloud.Load(emu.InfoFile())
	if err != nil {
		t.Fatal(err)
	}
	st := openStore(t)
	addOperator(t, st, "admin", store.RoleAdmin, "", adminPW)
	log := slog.New(slog.DiscardHandler)
	doc := &doctor.Doctor{Tokens: entra.New(entra.Config{Cloud: cl, Logger: log}), Cloud: cl, Logger: log, Timeout: 20 * time.Second}
	h, err := New(Config{Store: st, Validate: doc.CheckAccount, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chrome), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.WindowSize(1200, 900), chromedp.Flag("lang", "en-US"))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	bctx, cancelB := chromedp.NewContext(actx)
	defer cancelB()
	if err := chromedp.Do(bctx); err != nil { // starts the browser; its context must not time out
		t.Fatalf("start chromium: %v", err)
	}
	ctx, cancelT := context.WithTimeout(bctx, 90*time.Second)
	defer cancelT()

	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		for i, st := range steps {
			sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			err := chromedp.Do(sctx, st)
			cancel()
			if err != nil {
				lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				loc, _ := chromedp.Run(lctx, chromedp.Location())
				body, _ := chromedp.Run(lctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
				cancel()
				t.Fatalf("%s, step %d: %v\nat %s:\n%s", what, i+1, err, loc, body)
			}
		}
	}
	// choose sets a select and fires its change event, as a person choosing would.
	choose := func(sel, value string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Evaluate[string](`(function(){var e=document.querySelector(`+quote(sel)+`);e.value=`+quote(value)+
				`;e.dispatchEvent(new Event("change",{bubbles:true}));return e.value})()`)(ctx, tg)
			return err
		})
	}
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(shots, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(css(sel)))
		if err != nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		return strings.TrimSpace(s)
	}
	page := func() string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.OuterHTML(css("html")))
		if err != nil {
			t.Fatalf("read the page: %v", err)
		}
		return s
	}
	evalBool := func(expr string) bool {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		return v
	}
	evalInt := func(expr string) int {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[int](expr))
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		return v
	}

	// Sign in.
	do("sign in", chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(css("#signin")),
		chromedp.SendKeys(css("#name"), "admin"), chromedp.SendKeys(css("#password"), adminPW),
		chromedp.Click(css("#signin")), chromedp.WaitVisible(css("#dashboard")))

	// System settings: Exchange Online with a client secret. The fields enable as the method and flow are chosen.
	do("system", chromedp.Navigate(srv.URL+"/system"), chromedp.WaitVisible(css("#system-form")))
	if !evalBool(`document.querySelector("#f-clientId").disabled`) {
		t.Error("Application (client) ID is enabled before the method is Exchange Online")
	}
	do("system: method", choose("#f-emailMethod", "exchange-online"), choose("#f-authFlow", "client-secret"))
	if !evalBool(`document.querySelector("#f-serverAddress").disabled`) || evalBool(`document.querySelector("#f-clientSecret").disabled`) {
		t.Error("under Exchange Online with a client secret, Server address is enabled or Client secret disabled")
	}
	do("system: fill", chromedp.SendKeys(css("#f-clientId"), app.ClientID), chromedp.SendKeys(css("#f-tenantId"), info.TenantID),
		chromedp.SendKeys(css("#f-clientSecret"), app.ClientSecret), chromedp.Click(css("#save")), chromedp.WaitVisible(css("#flash")))
	if got := text("#state-clientSecret"); got != "set" {
		t.Errorf("Client secret shows %q, want set", got)
	}
	if strings.Contains(page(), app.ClientSecret) {
		t.Error("the client secret is in the page")
	}
	shot("1-system-settings.png")

	// Users: override ANNA's e-mail address.
	do("users", chromedp.Navigate(srv.URL+"/users"), chromedp.SendKeys(css("#user-name"), "ANNA"),
		chromedp.Click(css("#open-user")), chromedp.WaitVisible(css("#user-form")),
		chromedp.SendKeys(css("#f-emailAddress"), "anna@contoso.example"), choose("#f-copyToSelf", "bcc"),
		chromedp.Click(css("#save")), chromedp.WaitVisible(css("#flash")))
	if got := text("#eff-emailAddress"); !strings.Contains(got, "anna@contoso.example") || !strings.Contains(got, "user") {
		t.Errorf("ANNA's effective e-mail address = %q", got)
	}
	if got := text("#f-clientId") + " " + text("#eff-clientId"); !strings.Contains(got, app.ClientID) || !strings.Contains(got, "system") {
		t.Errorf("ANNA's effective client ID = %q, want the system's", got)
	}
	shot("2-users.png")

	// Settings for incoming e-mail: add m2m@ and validate it.
	do("incoming", chromedp.Navigate(srv.URL+"/incoming"), chromedp.SendKeys(css("#a-address"), "m2m@contoso.example"),
		choose("#a-type", "monitor-to-monitor"), chromedp.Click(css("#add")), chromedp.WaitVisible(css("#account-form")),
		chromedp.Click(css("#validate")), chromedp.WaitVisible(css("#report")))
	steps, passed := evalInt(`document.querySelectorAll("#report .step").length`), evalInt(`document.querySelectorAll("#report .step.passed").length`)
	bad := evalInt(`document.querySelectorAll("#report .step.failed, #report .step.skipped").length`)
	if steps == 0 || bad != 0 || passed == 0 {
		t.Errorf("validation: %d steps, %d passed, %d failed or skipped:\n%s", steps, passed, bad, text("#report"))
	}
	if strings.Contains(page(), app.ClientSecret) || !strings.Contains(text("#eff-clientSecret"), "set") {
		t.Errorf("the account page shows the secret, or not as set: %q", text("#eff-clientSecret"))
	}
	shot("3-settings-for-incoming-e-mail.png")
	do("validate selected address", chromedp.Navigate(srv.URL+"/incoming"), chromedp.Click(css("#sel-1")),
		chromedp.Click(css("#validate")), chromedp.WaitVisible(css("#report")))
	if evalInt(`document.querySelectorAll("#report .step.failed").length`) != 0 {
		t.Errorf("Validate selected address failed: %s", text("#report"))
	}

	// Webshop – Administration.
	do("webshop", chromedp.Navigate(srv.URL+"/webshop"), choose("#f-emailMethod", "according-to-user-settings"),
		chromedp.Click(css("#save")), chromedp.WaitVisible(css("#flash")))
	shot("4-webshop-administration.png")

	// Switch to Swedish.
	do("svenska", chromedp.Click(css("#lang-sv")), chromedp.WaitVisible(css("#webshop-form")))
	if got := text("h1"); got != "Webbshop Administration" {
		t.Errorf("Swedish title = %q", got)
	}
	do("systeminställningar", chromedp.Navigate(srv.URL+"/system"), chromedp.WaitVisible(css("#system-form")))
	html := page()
	for _, want := range []string{"Systeminställningar", "Metod för e-post", "Program-ID (klient)", "Katalog-ID (klientorganisation)",
		"Autentiseringsflöde", "Klienthemlighet", "Serverbaserat, via Microsoft Exchange Online", "Inställningar för inkommande e-post"} {
		if !strings.Contains(html, want) {
			t.Errorf("the Swedish system settings lack %q", want)
		}
	}
	shot("5-systeminstallningar.png")
	t.Logf("screenshots in %s", shots)
}

func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}
