package exo

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestMailStore(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	s := NewMailStore(func() time.Time { return now })
	if err := s.CreateMailbox("Alice@Contoso.example"); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateMailbox("alice@contoso.example"); !errors.Is(err, ErrMailboxExists) {
		t.Fatalf("duplicate mailbox: %v", err)
	}
	if !s.HasMailbox("ALICE@contoso.example") || s.HasMailbox("nobody@x") {
		t.Fatal("HasMailbox is not case-insensitive")
	}
	uid, err := s.Deliver("alice@contoso.example", "inbox", testMessage("bob@x", "alice@x", "Hello =?utf-8?q?w=C3=B6rld?=", 100))
	if err != nil || uid != 1 {
		t.Fatal(uid, err)
	}
	if _, err := s.Deliver(alice, "Invoices/2026", testMessage("bob@x", "alice@x", "inv", 100)); err != nil {
		t.Fatal(err)
	}
	folders, err := s.Folders(alice)
	if err != nil || len(folders) != 2 || folders[0].Name != "INBOX" || folders[1].Name != "Invoices/2026" {
		t.Fatalf("%+v %v", folders, err)
	}
	if folders[0].UIDValidity == folders[1].UIDValidity {
		t.Fatal("UIDVALIDITY must differ between folders")
	}
	if f := folders[0]; f.Messages != 1 || f.Unseen != 1 || f.UIDNext != 2 {
		t.Fatalf("%+v", f)
	}
	msgs, _ := s.Messages(alice, "INBOX")
	if len(msgs) != 1 || msgs[0].Subject != "Hello wörld" || msgs[0].From != "bob@x" || !msgs[0].InternalDate.Equal(now) {
		t.Fatalf("%+v", msgs)
	}
	if err := s.SetSeen(alice, "INBOX", 1, true); err != nil {
		t.Fatal(err)
	}
	msgs, _ = s.Messages(alice, "INBOX")
	if len(msgs[0].Flags) != 1 || msgs[0].Flags[0] != `\Seen` {
		t.Fatalf("flags %v", msgs[0].Flags)
	}
	newUID, err := s.Move(alice, "INBOX", 1, "Processed")
	if err != nil || newUID != 1 {
		t.Fatal(newUID, err)
	}
	if raw, err := s.Raw(alice, "processed", 1); err != nil || len(raw) < 100 {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"deliver to unknown mailbox", func() error { _, err := s.Deliver("x@y", "INBOX", []byte("a")); return err }(), ErrNoMailbox},
		{"folders of unknown mailbox", func() error { _, err := s.Folders("x@y"); return err }(), ErrNoMailbox},
		{"unknown folder", func() error { _, err := s.Messages(alice, "Nope"); return err }(), ErrNoFolder},
		{"moved message is gone", func() error { _, err := s.Raw(alice, "INBOX", 1); return err }(), ErrNoMessage},
		{"seen on missing uid", s.SetSeen(alice, "INBOX", 42, true), ErrNoMessage},
		{"bad folder name", func() error { _, err := s.Deliver(alice, "a//b", []byte("x")); return err }(), ErrNoFolder},
		{"folder exists", s.CreateFolder(alice, "PROCESSED"), ErrFolderExists},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, tc.err, tc.want)
		}
	}
}

func TestMailStoreConcurrentDeliver(t *testing.T) {
	s := NewMailStore(nil)
	s.CreateMailbox(alice)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				if _, err := s.Deliver(alice, "INBOX", testMessage("x@y", alice, fmt.Sprint(g, i), 200)); err != nil {
					t.Error(err)
				}
				s.Folders(alice)
			}
		}()
	}
	wg.Wait()
	msgs, _ := s.Messages(alice, "INBOX")
	if len(msgs) != 400 || msgs[399].UID != 400 {
		t.Fatalf("%d messages", len(msgs))
	}
}
