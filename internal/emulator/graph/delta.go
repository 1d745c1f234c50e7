package graph

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"inkorg/internal/emulator/exo"
)

// Delta paging.
const (
	defaultDeltaPage = 10
	maxDeltaPage     = 1000
)

// syncState is either a snapshot (what a client holds after a round; a $deltatoken names it) or a
// round in progress (the changes to send, page by page; a $skiptoken names it and an offset).
type syncState struct {
	id         uint64
	created    int64 // clock, Unix nanoseconds
	mailbox    string
	folder     string // store folder name
	changeType string // "", "created", "updated" or "deleted": fixed by the first request
	top        int    // $top of the first request (0: none), carried from round to round

	// snapshot
	validity uint32
	uids     []uint32 // ascending
	seen     []bool   // isRead per uid, as the client last saw it

	// round
	round bool
	items []deltaItem
	final uint64 // the snapshot that ends the round
}

// deltaItem is one change of a round.
type deltaItem struct {
	uid      uint32
	validity uint32
	removed  bool
}

func gone(generation, highest uint64) error {
	return errorf(http.StatusGone, codeSyncStateNotFound,
		fmt.Sprintf("The sync state generation is not found; generation=%d;[highest=%d]", generation, highest))
}

// pageSize is $top, or odata.maxpagesize, or the smaller of both, or the default.
func pageSize(top, prefer int) int {
	switch {
	case top > 0 && prefer > 0:
		return min(top, prefer)
	case top > 0:
		return top
	case prefer > 0:
		return prefer
	}
	return defaultDeltaPage
}

// preferMaxPageSize reads odata.maxpagesize from the Prefer headers (0: none).
func preferMaxPageSize(r *http.Request) int {
	for _, v := range r.Header.Values("Prefer") {
		for _, p := range strings.Split(v, ",") {
			k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
			if !ok || !strings.EqualFold(strings.TrimSpace(k), "odata.maxpagesize") {
				continue
			}
			if n, err := strconv.Atoi(strings.Trim(strings.TrimSpace(val), `"`)); err == nil && n > 0 {
				return n
			}
		}
	}
	return 0
}

// lookupState finds a live state named by t, of the wanted kind, for this mailbox and folder.
func (h *Handler) lookupState(t syncToken, now int64, mailbox, folder string) (*syncState, uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if t.epoch != h.epoch {
		return nil, h.lastState
	}
	s := h.states[t.state]
	if s == nil {
		return nil, h.lastState
	}
	if now-s.created > int64(h.stateTTL) {
		delete(h.states, s.id)
		return nil, h.lastState
	}
	if s.round != (t.kind == tokenSkip) || !strings.EqualFold(s.mailbox, mailbox) || !strings.EqualFold(s.folder, folder) {
		return nil, h.lastState
	}
	return s, h.lastState
}

// addStateLocked stores s under a new id, dropping the oldest states beyond the limit.
func (h *Handler) addStateLocked(s *syncState) {
	h.lastState++
	s.id = h.lastState
	h.states[s.id] = s
	h.stateOrder = append(h.stateOrder, s.id)
	for len(h.states) > h.maxStates && len(h.stateOrder) > 0 {
		delete(h.states, h.stateOrder[0])
		h.stateOrder = h.stateOrder[1:]
	}
	if len(h.stateOrder) > 2*h.maxStates { // ids of states expired by TTL or ExpireSyncStates
		h.stateOrder = slices.DeleteFunc(h.stateOrder, func(id uint64) bool { return h.states[id] == nil })
	}
}

// startRound compares the folder with base (nil: a first sync) and stores the round and the snapshot
// that will end it.
func (h *Handler) startRound(base *syncState, now int64, mailbox string, f exo.FolderInfo, msgs []exo.MessageInfo,
	changeType string, top int) *syncState {
	snap := &syncState{created: now, mailbox: mailbox, folder: f.Name, changeType: changeType, top: top, validity: f.UIDValidity,
		uids: make([]uint32, len(msgs)), seen: make([]bool, len(msgs))}
	for i, m := range msgs {
		snap.uids[i] = m.UID
		snap.seen[i] = slices.Contains(m.Flags, `\Seen`)
	}
	var items []deltaItem
	want := func(kind string) bool { return changeType == "" || changeType == kind }
	if base != nil && want("deleted") {
		for _, uid := range base.uids {
			if _, ok := slices.BinarySearch(snap.uids, uid); !ok || base.validity != snap.validity {
				items = append(items, deltaItem{uid: uid, validity: base.validity, removed: true})
			}
		}
	}
	for i, uid := range snap.uids {
		j, known := -1, false
		if base != nil && base.validity == snap.validity {
			j, known = slices.BinarySearch(base.uids, uid)
		}
		switch {
		case !known && want("created"):
			items = append(items, deltaItem{uid: uid, validity: snap.validity})
		case known && base.seen[j] != snap.seen[i] && want("updated"):
			items = append(items, deltaItem{uid: uid, validity: snap.validity})
		}
	}
	round := &syncState{created: now, mailbox: mailbox, folder: f.Name, changeType: changeType, top: top, round: true,
		items: items}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.addStateLocked(snap)
	round.final = snap.id
	h.addStateLocked(round)
	return round
}

