package ingest

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"inkorg/internal/cloud"
	"inkorg/internal/emulator"
	"inkorg/internal/emulator/scenario"
	"inkorg/internal/entra"
	"inkorg/internal/imapsource"
	"inkorg/internal/secrets"
	"inkorg/internal/settings"
	"inkorg/internal/store"
	"inkorg/internal/store/sqlite"
	"inkorg/internal/testutil/dovecot"
)

// This file runs the ingest worker against a real third-party IMAP server: Debian's Dovecot 2.3
// (internal/testutil/dovecot), signing in with XOAUTH2 and tokens from the emulated Entra ID, or with
// a user name and password. The helpers take testing.TB so that bench_test.go shares them.
//
// Dovecot and app-only tokens. Dovecot's oauth2 passdb (local JWT validation) takes the user name
// from one claim (username_attribute) and requires it to equal the SASL user after both are passed
// through username_format (default %Lu). Client-credentials tokens carry no upn, so with the
// defaults Dovecot refuses them ("No username returned", or a mismatch against oid/sub). Exchange
// Online's rule for app-only tokens is different: the token names the app, and any mailbox the
// app's service principal has been granted is open to it. newPeer reproduces that in Dovecot: the
// user name is taken from oid (always present), and username_format is the constant "app-only", so
// both sides expand to the same string and the check passes for every mailbox — the token's
// signature (the emulator's RS256 key, by kid), issuer (https://sts.windows.net/<tenant>/), audience
// (https://outlook.office365.com) and expiry are still checked by Dovecot. The dovecot helper has
// no option for username_format, so newPeer appends it to the helper's oauth2.conf.ext and reloads
// Dovecot (see appOnlyDovecot).

// peer is an emulated tenant (its Entra ID issues the tokens), a real Dovecot that trusts them, a
// store, and the cloud endpoints that send IMAP to Dovecot.
type peer struct {
	tb    testing.TB
	emu   *emulator.Emulator
	dc    *dovecot.Server
	cloud cloud.Endpoints // Authority: the emulator's; IMAP: Dovecot's imaps; RootCAs: both CAs
	store store.Store
	dir   string
}

// newPeer starts the emulator and Dovecot (mail in memory when inMemory) and opens a store.
func newPeer(tb testing.TB, inMemory bool) *peer {
	tb.Helper()
	sc := scenario.Default(time.Now())
	emu, err := emulator.New(emulator.Config{Dir: tb.TempDir(), Scenario: sc})
	if err != nil {
		tb.Fatal(err)
	}
	if err := emu.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { emu.Close() })
	ec, err := cloud.Load(emu.InfoFile())
	if err != nil {
		tb.Fatal(err)
	}
	info := emu.Info()
	dc := dovecot.Start(tb, dovecot.Options{
		MailInMemory:  inMemory,
		Audience:      cloud.ExchangeResource,
		Issuers:       []string{"https://sts.windows.net/" + info.TenantID + "/"},
		UsernameClaim: "oid",
	})
	kid, pub := emulatorSigningKey(tb, ec, info.TenantID)
	trustKey(tb, dc, kid, pub) // v1 tokens have no azp: keys/default/RS256/<kid>
	appOnlyDovecot(tb, dc)

	c := ec
	c.IMAP = dc.IMAPAddr()
	c.RootCAs = ec.RootCAs.Clone()
	if !c.RootCAs.AppendCertsFromPEM(dc.CAPEM()) {
		tb.Fatal("Dovecot's CA is not PEM")
	}
	p := &peer{tb: tb, emu: emu, dc: dc, cloud: c}
	p.store, p.dir = openStore(tb)
	p.waitXOAUTH2()
	return p
}

// openStore opens a new SQLite store in a temporary directory.
func openStore(tb testing.TB) (store.Store, string) {
	tb.Helper()
	dir := tb.TempDir()
	st, err := sqlite.Open(context.Background(), sqlite.Options{Path: filepath.Join(dir, "inkorg.db"), Key: func(string) (*secrets.Sealer, error) {
		s, _, err := secrets.LoadOrCreateKeyFile(filepath.Join(dir, "inkorg.key"), true)
		return s, err
	}})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return st, dir
}

