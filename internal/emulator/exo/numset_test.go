package exo

import (
	"slices"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

// TestForEachUIDSet: forEachLocked, which looks a UID set up range by range, gives the messages of
// the set in order, each once. The sets are built as go-imap's parser builds them (AddRange: sorted,
// merged, "*" last), so "reversed" and "out of order" are what a client may send.
func TestForEachUIDSet(t *testing.T) {
	f := &folder{tracker: imapserver.NewMailboxTracker(0)}
	for _, u := range []imap.UID{2, 3, 5, 8, 9, 10, 15, 40, 41, 100} {
		f.msgs = append(f.msgs, &message{uid: u})
	}
	f.uidNext = 101
	f.tracker.QueueNumMessages(uint32(len(f.msgs)))
	sel := &selection{f: f, view: f.tracker.NewSession()}
	set := func(rs ...[2]imap.UID) imap.UIDSet {
		var s imap.UIDSet
		for _, r := range rs {
			s.AddRange(r[0], r[1])
		}
		return s
	}
	for _, tc := range []struct {
		name string
		set  imap.UIDSet
		want []imap.UID
	}{
		{"one range", set([2]imap.UID{3, 10}), []imap.UID{3, 5, 8, 9, 10}},
		{"gaps at both ends", set([2]imap.UID{4, 14}), []imap.UID{5, 8, 9, 10}},
		{"single UIDs", set([2]imap.UID{5, 5}, [2]imap.UID{41, 41}, [2]imap.UID{100, 100}), []imap.UID{5, 41, 100}},
		{"none there", set([2]imap.UID{11, 14}, [2]imap.UID{16, 39}), nil},
		{"beyond the last", set([2]imap.UID{101, 200}), nil},
		{"star", set([2]imap.UID{40, 0}), []imap.UID{40, 41, 100}},
		{"reversed", set([2]imap.UID{10, 3}), []imap.UID{3, 5, 8, 9, 10}},
		{"out of order", set([2]imap.UID{40, 41}, [2]imap.UID{2, 3}), []imap.UID{2, 3, 40, 41}},
		{"overlapping", set([2]imap.UID{2, 9}, [2]imap.UID{5, 15}), []imap.UID{2, 3, 5, 8, 9, 10, 15}},
		{"all", set([2]imap.UID{1, 0}), []imap.UID{2, 3, 5, 8, 9, 10, 15, 40, 41, 100}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []imap.UID
			var seqs []uint32
			sel.forEachLocked(tc.set, func(seq uint32, i int, m *message) {
				if f.msgs[i] != m || seq != uint32(i)+1 {
					t.Fatalf("UID %d: index %d, seq %d", m.uid, i, seq)
				}
				got = append(got, m.uid)
				seqs = append(seqs, seq)
			})
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			if !slices.IsSorted(seqs) {
				t.Fatalf("sequence numbers out of order: %v", seqs)
			}
		})
	}
}
