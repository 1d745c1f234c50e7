package imapsource

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	"inkorg/internal/testutil/dovecot"
)

// TestDovecot runs fetch, move, folders and IDLE against a real Dovecot 2.3 (XOAUTH2 with a JWT it
// validates locally, and LOGIN with a password): a third-party server, not our emulator.
func TestDovecot(t *testing.T) {
	const user = "ingest@example.test"
	d := dovecot.Start(t, dovecot.Options{Users: map[string]string{"plain@example.test": "plain-pass-1"}})
	want := map[int][]byte{}
	d.DeliverN(user, "INBOX", 300, func(i int) []byte {
		want[i] = message(i, 4000+i)
		return want[i]
	})
	d.Deliver(user, "INBOX", message(999, 3<<20)) // over the spool threshold

	dial := func(t *testing.T, edit func(*Config)) *Conn {
		t.Helper()
		cfg := Config{Addr: d.IMAPAddr(), TLSConfig: d.TLSConfig(), Timeout: 10 * time.Second, SpoolDir: t.TempDir(), FetchBatch: 64, SizeAndDate: true}
		if edit != nil {
			edit(&cfg)
		}
		c, err := Dial(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	c := dial(t, nil)
	if err := c.AuthenticateXOAUTH2(user, d.Token(user, time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX"); err != nil {
		t.Fatal(err)
	}

	t.Run("fetch", func(t *testing.T) {
		uids, err := c.SearchNewer(0)
		if err != nil || len(uids) != 301 {
			t.Fatalf("SearchNewer = %d UIDs, %v", len(uids), err)
		}
		i := 0
		err = c.Fetch(uids, func(m Fetched) error {
			b, err := io.ReadAll(m.Body)
			if err != nil {
				return err
			}
			w := want[i]
			if i == 300 {
				w = message(999, 3<<20)
			}
			if !bytes.Equal(bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")), bytes.ReplaceAll(w, []byte("\r\n"), []byte("\n"))) {
				return fmt.Errorf("message %d (UID %d): body differs", i, m.UID)
			}
			if m.UID != uids[i] || m.InternalDate.IsZero() || m.Size <= 0 {
				return fmt.Errorf("message %d: UID %d, date %v, size %d", i, m.UID, m.InternalDate, m.Size)
			}
			i++
			return nil
		})
		if err != nil || i != 301 {
			t.Fatalf("Fetch: %d messages, %v", i, err)
		}
		if st := d.Status(user, "INBOX"); st.Unseen != 301 {
			t.Fatalf("%d unseen after BODY.PEEK[], want 301", st.Unseen)
		}
		if last, err := c.SearchNewer(uids[300]); err != nil || len(last) != 0 {
			t.Fatalf("SearchNewer(highest) = %v, %v", last, err)
		}
	})

	t.Run("sizes and a stopped fetch", func(t *testing.T) {
		uids, err := c.SearchNewer(0)
		if err != nil || len(uids) != 301 {
			t.Fatalf("SearchNewer = %d UIDs, %v", len(uids), err)
		}
		sizes, err := c.Sizes(uids[290:])
		if err != nil || len(sizes) != 11 || sizes[uids[300]] < 3<<20 || sizes[uids[290]] < 4000 {
			t.Fatalf("Sizes = %v, %v", sizes, err)
		}
		n := 0
		if err := c.Fetch(uids[:100], func(m Fetched) error {
			if n++; n == 30 { // FETCH commands of 64: the rest of the first one is read and dropped
				return ErrStop
			}
			return nil
		}); err != nil || n != 30 {
			t.Fatalf("stopped Fetch: %d messages, %v", n, err)
		}
		n = 0
		if err := c.Fetch(uids[30:40], func(m Fetched) error { n++; _, err := io.Copy(io.Discard, m.Body); return err }); err != nil || n != 10 {
			t.Fatalf("Fetch after a stop: %d messages, %v", n, err)
		}
	})

	t.Run("fetch without size and date", func(t *testing.T) {
		c := dial(t, func(cfg *Config) { cfg.SizeAndDate = false })
		if err := c.AuthenticateXOAUTH2(user, d.Token(user, time.Hour)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Select("INBOX"); err != nil {
			t.Fatal(err)
		}
		uids, _ := c.SearchNewer(0)
		n := 0
		err := c.Fetch(uids, func(m Fetched) error {
			b, err := io.ReadAll(m.Body)
			if err != nil {
				return err
			}
			if m.Size != int64(len(b)) || !m.InternalDate.IsZero() {
				return fmt.Errorf("UID %d: size %d for %d bytes, date %v (not asked for)", m.UID, m.Size, len(b), m.InternalDate)
			}
			n++
			return nil
		})
		if err != nil || n != len(uids) {
			t.Fatalf("Fetch: %d of %d messages, %v", n, len(uids), err)
		}
	})

	t.Run("move", func(t *testing.T) {
		for range 2 {
			if err := c.EnsureFolder("inkorg/processed"); err != nil {
				t.Fatal(err)
			}
		}
		uids, _ := c.SearchNewer(0)
		if err := c.Move(uids[:200], "inkorg/processed"); err != nil {
			t.Fatal(err)
		}
		if err := c.Move(uids[:250], "inkorg/processed"); err != nil { // 200 of them already moved
			t.Fatal(err)
		}
		if err := c.Move(uids[:250], "inkorg/processed"); err != nil {
			t.Fatal(err)
		}
		if n, m := d.Count(user, "INBOX"), d.Count(user, "inkorg/processed"); n != 51 || m != 250 {
			t.Fatalf("INBOX %d, processed %d; want 51, 250", n, m)
		}
		left, err := c.SearchNewer(0)
		if err != nil || !slices.Equal(left, uids[250:]) {
			t.Fatalf("left in INBOX: %v, %v", left, err)
		}
	})

	t.Run("idle", func(t *testing.T) {
		if !c.HasIDLE() {
			t.Fatal("Dovecot offers IDLE")
		}
		if got, err := c.Wait(context.Background(), 200*time.Millisecond); err != nil || got {
			t.Fatalf("Wait = %v, %v", got, err)
		}
		go func() {
			time.Sleep(100 * time.Millisecond)
			d.Deliver(user, "INBOX", message(5000, 100))
		}()
		start := time.Now()
		got, err := c.Wait(context.Background(), 20*time.Second)
		if err != nil || !got {
			t.Fatalf("Wait = %v, %v", got, err)
		}
		t.Logf("IDLE noticed a delivery after %v", time.Since(start))
	})

	t.Run("login", func(t *testing.T) {
		p := dial(t, nil)
		if err := p.Login("plain@example.test", "plain-pass-1"); err != nil {
			t.Fatal(err)
		}
		d.DeliverN("plain@example.test", "INBOX", 20, func(i int) []byte { return message(i, 1000) })
		if _, err := p.Select("INBOX"); err != nil {
			t.Fatal(err)
		}
		uids, err := p.SearchNewer(0)
		if err != nil || len(uids) != 20 {
			t.Fatalf("SearchNewer = %v, %v", uids, err)
		}
		n := 0
		if err := p.Fetch(uids, func(m Fetched) error { n++; _, err := io.Copy(io.Discard, m.Body); return err }); err != nil || n != 20 {
			t.Fatalf("Fetch: %d, %v", n, err)
		}
		if err := p.Move(uids, "done"); err == nil {
			t.Fatal("Move to a missing folder succeeded")
		}
		if err := p.EnsureFolder("done"); err != nil {
			t.Fatal(err)
		}
		if err := p.Move(uids, "done"); err != nil {
			t.Fatal(err)
		}
		if d.Count("plain@example.test", "done") != 20 {
			t.Fatal("not moved")
		}
	})
}