// emulatorSigningKey reads the emulator's token signing key from its JWKS document, as a relying
// party would.
func emulatorSigningKey(tb testing.TB, c cloud.Endpoints, tenant string) (string, *rsa.PublicKey) {
	tb.Helper()
	resp, err := c.HTTPClient().Get(c.Authority + "/" + tenant + "/discovery/v2.0/keys")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Keys []struct{ Kty, Kid, N, E string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || len(doc.Keys) == 0 {
		tb.Fatalf("JWKS: %v (%d keys)", err, len(doc.Keys))
	}
	k := doc.Keys[0]
	n, err1 := base64.RawURLEncoding.DecodeString(k.N)
	e, err2 := base64.RawURLEncoding.DecodeString(k.E)
	if err1 != nil || err2 != nil || k.Kty != "RSA" {
		tb.Fatalf("JWKS key %+v: %v %v", k, err1, err2)
	}
	return k.Kid, &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
}

// trustKey makes Dovecot accept RS256 tokens without azp signed by pub under kid. The emulator's kid
// is a base64url SHA-1 and starts with '-' or '_' one time in 32, which the dovecot helper's
// TrustKey refuses (it wants a letter or digit first; Dovecot itself takes any kid without '/' or
// '%'): then the key file is installed by the helper under another name and copied.
func trustKey(tb testing.TB, dc *dovecot.Server, kid string, pub *rsa.PublicKey) {
	tb.Helper()
	if kid == "" || strings.ContainsAny(kid, "/%") {
		tb.Fatalf("unexpected kid %q", kid)
	}
	if kid[0] != '-' && kid[0] != '_' {
		dc.TrustKey("", "RS256", kid, pub)
		return
	}
	const stand = "inkorg-stand-in"
	dc.TrustKey("", "RS256", stand, pub)
	dir := filepath.Join(dc.Dir(), "keys", "default", "RS256")
	b, err := os.ReadFile(filepath.Join(dir, stand))
	if err != nil {
		tb.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, stand))
	if err != nil {
		tb.Fatal(err)
	}
	owner := fi.Sys().(*syscall.Stat_t)
	dst := filepath.Join(dir, kid)
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.Chown(dst, int(owner.Uid), int(owner.Gid)); err != nil {
		tb.Fatal(err)
	}
}

// appOnlyDovecot makes Dovecot accept an app-only token for any mailbox (see the file comment) and
// reloads it.
func appOnlyDovecot(tb testing.TB, dc *dovecot.Server) {
	tb.Helper()
	p := filepath.Join(dc.Dir(), "oauth2.conf.ext")
	conf, err := os.ReadFile(p)
	if err != nil {
		tb.Fatal(err)
	}
	if !bytes.Contains(conf, []byte("username_attribute = oid")) {
		tb.Fatalf("unexpected oauth2.conf.ext:\n%s", conf)
	}
	conf = append(conf, "username_format = app-only\n"...)
	// Written in place: the file keeps its owner (Dovecot's run user) and mode.
	if err := os.WriteFile(p, conf, 0o600); err != nil {
		tb.Fatal(err)
	}
	dc.Doveadm("reload")
}

// systemOnline is the system settings for the Client secret flow of the emulator's default
// (confidential) app.
func (p *peer) systemOnline() settings.System {
	info := p.emu.Info()
	sys := settings.System{EmailMethod: settings.MethodExchangeOnline, TenantID: info.TenantID, AuthFlow: settings.FlowClientSecret}
	for _, a := range info.Apps {
		if !a.PublicClient {
			sys.ClientID, sys.ClientSecret = a.ClientID, settings.NewSecret(a.ClientSecret)
		}
	}
	return sys
}

