package exo

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"inkorg/internal/xoauth2"
)

func xoauth2B64(t testing.TB, user, token string) string {
	t.Helper()
	ir, err := xoauth2.Encode(user, token)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(ir)
}

func TestIMAPGreetingAndCapabilities(t *testing.T) {
	e := newEnv(t)
	r, greeting := e.rawIMAP(t)
	m := regexp.MustCompile(`^\* OK The Microsoft Exchange IMAP4 service is ready\. \[([A-Za-z0-9+/=]+)\]$`).FindStringSubmatch(greeting)
	if m == nil {
		t.Fatalf("greeting %q", greeting)
	}
	b, _ := base64.StdEncoding.DecodeString(m[1])
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = uint16(b[2*i]) | uint16(b[2*i+1])<<8
	}
	if got := string(utf16.Decode(u)); got != strings.ToUpper(DefaultServerName) {
		t.Fatalf("server id decodes to %q", got)
	}
	r.send("C01 CAPABILITY")
	if got := r.until("C01 "); got[0] != "* CAPABILITY IMAP4 IMAP4rev1 AUTH=XOAUTH2 SASL-IR UIDPLUS MOVE ID UNSELECT CHILDREN IDLE NAMESPACE LITERAL+" ||
		got[1] != "C01 OK CAPABILITY completed." {
		t.Fatalf("%q", got)
	}
	for _, tc := range []struct{ cmd, want string }{
		{`a1 LOGIN alice@contoso.example "password"`, "a1 NO LOGIN failed."},
		{"a2 AUTHENTICATE PLAIN AGFsaWNlAHB3", "a2 NO AUTHENTICATE failed."},
		{"a3 SELECT INBOX", "a3 BAD Command received in Invalid state."},
		{"a4 ID NIL", "a4 OK ID completed."},
		{"a5 NOOP", "a5 OK NOOP completed."},
		{"a6 LOGOUT", "a6 OK LOGOUT completed."},
	} {
		r.send("%s", tc.cmd)
		if got := r.until(tc.want[:3]); got[len(got)-1] != tc.want {
			t.Errorf("%s: got %q", tc.cmd, got)
		}
	}
}