// delta serves mailFolders/{folder}/messages/delta.
func (h *Handler) delta(rq *request, key string) error {
	if err := rq.need(permReadBasic); err != nil {
		return err
	}
	f, err := h.resolveFolder(rq, key)
	if err != nil {
		return err
	}
	if f.root {
		return errorf(http.StatusBadRequest, codeBadRequest, "Delta query is a per-folder operation: name a mail folder.")
	}
	q := rq.r.URL.Query()
	now := rq.now.UnixNano()
	prefer := min(preferMaxPageSize(rq.r), maxDeltaPage)

	var round *syncState
	var offset int
	switch skip, dt := q.Get("$skiptoken"), q.Get("$deltatoken"); {
	case skip != "":
		t, err := parseSyncToken(skip)
		if err != nil || t.kind != tokenSkip {
			return gone(0, h.highest())
		}
		s, highest := h.lookupState(t, now, rq.mailbox, f.info.Name)
		if s == nil || t.offset > uint64(len(s.items)) {
			return gone(t.state, highest)
		}
		round, offset = s, int(t.offset)
	default:
		var base *syncState
		changeType, top := "", 0
		if dt != "" {
			t, err := parseSyncToken(dt)
			if err != nil || t.kind != tokenDelta {
				return gone(0, h.highest())
			}
			s, highest := h.lookupState(t, now, rq.mailbox, f.info.Name)
			if s == nil {
				return gone(t.state, highest)
			}
			base, changeType, top = s, s.changeType, s.top
		} else {
			switch ct := strings.ToLower(q.Get("changeType")); ct {
			case "", "created", "updated", "deleted":
				changeType = ct
			default:
				return errorf(http.StatusBadRequest, codeBadRequest, "Invalid value '"+q.Get("changeType")+"' for changeType: created, updated or deleted.")
			}
			if v := q.Get("$top"); v != "" {
				n, err := strconv.Atoi(v)
				if err != nil || n < 1 {
					return errorf(http.StatusBadRequest, codeBadRequest, "Invalid value '"+v+"' for query option $top.")
				}
				top = min(n, maxDeltaPage)
			}
		}
		msgs, err := h.store.Messages(rq.mailbox, f.info.Name)
		if err != nil {
			return h.storeErr(err)
		}
		round = h.startRound(base, now, rq.mailbox, f.info, msgs, changeType, top)
	}

	if prefer > 0 {
		rq.w.Header().Set("Preference-Applied", "odata.maxpagesize="+strconv.Itoa(prefer))
	}
	end := min(offset+pageSize(round.top, prefer), len(round.items))
	value, err := h.renderItems(rq.mailbox, f.info, round.items[offset:end])
	if err != nil {
		return err
	}
	fid := f.id(rq.mailbox)
	link := h.baseURL(rq.r) + "/" + rq.userPath() + "/mailFolders('" + url.PathEscape(fid) + "')/messages/delta?"
	out := collection{Context: h.baseURL(rq.r) + "/$metadata#Collection(message)", Value: value}
	epoch := h.epoch // set once in New
	if end < len(round.items) {
		out.NextLink = link + "$skiptoken=" + syncToken{kind: tokenSkip, epoch: epoch, state: round.id, offset: uint64(end)}.String()
	} else {
		out.DeltaLink = link + "$deltatoken=" + syncToken{kind: tokenDelta, epoch: epoch, state: round.final}.String()
	}
	return writeJSON(rq.w, http.StatusOK, out)
}

func (h *Handler) highest() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lastState
}

// renderItems renders a page of a round from the store as it is now; a message that has left the
// folder since the round started is skipped (the next round reports it removed).
func (h *Handler) renderItems(mailbox string, f exo.FolderInfo, items []deltaItem) ([]any, error) {
	value := make([]any, 0, len(items))
	var byUID map[uint32]exo.MessageInfo
	for _, it := range items {
		if it.removed {
			value = append(value, removedJSON{ODataType: "#microsoft.graph.message",
				ID: messageID(mailbox, f.Name, it.validity, it.uid), Removed: removedReasonJ{Reason: "deleted"}})
			continue
		}
		if byUID == nil {
			msgs, err := h.store.Messages(mailbox, f.Name)
			if err != nil {
				return nil, h.storeErr(err)
			}
			byUID = make(map[uint32]exo.MessageInfo, len(msgs))
			for _, m := range msgs {
				byUID[m.UID] = m
			}
		}
		info, ok := byUID[it.uid]
		if !ok || it.validity != f.UIDValidity {
			continue
		}
		raw, err := h.store.Raw(mailbox, f.Name, it.uid)
		if err != nil {
			continue
		}
		m := renderMessage(mailbox, f.Name, f.UIDValidity, info, raw)
		m.ODataType = "#microsoft.graph.message"
		value = append(value, m)
	}
	return value, nil
}