// waitXOAUTH2 waits until Dovecot (after its reload) lets the app in to a mailbox with an emulator
// token, the way the worker signs in.
func (p *peer) waitXOAUTH2() {
	p.tb.Helper()
	sys := p.systemOnline()
	id := entra.Identity{TenantID: sys.TenantID, ClientID: sys.ClientID, Flow: sys.AuthFlow, Secret: sys.ClientSecret}
	tok, err := entra.New(entra.Config{Cloud: p.cloud}).Token(context.Background(), id, entra.PurposeIMAP)
	if err != nil {
		p.tb.Fatal(err)
	}
	var last error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		c, err := imapsource.Dial(context.Background(), imapsource.Config{Addr: p.cloud.IMAP, TLSConfig: p.cloud.TLSConfig(""), Timeout: 5 * time.Second})
		if err != nil {
			last = err
			continue
		}
		last = c.AuthenticateXOAUTH2("probe@contoso.example", tok.Value())
		c.Close()
		if last == nil {
			return
		}
	}
	p.tb.Fatalf("Dovecot does not accept the emulator's app-only token: %v", last)
}

// configure writes the system settings and adds the accounts; it returns the accounts with their IDs.
func configure(tb testing.TB, st store.Store, sys settings.System, accounts ...settings.IncomingAccount) []settings.IncomingAccount {
	tb.Helper()
	ctx := context.Background()
	if err := st.PutSystem(ctx, sys, "test"); err != nil {
		tb.Fatal(err)
	}
	var out []settings.IncomingAccount
	for _, a := range accounts {
		a, err := st.AddIncomingAccount(ctx, a, "test")
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}

// startManager starts a Manager on st with quick reloads and backoff; tweak (if not nil) may change
// the configuration first.
func startManager(tb testing.TB, st store.Store, c cloud.Endpoints, log *slog.Logger, tweak func(*Config)) *Manager {
	tb.Helper()
	cfg := Config{Logger: log, Store: st, Tokens: entra.New(entra.Config{Cloud: c}), Cloud: c, Reload: 50 * time.Millisecond,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Timeout: 10 * time.Second}
	if tweak != nil {
		tweak(&cfg)
	}
	m := New(cfg)
	if err := m.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { m.Close() })
	return m
}

// caughtUp reports whether the store's cursor of the account's folder has reached lastUID under
// the given UIDVALIDITY and no committed message waits for its move: then every message up to
// lastUID is stored and gone from the folder. It asks only the store (cheap enough to poll during
// a benchmark).
func caughtUp(tb testing.TB, st store.Store, accountID int64, folder string, validity, lastUID uint32) bool {
	tb.Helper()
	ctx := context.Background()
	cur, err := st.Cursor(ctx, accountID, folder)
	if err != nil {
		tb.Fatal(err)
	}
	if cur.UIDValidity != validity || cur.LastUID < lastUID {
		return false
	}
	pm, err := st.PendingMoves(ctx, accountID)
	if err != nil {
		tb.Fatal(err)
	}
	return len(pm) == 0
}

