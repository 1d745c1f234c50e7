package store

import (
	"sort"
	"testing"
	"time"
)

func TestMessageIDs(t *testing.T) {
	start := time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC)
	var ids []string
	seen := map[string]bool{}
	for i := range 2000 {
		id := NewMessageID(start.Add(time.Duration(i/3) * time.Millisecond))
		if !ValidMessageID(id) {
			t.Fatalf("%q is not a valid message id", id)
		}
		if seen[id] {
			t.Fatalf("%q made twice", id)
		}
		seen[id] = true
		ids = append(ids, id)
	}
	// Made in different milliseconds, they sort in the order made (within one millisecond, randomly).
	for i := 3; i < len(ids); i += 3 {
		if ids[i-1][:11] >= ids[i][:11] || ids[i-3] >= ids[i] {
			t.Fatalf("%q (later) does not sort after %q", ids[i], ids[i-1])
		}
	}
	if !sort.StringsAreSorted([]string{NewMessageID(time.UnixMilli(0)), NewMessageID(start), NewMessageID(time.Date(2999, 1, 1, 0, 0, 0, 0, time.UTC))}) {
		t.Error("ids of 1970, 2026 and 2999 do not sort in time order")
	}
	for _, bad := range []string{"", "m_", "x_aaaaaaaaaaaaaaaaaaaa", "m_aaaaaaaaaaaaaaaaaaa", "m_aaaaaaaaaaaaaaaaaaa1", "m_AAAAAAAAAAAAAAAAAAAA", "m_aaaaaaaaaaaaaaaaaaaaa"} {
		if ValidMessageID(bad) {
			t.Errorf("%q accepted", bad)
		}
	}
}