// TestIMAPAuthenticateForms: SASL-IR (go-imap's client) and the "+" continuation form (Python's
// imaplib, MailKit without SASL-IR) with a 6 KB token, longer than go-imap's 4 KiB continuation limit.
func TestIMAPAuthenticateForms(t *testing.T) {
	e := newEnv(t)
	if len(xoauth2B64(t, alice, bigToken)) < 8000 {
		t.Fatal("token too short to prove the long-line path")
	}
	t.Run("SASL-IR", func(t *testing.T) {
		c := e.imapClient(t, alice, bigToken, nil)
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("SASL-IR raw", func(t *testing.T) {
		r, _ := e.rawIMAP(t)
		r.send("A01 AUTHENTICATE XOAUTH2 %s", xoauth2B64(t, alice, bigToken))
		if got := r.line(); got != "A01 OK AUTHENTICATE completed." {
			t.Fatalf("%q", got)
		}
		r.send("A02 SELECT INBOX")
		if got := r.until("A02 "); !strings.HasPrefix(got[len(got)-1], "A02 OK") {
			t.Fatalf("%q", got)
		}
	})
	t.Run("continuation", func(t *testing.T) {
		r, _ := e.rawIMAP(t)
		r.send("A01 AUTHENTICATE XOAUTH2")
		if got := r.line(); got != "+ " {
			t.Fatalf("continuation %q", got)
		}
		r.send("%s", xoauth2B64(t, alice, bigToken))
		if got := r.line(); got != "A01 OK AUTHENTICATE completed." {
			t.Fatalf("%q", got)
		}
		// The session continues in go-imap's hands: no second greeting, commands work.
		r.send("A02 SELECT INBOX")
		got := r.until("A02 ")
		if got[0] != "* 0 EXISTS" || !strings.HasPrefix(got[len(got)-1], "A02 OK") {
			t.Fatalf("%q", got)
		}
		r.send("A03 LOGOUT")
		if got := r.until("A03 "); got[0] != "* BYE Logging out" || got[1] != "A03 OK LOGOUT completed" {
			t.Fatalf("%q", got)
		}
	})
}

func TestIMAPDenials(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name, token string
		refuse      bool
		auth, next  string
	}{
		{"bad token", "expired-token", false, "A01 NO AUTHENTICATE failed.", ""},
		{"IMAP disabled", "disabled-token", false, "A01 NO AUTHENTICATE failed.", ""},
		{"logins refused", "good-token", true, "A01 NO AUTHENTICATE failed.", ""},
		{"not connected", "notconnected-token", false, "A01 OK AUTHENTICATE completed.", "A02 BAD User is authenticated but not connected."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.imap.SetFaults(IMAPFaults{RefuseLogins: tc.refuse})
			defer e.imap.SetFaults(IMAPFaults{})
			for _, form := range []string{"inline", "continuation"} {
				r, _ := e.rawIMAP(t)
				if form == "inline" {
					r.send("A01 AUTHENTICATE XOAUTH2 %s", xoauth2B64(t, alice, tc.token))
				} else {
					r.send("A01 AUTHENTICATE XOAUTH2")
					r.line()
					r.send("%s", xoauth2B64(t, alice, tc.token))
				}
				if got := r.line(); got != tc.auth {
					t.Fatalf("%s: got %q, want %q", form, got, tc.auth)
				}
				if tc.next != "" {
					r.send("A02 SELECT INBOX")
					if got := r.line(); got != tc.next {
						t.Fatalf("%s: got %q, want %q", form, got, tc.next)
					}
				}
			}
			// go-imap's client sees the same refusal as a typed error.
			c, err := imapclient.DialTLS(e.imap.Addr(), &imapclient.Options{TLSConfig: e.clientTLS})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			err = c.Authenticate(xoauth2.NewClient(alice, tc.token))
			if tc.next == "" {
				var ie *imap.Error
				if !errors.As(err, &ie) || ie.Type != imap.StatusResponseTypeNo || ie.Text != "AUTHENTICATE failed." {
					t.Fatalf("client error %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Select("INBOX", nil).Wait()
			var ie *imap.Error
			if !errors.As(err, &ie) || ie.Type != imap.StatusResponseTypeBad || ie.Text != "User is authenticated but not connected." {
				t.Fatalf("select error %v", err)
			}
		})
	}
}

func fetchAll(t testing.TB, c *imapclient.Client, set imap.UIDSet) map[imap.UID][]byte {
	t.Helper()
	got := map[imap.UID][]byte{}
	cmd := c.Fetch(set, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		var uid imap.UID
		var body []byte
		for item := msg.Next(); item != nil; item = msg.Next() {
			switch it := item.(type) {
			case imapclient.FetchItemDataUID:
				uid = it.UID
			case imapclient.FetchItemDataBodySection:
				body, _ = io.ReadAll(it.Literal)
			}
		}
		got[uid] = body
	}
	if err := cmd.Close(); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestIMAPMailFlow(t *testing.T) {
	e := newEnv(t)
	var raws [][]byte
	for i := range 3 {
		raw := testMessage(bob, alice, "order "+string(rune('A'+i)), 2000)
		raws = append(raws, raw)
		if _, err := e.store.Deliver(alice, "INBOX", raw); err != nil {
			t.Fatal(err)
		}
	}
	folders, _ := e.store.Folders(alice)
	c := e.imapClient(t, alice, "good-token", nil)
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages != 3 || sel.UIDValidity != folders[0].UIDValidity || sel.UIDNext != 4 {
		t.Fatalf("select %+v", sel)
	}

	// BODY.PEEK[] returns the exact bytes and leaves \Seen alone.
	got := fetchAll(t, c, imap.UIDSetNum(1, 2, 3))
	for i, raw := range raws {
		if !bytes.Equal(got[imap.UID(i+1)], raw) {
			t.Fatalf("uid %d body differs", i+1)
		}
	}
	if msgs, _ := e.store.Messages(alice, "INBOX"); len(msgs[0].Flags) != 0 {
		t.Fatalf("BODY.PEEK set flags %v", msgs[0].Flags)
	}
	// BODY[] (no PEEK) sets it.
	if _, err := c.Fetch(imap.UIDSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{}}}).Collect(); err != nil {
		t.Fatal(err)
	}
	if msgs, _ := e.store.Messages(alice, "INBOX"); len(msgs[0].Flags) != 1 || msgs[0].Flags[0] != `\Seen` {
		t.Fatalf("BODY[] flags %v", msgs[0].Flags)
	}

	// UID MOVE: gone from the source, in the target with COPYUID.
	if err := c.Create("Processed", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	md, err := c.Move(imap.UIDSetNum(2), "Processed").Wait()
	if err != nil {
		t.Fatal(err)
	}
	pf, _ := e.store.Folders(alice)
	if md.UIDValidity != pf[1].UIDValidity || md.SourceUIDs.String() != "2" || md.DestUIDs.String() != "1" {
		t.Fatalf("move data %+v", md)
	}
	if _, err := e.store.Raw(alice, "INBOX", 2); !errors.Is(err, ErrNoMessage) {
		t.Fatalf("source still has uid 2: %v", err)
	}
	if raw, err := e.store.Raw(alice, "Processed", 1); err != nil || !bytes.Equal(raw, raws[1]) {
		t.Fatalf("target: %v", err)
	}
	if got := fetchAll(t, c, imap.UIDSetNum(2)); len(got) != 0 {
		t.Fatal("client still sees uid 2")
	}

	// A STORE that is not silent answers with the UID and the new flags.
	sm, err := c.Store(imap.UIDSetNum(3), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Collect()
	if err != nil || len(sm) != 1 || sm[0].UID != 3 || !slices.Contains(sm[0].Flags, imap.FlagFlagged) {
		t.Fatalf("STORE +FLAGS (\\Flagged) = %+v, %v", sm, err)
	}

	// EXPUNGE of a \Deleted message.
	if err := c.Store(imap.UIDSetNum(3), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.UIDExpunge(imap.UIDSetNum(3)).Close(); err != nil {
		t.Fatal(err)
	}
	if msgs, _ := e.store.Messages(alice, "INBOX"); len(msgs) != 1 || msgs[0].UID != 1 {
		t.Fatalf("after expunge %+v", msgs)
	}

	// UIDVALIDITY is stable and UIDs are never reused.
	if _, err := e.store.Deliver(alice, "INBOX", raws[0]); err != nil {
		t.Fatal(err)
	}
	sel2, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel2.UIDValidity != sel.UIDValidity || sel2.UIDNext != 5 || sel2.NumMessages != 2 {
		t.Fatalf("reselect %+v", sel2)
	}
	sd, err := c.UIDSearch(&imap.SearchCriteria{UID: []imap.UIDSet{{{Start: 2, Stop: 0}}}}, nil).Wait()
	if err != nil || sd.AllUIDs()[0] != 4 {
		t.Fatalf("search %v %v", sd, err)
	}
	list, err := c.List("", "*", nil).Collect()
	if err != nil || len(list) != 2 || list[0].Mailbox != "INBOX" || list[1].Mailbox != "Processed" {
		t.Fatalf("list %v %v", list, err)
	}
}

func TestIMAPIdleSeesDelivery(t *testing.T) {
	e := newEnv(t)
	exists := make(chan uint32, 8)
	c := e.imapClient(t, alice, "good-token", &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				select {
				case exists <- *d.NumMessages:
				default:
				}
			}
		},
	}})
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Deliver(alice, "INBOX", testMessage(bob, alice, "new", 500)); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-exists:
		if n != 1 {
			t.Fatalf("EXISTS %d", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no EXISTS during IDLE")
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
}

func TestIMAPDropAfterFetch(t *testing.T) {
	e := newEnv(t)
	for range 10 {
		e.store.Deliver(alice, "INBOX", testMessage(bob, alice, "m", 3000))
	}
	c := e.imapClient(t, alice, "good-token", nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	e.imap.SetFaults(IMAPFaults{DropAfterFetch: 3})
	cmd := c.Fetch(imap.UIDSetNum(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
	n := 0
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		if buf, err := msg.Collect(); err == nil && len(buf.BodySection) == 1 {
			n++
		}
	}
	if err := cmd.Close(); err == nil {
		t.Fatal("FETCH completed despite the drop")
	}
	if n != 3 {
		t.Fatalf("got %d complete messages before the drop, want 3", n)
	}
	select {
	case <-c.Closed():
	case <-time.After(10 * time.Second):
		t.Fatal("connection not closed")
	}
	if f := e.imap.Faults(); f.DropAfterFetch != 0 {
		t.Fatalf("fault still armed: %+v", f)
	}
	// One-shot: a reconnecting client gets everything.
	c2 := e.imapClient(t, alice, "good-token", nil)
	c2.Select("INBOX", nil).Wait()
	if got := fetchAll(t, c2, imap.UIDSet{{Start: 1, Stop: 0}}); len(got) != 10 {
		t.Fatalf("after reconnect got %d", len(got))
	}
}

func TestIMAPThrottleAndStall(t *testing.T) {
	e := newEnv(t)
	c := e.imapClient(t, alice, "good-token", nil)
	e.imap.SetFaults(IMAPFaults{Throttle: 5 * time.Second})
	_, err := c.Select("INBOX", nil).Wait()
	var ie *imap.Error
	if !errors.As(err, &ie) || ie.Type != imap.StatusResponseTypeBad ||
		!regexp.MustCompile(`^Request is throttled\. Suggested Backoff Time: \d{4} milliseconds$`).MatchString(ie.Text) {
		t.Fatalf("throttled select: %v", err)
	}
	e.imap.SetFaults(IMAPFaults{Throttle: 50 * time.Millisecond})
	eventually(t, "throttle window to end", func() bool {
		_, err := c.Select("INBOX", nil).Wait()
		return err == nil
	})

	const stall = 300 * time.Millisecond
	e.imap.SetFaults(IMAPFaults{Stall: stall})
	start := time.Now()
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < stall-50*time.Millisecond {
		t.Fatalf("stall lasted only %v", d)
	}
}

// TestIMAPMoveExpunges: a MOVE of scattered UIDs (most of them at the front, as an ingesting client
// moves) sends the moving session and another session on the folder EXPUNGE responses that, applied
// in order, leave each with exactly the messages still there.
func TestIMAPMoveExpunges(t *testing.T) {
	e := newEnv(t)
	const n = 40
	e.deliverN(t, n, 300)
	type session struct {
		c    *imapclient.Client
		mu   sync.Mutex
		seqs []uint32
	}
	open := func() *session {
		s := &session{}
		s.c = e.imapClient(t, alice, "good-token", &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Expunge: func(seq uint32) { s.mu.Lock(); s.seqs = append(s.seqs, seq); s.mu.Unlock() }}})
		if _, err := s.c.Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		return s
	}
	mover, other := open(), open()
	if err := mover.c.Create("Processed", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	var set imap.UIDSet
	set.AddRange(1, 12)
	set.AddNum(15, 16, 22, 31, 40)
	if _, err := mover.c.Move(set, "Processed").Wait(); err != nil {
		t.Fatal(err)
	}
	if err := other.c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := e.store.Messages(alice, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	var want []imap.UID
	for _, m := range msgs {
		want = append(want, imap.UID(m.UID))
	}
	if len(want) != n-17 {
		t.Fatalf("%d messages left in INBOX, want %d", len(want), n-17)
	}
	for name, s := range map[string]*session{"moving session": mover, "other session": other} {
		s.mu.Lock()
		view := make([]imap.UID, n)
		for i := range view {
			view[i] = imap.UID(i + 1)
		}
		for _, seq := range s.seqs {
			if seq == 0 || int(seq) > len(view) {
				t.Fatalf("%s: EXPUNGE %d with %d messages", name, seq, len(view))
			}
			view = slices.Delete(view, int(seq)-1, int(seq))
		}
		s.mu.Unlock()
		if !slices.Equal(view, want) {
			t.Fatalf("%s sees %v after its EXPUNGEs, want %v", name, view, want)
		}
	}
}
