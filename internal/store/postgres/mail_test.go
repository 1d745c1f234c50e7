package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"inkorg/internal/settings"
	"inkorg/internal/store"
	"inkorg/internal/store/storetest"
)

// PRODUCT.md §5: several processes on one database. Two stores (two pools, as two processes have)
// commit overlapping batches for the same account at once, as happens when a lease is taken over
// while the old holder still runs, and from two folders holding copies of the same messages: every
// message is stored once, reported new exactly once (so one webhook delivery), every UID recorded
// once, no commit fails, and each folder's cursor ends at its highest UID.
func TestTwoProcessesCommitTheSameAccount(t *testing.T) {
	ctx := context.Background()
	dsn, key := pg.NewDatabase(t), fixedKey(t)
	a, b := openDSN(t, dsn, key), openDSN(t, dsn, key)
	defer a.Close()
	defer b.Close()
	if err := a.PutWebhook(ctx, store.Webhook{Type: settings.TypeMonitorToMonitor, URL: "https://erp.example/hooks/m2m", Secret: settings.NewSecret("k")}, "test"); err != nil {
		t.Fatal(err)
	}
	const (
		n       = 60 // messages, at UIDs 1..n
		chunk   = 6  // messages per batch
		workers = 4  // goroutines per store
	)
	folders := []string{"INBOX", "Archive"}
	type result struct {
		n int
		c store.Committed
	}
	var (
		mu      sync.Mutex
		results []result
		wg      sync.WaitGroup
		errs    = make(chan error, 2*workers*n/chunk)
	)
	for si, s := range []*Store{a, b} {
		for w := range workers {
			folder := folders[w%len(folders)]
			wg.Go(func() {
				// Each worker walks the chunks from its own starting point, so that batches with a
				// lower LastUID often commit after ones with a higher.
				chunks := n / chunk
				for k := range chunks {
					first := ((k+(si*workers+w)*chunks/(2*workers))%chunks)*chunk + 1
					var ms []store.NewMessage
					for i := first; i < first+chunk; i++ {
						ms = append(ms, storetest.NewMessage(i, uint32(i), "inkorg/Processed"))
					}
					got, err := s.CommitBatch(ctx, store.Batch{AccountID: 1, Account: "m2m@contoso.example", Type: settings.TypeMonitorToMonitor,
						Folder: folder, UIDValidity: 7, LastUID: uint32(first + chunk - 1), Messages: ms})
					if err != nil {
						errs <- err
						continue
					}
					mu.Lock()
					for j, c := range got {
						results = append(results, result{first + j, c})
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("commit: %v", err)
	}
	ids, fresh := map[int]string{}, map[int]int{}
	for _, r := range results {
		if r.c.UID != uint32(r.n) {
			t.Errorf("message %d reported at uid %d", r.n, r.c.UID)
		}
		if id, ok := ids[r.n]; ok && id != r.c.ID {
			t.Errorf("message %d has two ids: %s and %s", r.n, id, r.c.ID)
		}
		ids[r.n] = r.c.ID
		if !r.c.Duplicate {
			fresh[r.n]++
		}
	}
	if len(results) != 2*workers*n {
		t.Errorf("%d results, want %d", len(results), 2*workers*n)
	}
	for i := 1; i <= n; i++ {
		if fresh[i] != 1 {
			t.Errorf("message %d reported new %d times, want once", i, fresh[i])
		}
	}
	all, err := b.Messages(ctx, store.MessageQuery{})
	if err != nil || len(all) != n {
		t.Fatalf("%d messages stored, want %d (%v)", len(all), n, err)
	}
	for _, m := range all {
		if raw, err := a.Raw(ctx, m.ID); err != nil || len(raw) != int(m.Size) {
			t.Errorf("raw of %s: %d bytes, %v", m.ID, len(raw), err)
		}
	}
	for _, f := range folders {
		if c, err := a.Cursor(ctx, 1, f); err != nil || c != (store.Cursor{UIDValidity: 7, LastUID: n}) {
			t.Errorf("%s cursor %+v, %v; want at %d", f, c, err, n)
		}
	}
	if pm, err := b.PendingMoves(ctx, 1); err != nil || len(pm) != len(folders)*n {
		t.Errorf("%d pending moves, want %d (%v)", len(pm), len(folders)*n, err)
	}
	if due, err := a.DueDeliveries(ctx, time.Now().Add(time.Hour), -1); err != nil || len(due) != n {
		t.Errorf("%d webhook deliveries, want %d (%v)", len(due), n, err)
	}
}

// A ResetCursor from one process while another commits under the old UIDVALIDITY: each commit lands
// wholly before the reset or is refused after it, so the new numbering's cursor never inherits a UID
// of the old one (which would skip the new messages at those UIDs).
func TestResetCursorRacesCommit(t *testing.T) {
	ctx := context.Background()
	dsn, key := pg.NewDatabase(t), fixedKey(t)
	a, b := openDSN(t, dsn, key), openDSN(t, dsn, key)
	defer a.Close()
	defer b.Close()
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, n)
	wg.Go(func() {
		for i := 1; i <= n; i++ {
			_, err := a.CommitBatch(ctx, store.Batch{AccountID: 1, Account: "x@contoso.example", Type: settings.TypeGeneral, Folder: "INBOX",
				UIDValidity: 7, LastUID: uint32(i), Messages: []store.NewMessage{storetest.NewMessage(i, uint32(i), "")}})
			if err != nil && !errors.Is(err, store.ErrUIDValidity) {
				errs <- err
			}
		}
	})
	wg.Go(func() {
		// Reset once the committer is under way.
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if c, err := b.Cursor(ctx, 1, "INBOX"); err != nil || c.LastUID >= 5 {
				break
			}
			time.Sleep(time.Millisecond)
		}
		if err := b.ResetCursor(ctx, 1, "INBOX", 8); err != nil {
			errs <- err
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if c, err := a.Cursor(ctx, 1, "INBOX"); err != nil || c != (store.Cursor{UIDValidity: 8}) {
		t.Errorf("cursor after the reset %+v, %v; want validity 8 at 0", c, err)
	}
}

// PostgreSQL refuses NUL characters and invalid UTF-8 in text where SQLite keeps them: a hostile
// message must still commit (else it stops its account), with each such character as U+FFFD.
func TestHostileTextCommits(t *testing.T) {
	ctx := context.Background()
	s := openDSN(t, pg.NewDatabase(t), fixedKey(t))
	defer s.Close()
	bad := "a\x00b\xffc"
	m := storetest.NewMessage(1, 1, "")
	m.Meta.Subject, m.Meta.From, m.Meta.To, m.Meta.Problems, m.Meta.Failed = bad, bad, []string{bad}, []string{bad}, bad
	m.Meta.Attachments[0].Filename = bad
	m.Meta.M2M.Reason = bad
	got, err := s.CommitBatch(ctx, store.Batch{AccountID: 1, Account: "x@contoso.example", Type: settings.TypeGeneral, Folder: "INBOX",
		UIDValidity: 1, LastUID: 1, Messages: []store.NewMessage{m}})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := s.Message(ctx, got[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	const want = "a\uFFFDb\uFFFDc"
	for name, v := range map[string]string{"subject": msg.Subject, "from": msg.From, "to": msg.To[0], "problem": msg.Problems[0], "failed": msg.Failed,
		"filename": msg.Attachments[0].Filename, "m2m reason": msg.M2M.Reason} {
		if v != want {
			t.Errorf("%s = %q, want %q", name, v, want)
		}
	}
	st := store.AccountState{AccountID: 1, State: "backoff", Detail: bad, LastError: &store.ErrorRecord{Summary: bad, Actions: []string{bad}}}
	if err := s.PutAccountState(ctx, st); err != nil {
		t.Fatal(err)
	}
	states, err := s.AccountStates(ctx)
	if err != nil || len(states) != 1 || states[0].Detail != want || states[0].LastError.Summary != want || states[0].LastError.Actions[0] != want {
		t.Errorf("states %+v, %v", states, err)
	}
	d := store.Delivery{MessageID: got[0].ID, Type: settings.TypeGeneral}
	if err := s.DeliveryDone(ctx, d, false, time.Now(), bad); err != nil {
		t.Error(err)
	}
}

// The values that the two backends must agree on byte for byte: a message's Date in whole seconds,
// none for one RFC 3339 cannot write, and the new account fields.
func TestMessageDatesAndAccountFields(t *testing.T) {
	ctx := context.Background()
	s := openDSN(t, pg.NewDatabase(t), fixedKey(t))
	defer s.Close()
	for i, tt := range []struct {
		date, want time.Time
	}{
		{time.Date(2026, 1, 2, 3, 4, 5, 678, time.FixedZone("", 3600)), time.Date(2026, 1, 2, 2, 4, 5, 0, time.UTC)},
		{time.Time{}, time.Time{}},
		{time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Time{}},
	} {
		m := storetest.NewMessage(i, uint32(i+1), "")
		m.Meta.Date = tt.date
		got, err := s.CommitBatch(ctx, store.Batch{AccountID: 1, Account: "x@contoso.example", Type: settings.TypeGeneral, Folder: "INBOX",
			UIDValidity: 1, LastUID: uint32(i + 1), Messages: []store.NewMessage{m}})
		if err != nil {
			t.Fatal(err)
		}
		msg, err := s.Message(ctx, got[0].ID)
		if err != nil || !msg.Date.Equal(tt.want) || msg.Date.Location() != time.UTC {
			t.Errorf("date %v stored as %v, want %v (%v)", tt.date, msg.Date, tt.want, err)
		}
	}
	a, err := s.AddIncomingAccount(ctx, settings.IncomingAccount{Address: "m2m@contoso.example", Type: settings.TypeMonitorToMonitor,
		Folder: "Orders", ProcessedFolder: "Orders/Done", FailedFolder: "Orders/Failed", LeaveInPlace: true, PollInterval: 90 * time.Second}, "test")
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.IncomingAccount(ctx, "M2M@contoso.example")
	if err != nil || got.Folder != "Orders" || got.ProcessedFolder != "Orders/Done" || got.FailedFolder != "Orders/Failed" || !got.LeaveInPlace ||
		got.PollInterval != 90*time.Second {
		t.Errorf("account %+v, %v", got, err)
	}
	a.LeaveInPlace, a.PollInterval = false, 0
	if err := s.PutIncomingAccount(ctx, a, "cli:alice"); err != nil {
		t.Fatal(err)
	}
	es, err := s.Audit(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	var fields []string
	for _, e := range es {
		if e.Actor == "cli:alice" {
			fields = append(fields, fmt.Sprintf("%s:%s→%s", e.Field, e.Old, e.New))
		}
	}
	if strings.Join(fields, " ") != "pollInterval:1m30s→0s leaveInPlace:true→false" {
		t.Errorf("audit of the change: %v", fields)
	}
}

// A webhook's secret is sealed under the SQLite store's field name, so a database moved between the
// backends (or a sealed value compared across them) opens with the same key.
func TestWebhookSecretBinding(t *testing.T) {
	ctx := context.Background()
	s := openDSN(t, pg.NewDatabase(t), fixedKey(t))
	defer s.Close()
	if err := s.PutWebhook(ctx, store.Webhook{Type: settings.TypeSupplierInvoice, URL: "https://erp.example/h", Secret: settings.NewSecret(storetest.Secrets[0])}, "test"); err != nil {
		t.Fatal(err)
	}
	var sealed []byte
	if err := s.Pool().QueryRow(ctx, `SELECT secret FROM webhooks WHERE type = 'supplier-invoice'`).Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	if p, err := s.sealer.Open(sealed, "webhooks[supplier-invoice].secret"); err != nil || string(p) != storetest.Secrets[0] {
		t.Errorf("open under the field name: %q, %v", p, err)
	}
	if _, err := s.sealer.Open(sealed, "webhooks[general].secret"); err == nil {
		t.Error("the sealed secret opens under another field name")
	}
	if storetest.FindSecret(sealed) != nil {
		t.Error("the secret is in the table")
	}
}

// A database from before the mail tables (schema version 2, with an account) upgrades in place: the
// account reads with the new fields at their defaults, and the mail half works.
func TestUpgradeFromVersion2(t *testing.T) {
	ctx := context.Background()
	s := upgraded(t, 2, `INSERT INTO incoming_accounts (address, type, created_at, updated_at) VALUES ('m2m@contoso.example', 'monitor-to-monitor', now(), now())`)
	a, err := s.IncomingAccount(ctx, "m2m@contoso.example")
	if err != nil || a.Folder != "" || a.ProcessedFolder != "" || a.FailedFolder != "" || a.LeaveInPlace || a.PollInterval != 0 {
		t.Errorf("account after the upgrade %+v, %v", a, err)
	}
	if _, err := s.CommitBatch(ctx, store.Batch{AccountID: a.ID, Account: a.Address, Type: a.Type, Folder: "INBOX", UIDValidity: 1, LastUID: 1,
		Messages: []store.NewMessage{storetest.NewMessage(1, 1, "")}}); err != nil {
		t.Error(err)
	}
}

// The same bytes twice in one batch (the pipelined statements see the earlier ones' rows): one
// message, the second UID a duplicate of it, both UIDs recorded.
func TestSameBytesTwiceInOneBatch(t *testing.T) {
	ctx := context.Background()
	s := openDSN(t, pg.NewDatabase(t), fixedKey(t))
	defer s.Close()
	got, err := s.CommitBatch(ctx, store.Batch{AccountID: 1, Account: "x@contoso.example", Type: settings.TypeGeneral, Folder: "INBOX",
		UIDValidity: 1, LastUID: 3, Messages: []store.NewMessage{storetest.NewMessage(1, 1, "Done"), storetest.NewMessage(2, 2, "Done"), storetest.NewMessage(1, 3, "Done")}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Duplicate || got[1].Duplicate || !got[2].Duplicate || got[2].ID != got[0].ID || got[1].ID == got[0].ID {
		t.Errorf("committed %+v", got)
	}
	if pm, err := s.PendingMoves(ctx, 1); err != nil || len(pm) != 3 {
		t.Errorf("pending moves %+v, %v", pm, err)
	}
	if all, err := s.Messages(ctx, store.MessageQuery{}); err != nil || len(all) != 2 {
		t.Errorf("%d messages, %v", len(all), err)
	}
}

// FuzzClean: what the store writes as text is valid UTF-8 without NUL, text that already is stays
// as it is, and a JSONB value never carries the escape PostgreSQL refuses.
func FuzzClean(f *testing.F) {
	for _, seed := range []string{"", "plain", "a\x00b", "\xff\xfe", "ok \u00e5\u00e4\u00f6", "\\u0000", "x\x00\\\x00"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c := clean(s)
		if !utf8.ValidString(c) || strings.IndexByte(c, 0) >= 0 {
			t.Fatalf("clean(%q) = %q", s, c)
		}
		if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 && c != s {
			t.Fatalf("clean changed %q to %q", s, c)
		}
		b, err := jsonb(store.ErrorRecord{Summary: s, Actions: []string{s, "x"}})
		if err != nil {
			t.Fatal(err)
		}
		var back store.ErrorRecord
		if err := json.Unmarshal(b, &back); err != nil || back.Summary != c || back.Actions[0] != c {
			t.Fatalf("jsonb(%q) = %s: %+v, %v", s, b, back, err)
		}
		if strings.Contains(strings.ReplaceAll(string(b), `\\`, ""), `\u0000`) {
			t.Fatalf("jsonb(%q) = %s", s, b)
		}
	})
}

// TestUpgradeToMovedWatermark: a database of schema 6, whose moves were recorded per message, opens
// with each folder's watermark below its first message not moved, and the same pending moves.
func TestUpgradeToMovedWatermark(t *testing.T) {
	storetest.CheckMovedWatermark(t, upgraded(t, 6, storetest.BeforeMovedWatermark))
}

// upgraded is a store opened on a new database that had the first n migrations applied and then
// data (SQL) written: the store applies the rest. It checks the schema version it ends at.
func upgraded(t *testing.T, n int, data string) *Store {
	t.Helper()
	ctx := context.Background()
	dsn, key := pg.NewDatabase(t), fixedKey(t)
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms[:n] {
		if _, err := conn.Exec(ctx, m.Body); err != nil {
			t.Fatal(m.Name, err)
		}
		if _, err := conn.Exec(ctx, `INSERT INTO schema_migrations VALUES ($1, $2, now())`, m.Version, m.Name); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.Exec(ctx, data); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	s := openDSN(t, dsn, key)
	t.Cleanup(func() { s.Close() })
	if v, err := s.SchemaVersion(ctx); err != nil || v != ms[len(ms)-1].Version {
		t.Errorf("schema version %d, %v", v, err)
	}
	return s
}