// poll polls cond until it holds or d passes.
func poll(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// allMessages lists every stored message.
func allMessages(tb testing.TB, st store.Store, q store.MessageQuery) []store.Message {
	tb.Helper()
	var all []store.Message
	for {
		page, err := st.Messages(context.Background(), q)
		if err != nil {
			tb.Fatal(err)
		}
		if len(page) == 0 {
			return all
		}
		all = append(all, page...)
		q.After = page[len(page)-1].Seq
	}
}

// checkStoredOnce checks that the store holds exactly the messages of want (Message-ID → raw bytes),
// each once and byte for byte, and returns the stored messages by Message-ID.
func checkStoredOnce(tb testing.TB, st store.Store, want map[string][]byte) map[string]store.Message {
	tb.Helper()
	got := map[string]store.Message{}
	for _, m := range allMessages(tb, st, store.MessageQuery{}) {
		if _, dup := got[m.MessageID]; dup {
			tb.Errorf("message %s stored twice", m.MessageID)
			continue
		}
		got[m.MessageID] = m
	}
	if len(got) != len(want) {
		tb.Errorf("%d distinct messages stored, want %d", len(got), len(want))
	}
	for id, raw := range want {
		m, ok := got[id]
		if !ok {
			tb.Errorf("message %s not stored", id)
			continue
		}
		b, err := st.Raw(context.Background(), m.ID)
		if err != nil {
			tb.Fatal(err)
		}
		if !bytes.Equal(b, raw) {
			tb.Errorf("message %s: stored bytes differ from the delivered ones (%d vs %d bytes)", id, len(b), len(raw))
		}
	}
	return got
}

// messageID is the Message-ID (without brackets) of a generated message.
func messageID(raw []byte) string {
	i := bytes.Index(raw, []byte("\r\nMessage-ID: <"))
	if i < 0 {
		panic("no Message-ID")
	}
	rest := raw[i+len("\r\nMessage-ID: <"):]
	return string(rest[:bytes.IndexByte(rest, '>')])
}

// ingestMix is message i of a mix: every third a Monitor-to-Monitor purchase order (text, PDF,
// XML, about 10 KB), the others general messages.
func ingestMix(i int) []byte {
	if i%3 == 0 {
		return m2mMessage(i)
	}
	return plainMessage(i)
}

// raceEnabled reports whether the test binary was built with -race. The race detector makes the
// worker (modernc's SQLite above all) about 30 times slower, so the tests below use fewer messages
// under it to stay within seconds.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// scaled is n, or small under the race detector.
func scaled(n, small int) int {
	if raceEnabled() {
		return small
	}
	return n
}

func TestIngestFromDovecotXOAUTH2(t *testing.T) {
	t.Parallel()
	n := scaled(2000, 300)
	const box = "m2m@contoso.example"
	p := newPeer(t, false)
	accts := configure(t, p.store, p.systemOnline(), settings.IncomingAccount{Address: box, Type: settings.TypeMonitorToMonitor})
	want := map[string][]byte{}
	p.dc.DeliverN(box, "INBOX", n, func(i int) []byte {
		raw := ingestMix(i)
		want[messageID(raw)] = raw
		return raw
	})
	st := p.dc.Status(box, "INBOX")
	if int(st.Messages) != n || int(st.Unseen) != n {
		t.Fatalf("INBOX before: %+v", st)
	}
	start := time.Now()
	startManager(t, p.store, p.cloud, testLogger(t), nil)
	poll(t, 90*time.Second, fmt.Sprintf("%d messages stored and moved", n), func() bool {
		return caughtUp(t, p.store, accts[0].ID, "INBOX", st.UIDValidity, st.UIDNext-1)
	})
	t.Logf("%d messages from Dovecot with XOAUTH2 in %v", n, time.Since(start).Round(time.Millisecond))

	if got := p.dc.Status(box, "INBOX"); got.Messages != 0 {
		t.Errorf("INBOX after: %+v", got)
	}
	proc := p.dc.Status(box, settings.DefaultProcessedFolder)
	if int(proc.Messages) != n || int(proc.Unseen) != n {
		t.Errorf("%s: %+v; want %d messages, all unseen (\\Seen never set)", settings.DefaultProcessedFolder, proc, n)
	}
	got := checkStoredOnce(t, p.store, want)
	m2m := 0
	for _, m := range got {
		if m.Type != settings.TypeMonitorToMonitor || m.M2M == nil {
			t.Fatalf("message %s: type %q, M2M %+v", m.MessageID, m.Type, m.M2M)
		}
		if strings.HasPrefix(m.MessageID, "po-") {
			m2m++
			if m.M2M.Kind != "purchase-order" || m.M2M.XMLIndex < 0 || m.M2M.PDFIndex < 0 || !strings.HasPrefix(m.M2M.DocumentNumber, "PO-") {
				t.Errorf("purchase order %s not recognised: %+v", m.MessageID, m.M2M)
			}
		} else if m.M2M.Kind != "unknown" {
			t.Errorf("general message %s classified as %q", m.MessageID, m.M2M.Kind)
		}
	}
	if m2m != (n+2)/3 {
		t.Errorf("%d purchase orders stored, want %d", m2m, (n+2)/3)
	}
	if s := stateOf(t, p.store, accts[0].ID); s.State != "idle" || s.TokenExpires.IsZero() {
		t.Errorf("worker state %+v", s)
	}
	// Dovecot really checks the emulator's tokens: one with a broken signature is refused.
	sys := p.systemOnline()
	tok, err := entra.New(entra.Config{Cloud: p.cloud}).Token(context.Background(),
		entra.Identity{TenantID: sys.TenantID, ClientID: sys.ClientID, Flow: sys.AuthFlow, Secret: sys.ClientSecret}, entra.PurposeIMAP)
	if err != nil {
		t.Fatal(err)
	}
	forged := []byte(tok.Value())
	i := bytes.LastIndexByte(forged, '.') + 10
	if forged[i] == 'A' {
		forged[i] = 'B'
	} else {
		forged[i] = 'A'
	}
	c, err := imapsource.Dial(context.Background(), imapsource.Config{Addr: p.cloud.IMAP, TLSConfig: p.cloud.TLSConfig(""), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.AuthenticateXOAUTH2(box, string(forged)); err == nil {
		t.Error("Dovecot accepted a token with a broken signature")
	}
}

// TestIngestFromDovecotPlainLogin reads Dovecot with the exchange-server method (user name and
// password over implicit TLS, server address and port from the settings), and changes the folder's
// UIDVALIDITY in the middle of the backlog.
//
// doveadm mailbox update --uid-validity works on Maildir (Dovecot keeps the UIDs). A busy session
// notices the reset index at its next command and is disconnected ("IMAP session state is
// inconsistent, please relogin"); an idle one was not told at all in a trial (no untagged
// UIDVALIDITY, no BYE; SEARCH still answered), so the test also kicks the user's sessions (doveadm
// kick), as a mailbox move at Microsoft ends the connection. The worker reconnects and meets the
// new UIDVALIDITY with part of the backlog stored and moved, maybe a stored batch not yet moved,
// and the rest not fetched.
func TestIngestFromDovecotPlainLogin(t *testing.T) {
	t.Parallel()
	const user, password = "orders@example.test", "orders-pw"
	n := scaled(500, 200)
	log := testLogger(t)
	dc := dovecot.Start(t, dovecot.Options{Users: map[string]string{user: password}})
	st, _ := openStore(t)
	host, port := splitHostPort(t, dc.IMAPAddr())
	sys := settings.System{EmailMethod: settings.MethodExchangeServer, ServerAddress: host, Port: port, UseSSL: true}
	accts := configure(t, st, sys, settings.IncomingAccount{Address: user, Type: settings.TypeGeneral, ExchangeUsername: user,
		ExchangePassword: settings.NewSecret(password)})
	id := accts[0].ID
	want := map[string][]byte{}
	gen := func(i int) []byte {
		raw := ingestMix(i)
		want[messageID(raw)] = raw
		return raw
	}
	dc.DeliverN(user, "INBOX", n, gen)
	before := dc.Status(user, "INBOX")
	if int(before.Messages) != n {
		t.Fatalf("INBOX before: %+v", before)
	}
	c := cloud.Endpoints{Name: "Dovecot", RootCAs: dc.CertPool(), Custom: true}
	startManager(t, st, c, log, func(cfg *Config) { cfg.BatchSize = 25 })

	// Mid-run: once part of the backlog is stored, renumber (UIDVALIDITY only: Dovecot keeps the
	// UIDs) and drop the connection.
	poll(t, 90*time.Second, "the first batches", func() bool {
		cur, err := st.Cursor(context.Background(), id, "INBOX")
		return err == nil && int(cur.LastUID) >= n/5
	})
	newValidity := before.UIDValidity - 1000
	dc.Doveadm("mailbox", "update", "-u", user, "--uid-validity", fmt.Sprint(newValidity), "INBOX")
	kick(t, dc, user)
	cur, _ := st.Cursor(context.Background(), id, "INBOX")
	t.Logf("UIDVALIDITY changed to %d with the cursor at UID %d of %d", newValidity, cur.LastUID, n)

	poll(t, 90*time.Second, "the backlog under the new UIDVALIDITY", func() bool {
		return caughtUp(t, st, id, "INBOX", newValidity, before.UIDNext-1)
	})
	if got := dc.Status(user, "INBOX"); got.Messages != 0 || got.UIDValidity != newValidity {
		t.Errorf("INBOX after: %+v", got)
	}
	// Every message is in the processed folder, unread. A few may be there twice: when the reset
	// cuts a MOVE short, Dovecot (Maildir) may have copied messages without expunging them, and
	// inkorg moves what it finds in INBOX again (it never deletes). Only messages stored before the
	// reset can be among them, and none three times. The store holds each once.
	proc := dc.Status(user, settings.DefaultProcessedFolder)
	if proc.Unseen != proc.Messages {
		t.Errorf("%s: %+v; want all unseen", settings.DefaultProcessedFolder, proc)
	}
	twice := 0
	ids := dc.MessageIDs(user, settings.DefaultProcessedFolder)
	for id := range want {
		switch ids[id] {
		case 1:
		case 2:
			twice++
		default:
			t.Errorf("%s holds %s %d times", settings.DefaultProcessedFolder, id, ids[id])
		}
	}
	if len(ids) != n || int(proc.Messages) != n+twice || twice > int(cur.LastUID) {
		t.Errorf("%s: %d messages, %d distinct, %d twice (%d were stored before the reset); want the %d, each once or (cut MOVE) twice",
			settings.DefaultProcessedFolder, proc.Messages, len(ids), twice, cur.LastUID, n)
	}
	if twice > 0 {
		t.Logf("%d messages are in %s twice: a MOVE cut short by the reset", twice, settings.DefaultProcessedFolder)
	}
	checkStoredOnce(t, st, want)

	// Copies of messages already stored come back (a restore, say) with new ones: the copies are
	// recognised, the new ones stored, all moved.
	known := map[string][]byte{}
	for k, v := range want {
		known[k] = v
	}
	const copies, fresh = 40, 10
	dc.DeliverN(user, "INBOX", copies+fresh, func(i int) []byte {
		if i < copies {
			return ingestMix(i * 7 % n) // a copy of a stored message
		}
		return gen(n + i)
	})
	poll(t, 90*time.Second, "the copies and the new messages", func() bool {
		return caughtUp(t, st, id, "INBOX", newValidity, before.UIDNext-1+copies+fresh)
	})
	if got := dc.Count(user, "INBOX"); got != 0 {
		t.Errorf("INBOX holds %d after the copies", got)
	}
	if got := dc.Count(user, settings.DefaultProcessedFolder); got != int(proc.Messages)+copies+fresh {
		t.Errorf("%s holds %d, want %d", settings.DefaultProcessedFolder, got, int(proc.Messages)+copies+fresh)
	}
	checkStoredOnce(t, st, want)
	if s := stateOf(t, st, id); s.State != "idle" || !s.TokenExpires.IsZero() {
		t.Errorf("worker state %+v", s)
	}
}

// kick disconnects user's IMAP sessions (doveadm kick); none being connected is fine.
func kick(tb testing.TB, dc *dovecot.Server, user string) {
	tb.Helper()
	bin, err := dovecot.FindBinaries(dovecot.LibexecDir)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin.Doveadm, "-c", filepath.Join(dc.Dir(), "dovecot.conf"), "kick", user).CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 68) { // 68 (EX_NOUSER): nobody to kick
		tb.Fatalf("doveadm kick: %v: %s", err, out)
	}
}

// TestTrustKeyDashKid checks trustKey's detour for a kid the dovecot helper refuses.
func TestTrustKeyDashKid(t *testing.T) {
	t.Parallel()
	const user, kid = "dash@example.test", "-kid_1"
	dc := dovecot.Start(t, dovecot.Options{})
	signer, _ := dc.SigningKey()
	key := signer.(*rsa.PrivateKey)
	trustKey(t, dc, kid, &key.PublicKey)
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"sub": user, "upn": user, "iat": now.Add(-time.Minute).Unix(),
		"nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix()})
	tok.Header["kid"] = kid
	signed, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := imapsource.Dial(context.Background(), imapsource.Config{Addr: dc.IMAPAddr(), TLSConfig: dc.TLSConfig(), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.AuthenticateXOAUTH2(user, signed); err != nil {
		t.Fatalf("a token with kid %q was refused: %v", kid, err)
	}
}

func splitHostPort(tb testing.TB, hp string) (string, int) {
	tb.Helper()
	h, p, err := net.SplitHostPort(hp)
	if err != nil {
		tb.Fatal(err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		tb.Fatal(err)
	}
	return h, port
}

// stateOf is the worker's last reported state.
func stateOf(tb testing.TB, st store.Store, id int64) store.AccountState {
	tb.Helper()
	ss, err := st.AccountStates(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	for _, s := range ss {
		if s.AccountID == id {
			return s
		}
	}
	return store.AccountState{}
}
