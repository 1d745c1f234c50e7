package exo

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"io"
	"net/mail"
	stdtextproto "net/textproto"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-message/textproto"
)

// imapSession serves one authenticated connection from the MailStore (go-imap parses the commands).
type imapSession struct {
	srv     *IMAPServer
	store   *MailStore
	conn    *authConn // the connection (corked while polling and for a FETCH without bodies)
	p       Principal
	sel     *selection
	fetches fetchCounter
	once    sync.Once

	// go-imap may return from IDLE (and close the session) while our Idle still runs, so Idle and
	// Close meet under idleMu.
	idleMu   sync.Mutex
	closed   bool
	idleDone chan struct{}
}

type selection struct {
	f         *folder
	view      *imapserver.SessionTracker
	readOnly  bool
	searchRes imap.UIDSet
}

var (
	_ imapserver.SessionIMAP4rev2 = (*imapSession)(nil)

	errDropped = errors.New("exo: connection dropped by fault injection")
)

func (s *IMAPServer) newSession(c *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
	ac, ok := c.NetConn().(*authConn)
	if !ok {
		return nil, nil, errors.New("exo: connection did not come through the front end")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, nil, &imap.Error{Type: imap.StatusResponseTypeBye, Text: "Connection closed. 14"}
	}
	s.sessWG.Add(1)
	sess := &imapSession{srv: s, store: s.cfg.Store, conn: ac, p: ac.principal}
	return sess, &imapserver.GreetingData{PreAuth: true}, nil
}

func no(text string) error { return &imap.Error{Type: imap.StatusResponseTypeNo, Text: text} }

var (
	errNoFolder  = no("Folder not found.")
	errTryCreate = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTryCreate, Text: "Folder not found."}
	errReadOnly  = no("Folder is read-only.")
	errNoSelect  = &imap.Error{Type: imap.StatusResponseTypeBad, Text: "Command received in Invalid state."}
)

// gate applies the stall and throttle faults to a command.
func (s *imapSession) gate() error {
	s.srv.faults.stall(s.srv.ctx)
	return s.srv.faults.throttled()
}

func (s *imapSession) Close() error {
	s.once.Do(func() {
		s.idleMu.Lock()
		s.closed = true
		done := s.idleDone
		s.idleMu.Unlock()
		if done != nil {
			<-done
		}
		s.Unselect()
		s.srv.sessWG.Done()
	})
	return nil
}

func (s *imapSession) Login(string, string) error { return no("LOGIN failed.") }

func (s *imapSession) Namespace() (*imap.NamespaceData, error) {
	return &imap.NamespaceData{Personal: []imap.NamespaceDescriptor{{Prefix: "", Delim: Delimiter}}}, nil
}

func (s *imapSession) Select(name string, options *imap.SelectOptions) (*imap.SelectData, error) {
	if err := s.gate(); err != nil {
		return nil, err
	}
	s.Unselect()
	st := s.store
	st.mu.Lock()
	defer st.mu.Unlock()
	f, err := st.folderLocked(s.p.Mailbox, name)
	if err != nil {
		return nil, errNoFolder
	}
	s.sel = &selection{f: f, view: f.tracker.NewSession(), readOnly: options != nil && options.ReadOnly}
	flags := append(slices.Clone(systemFlags), "$MDNSent")
	data := &imap.SelectData{
		Flags:          flags,
		PermanentFlags: append(slices.Clone(flags), imap.FlagWildcard),
		NumMessages:    uint32(len(f.msgs)),
		UIDNext:        f.uidNext,
		UIDValidity:    f.uidValidity,
	}
	for i, m := range f.msgs {
		if !m.hasFlag(imap.FlagSeen) {
			data.FirstUnseenSeqNum = uint32(i) + 1
			break
		}
	}
	return data, nil
}

func (s *imapSession) Unselect() error {
	if s.sel != nil {
		s.sel.view.Close()
		s.sel = nil
	}
	return nil
}

func (s *imapSession) Create(name string, _ *imap.CreateOptions) error {
	if err := s.gate(); err != nil {
		return err
	}
	if err := s.store.CreateFolder(s.p.Mailbox, strings.TrimSuffix(name, string(Delimiter))); err != nil {
		if errors.Is(err, ErrFolderExists) {
			return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAlreadyExists, Text: "Folder already exists."}
		}
		return no("Folder could not be created.")
	}
	return nil
}

func (s *imapSession) Delete(name string) error {
	if err := s.gate(); err != nil {
		return err
	}
	if err := s.store.deleteFolder(s.p.Mailbox, name); err != nil {
		return no("Folder could not be deleted.")
	}
	return nil
}

func (s *imapSession) Rename(oldName, newName string, _ *imap.RenameOptions) error {
	if err := s.gate(); err != nil {
		return err
	}
	if err := s.store.renameFolder(s.p.Mailbox, oldName, newName); err != nil {
		return no("Folder could not be renamed.")
	}
	return nil
}

func (s *imapSession) Subscribe(name string) error   { return s.setSubscribed(name, true) }
func (s *imapSession) Unsubscribe(name string) error { return s.setSubscribed(name, false) }

func (s *imapSession) setSubscribed(name string, on bool) error {
	st := s.store
	st.mu.Lock()
	defer st.mu.Unlock()
	f, err := st.folderLocked(s.p.Mailbox, name)
	if err != nil {
		return errNoFolder
	}
	f.subscribed = on
	return nil
}

func (s *imapSession) List(w *imapserver.ListWriter, ref string, patterns []string, options *imap.ListOptions) error {
	if err := s.gate(); err != nil {
		return err
	}
	if len(patterns) == 0 {
		return w.WriteList(&imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}, Delim: Delimiter})
	}
	st := s.store
	st.mu.Lock()
	b, err := st.boxLocked(s.p.Mailbox)
	if err != nil {
		st.mu.Unlock()
		return no("Mailbox not found.")
	}
	var names []string
	for _, f := range b.folders {
		names = append(names, f.name)
	}
	var out []imap.ListData
	for _, f := range b.folders {
		match := false
		for _, p := range patterns {
			if imapserver.MatchList(f.name, Delimiter, ref, p) {
				match = true
				break
			}
		}
		if !match || (options.SelectSubscribed && !f.subscribed) {
			continue
		}
		d := imap.ListData{Mailbox: f.name, Delim: Delimiter, Attrs: []imap.MailboxAttr{imap.MailboxAttrHasNoChildren}}
		for _, n := range names {
			if strings.HasPrefix(strings.ToLower(n), strings.ToLower(f.name)+string(Delimiter)) {
				d.Attrs[0] = imap.MailboxAttrHasChildren
				break
			}
		}
		if options.ReturnStatus != nil {
			d.Status = statusLocked(f, options.ReturnStatus)
		}
		out = append(out, d)
	}
	st.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Mailbox < out[j].Mailbox })
	for i := range out {
		if err := w.WriteList(&out[i]); err != nil {
			return err
		}
	}
	return nil
}

func statusLocked(f *folder, o *imap.StatusOptions) *imap.StatusData {
	info := f.info()
	d := &imap.StatusData{Mailbox: f.name}
	if o.NumMessages {
		d.NumMessages = &info.Messages
	}
	if o.UIDNext {
		d.UIDNext = imap.UID(info.UIDNext)
	}
	if o.UIDValidity {
		d.UIDValidity = info.UIDValidity
	}
	if o.NumUnseen {
		d.NumUnseen = &info.Unseen
	}
	if o.NumRecent {
		var zero uint32
		d.NumRecent = &zero
	}
	if o.Size {
		var n int64
		for _, m := range f.msgs {
			n += int64(len(m.raw))
		}
		d.Size = &n
	}
	return d
}

func (s *imapSession) Status(name string, options *imap.StatusOptions) (*imap.StatusData, error) {
	if err := s.gate(); err != nil {
		return nil, err
	}
	st := s.store
	st.mu.Lock()
	defer st.mu.Unlock()
	f, err := st.folderLocked(s.p.Mailbox, name)
	if err != nil {
		return nil, errNoFolder
	}
	return statusLocked(f, options), nil
}

func (s *imapSession) Append(name string, r imap.LiteralReader, options *imap.AppendOptions) (*imap.AppendData, error) {
	raw, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	if err := s.gate(); err != nil {
		return nil, err
	}
	m := newMessage(raw, options.Time)
	for _, fl := range options.Flags {
		m.store(imap.StoreFlagsAdd, []imap.Flag{fl})
	}
	st := s.store
	st.mu.Lock()
	defer st.mu.Unlock()
	f, err := st.folderLocked(s.p.Mailbox, name)
	if err != nil {
		return nil, errTryCreate
	}
	if m.date.IsZero() {
		m.date = st.clock()
	}
	uid := f.appendLocked(m)
	return &imap.AppendData{UIDValidity: f.uidValidity, UID: uid}, nil
}

func (s *imapSession) Poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	if s.sel == nil {
		return nil
	}
	s.store.mu.Lock()
	gone := s.sel.f.deleted
	s.store.mu.Unlock()
	if gone {
		// The folder was deleted or rebuilt (RenumberFolder) under this session: end the connection,
		// so the client selects it again and sees the new UIDVALIDITY.
		s.conn.Close()
		return errors.New("exo: the selected folder was rebuilt")
	}
	return s.poll(s.sel, w, allowExpunge)
}

// poll writes a selection's pending updates, corked: go-imap flushes each line, and a MOVE of
// thousands of messages means thousands of EXPUNGE lines.
func (s *imapSession) poll(sel *selection, w *imapserver.UpdateWriter, allowExpunge bool) error {
	return s.conn.whileCorked(func() error { return sel.view.Poll(w, allowExpunge) })
}

func (s *imapSession) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	if err := s.gate(); err != nil {
		return err
	}
	s.idleMu.Lock()
	if s.closed {
		s.idleMu.Unlock()
		return nil
	}
	done := make(chan struct{})
	s.idleDone = done
	sel := s.sel
	s.idleMu.Unlock()
	defer func() {
		s.idleMu.Lock()
		s.idleDone = nil
		s.idleMu.Unlock()
		close(done)
	}()
	if sel == nil {
		<-stop
		return nil
	}
	// Not SessionTracker.Idle: go-imap sends "+ idling" before calling us, and an update queued in
	// between would wait for the next one. Taking the change channel before each Poll loses nothing.
	for {
		s.store.mu.Lock()
		changed, gone := sel.f.changed, sel.f.deleted
		s.store.mu.Unlock()
		if gone {
			s.conn.Close() // rebuilt under the idling client: it reconnects and selects again
			return errors.New("exo: the selected folder was rebuilt")
		}
		if err := s.poll(sel, w, true); err != nil {
			return err
		}
		select {
		case <-changed:
		case <-stop:
			return nil
		}
	}
}

func (s *imapSession) Expunge(_ *imapserver.ExpungeWriter, uids *imap.UIDSet) error {
	if err := s.gate(); err != nil {
		return err
	}
	if s.sel.readOnly {
		return errReadOnly
	}
	st := s.store
	st.mu.Lock()
	defer st.mu.Unlock()
	var idx []int
	for i, m := range s.sel.f.msgs {
		if m.hasFlag(imap.FlagDeleted) && (uids == nil || uids.Contains(m.uid)) {
			idx = append(idx, i)
		}
	}
	s.sel.f.expungeLocked(idx) // the EXPUNGE responses reach this client through Poll
	return nil
}

// forEachLocked calls fn for the messages of numSet this session knows about (sequence number != 0).
func (sel *selection) forEachLocked(numSet imap.NumSet, fn func(seq uint32, i int, m *message)) {
	numSet = sel.staticNumSet(numSet)
	if uids, ok := numSet.(imap.UIDSet); ok && ascending(uids) {
		// The folder's messages are in UID order: look each range up instead of reading the whole
		// folder for every command (a client fetching a large folder in batches would make that
		// quadratic).
		msgs := sel.f.msgs
		for _, r := range uids {
			lo, _ := slices.BinarySearchFunc(msgs, r.Start, func(m *message, u imap.UID) int { return cmp.Compare(m.uid, u) })
			for i := lo; i < len(msgs) && msgs[i].uid <= r.Stop; i++ {
				if seq := sel.view.EncodeSeqNum(uint32(i) + 1); seq != 0 {
					fn(seq, i, msgs[i])
				}
			}
		}
		return
	}
	for i, m := range sel.f.msgs {
		var in bool
		switch ns := numSet.(type) {
		case imap.SeqSet:
			if seq := sel.view.EncodeSeqNum(uint32(i) + 1); seq != 0 && ns.Contains(seq) {
				fn(seq, i, m)
			}
			continue
		case imap.UIDSet:
			in = ns.Contains(m.uid)
		}
		if in {
			if seq := sel.view.EncodeSeqNum(uint32(i) + 1); seq != 0 {
				fn(seq, i, m)
			}
		}
	}
}

// ascending reports whether a static UID set's ranges are each in order and in ascending order of
// one another, without overlaps (as clients send them); forEachLocked reads other sets whole.
func ascending(uids imap.UIDSet) bool {
	for i, r := range uids {
		if r.Start > r.Stop || i > 0 && r.Start <= uids[i-1].Stop {
			return false
		}
	}
	return true
}

// staticNumSet resolves "*" and the SEARCHRES "$" marker.
func (sel *selection) staticNumSet(numSet imap.NumSet) imap.NumSet {
	if imap.IsSearchRes(numSet) {
		return sel.searchRes
	}
	switch ns := numSet.(type) {
	case imap.SeqSet:
		out := slices.Clone(ns)
		for i := range out {
			staticRange(&out[i].Start, &out[i].Stop, uint32(len(sel.f.msgs)))
		}
		return out
	case imap.UIDSet:
		out := slices.Clone(ns)
		for i := range out {
			staticRange((*uint32)(&out[i].Start), (*uint32)(&out[i].Stop), uint32(sel.f.uidNext)-1)
		}
		return out
	}
	return numSet
}

func staticRange(start, stop *uint32, max uint32) {
	dyn := *start == 0 || *stop == 0
	if *start == 0 {
		*start = max
	}
	if *stop == 0 {
		*stop = max
	}
	if dyn && *start > *stop {
		*start, *stop = *stop, *start
	}
}

// fetched is what FETCH writes for one message, copied under the store lock.
type fetched struct {
	seq   uint32
	uid   imap.UID
	raw   []byte
	date  time.Time
	flags []imap.Flag
}

func (s *imapSession) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	if err := s.gate(); err != nil {
		return err
	}
	if len(options.BodySection) == 0 && len(options.BinarySection) == 0 {
		// Flags, sizes, dates: a short line per message, written together (see authConn).
		return s.conn.whileCorked(func() error { return s.fetch(w, numSet, options) })
	}
	return s.fetch(w, numSet, options)
}

func (s *imapSession) fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	markSeen := false
	for _, bs := range options.BodySection {
		markSeen = markSeen || !bs.Peek
	}
	markSeen = markSeen && !s.sel.readOnly
	st := s.store
	st.mu.Lock()
	var items []fetched
	s.sel.forEachLocked(numSet, func(seq uint32, i int, m *message) {
		if markSeen && m.store(imap.StoreFlagsAdd, []imap.Flag{imap.FlagSeen}) {
			s.sel.f.queueFlagsLocked(i, m, s.sel.view)
		}
		items = append(items, fetched{seq: seq, uid: m.uid, raw: m.raw, date: m.date, flags: m.flagList()})
	})
	st.mu.Unlock()

	for _, it := range items {
		if err := writeFetch(w.CreateMessage(it.seq), &it, options, markSeen); err != nil {
			return err
		}
		if s.srv.faults.countFetch(&s.fetches) {
			s.srv.log.Info("fault: dropping IMAP connection mid-FETCH", "mailbox", s.p.Mailbox)
			s.conn.Close()
			return errDropped
		}
	}
	return nil
}

func writeFetch(rw *imapserver.FetchResponseWriter, it *fetched, o *imap.FetchOptions, withFlags bool) error {
	rw.WriteUID(it.uid)
	if o.Flags || withFlags {
		rw.WriteFlags(it.flags)
	}
	if o.InternalDate {
		rw.WriteInternalDate(it.date)
	}
	if o.RFC822Size {
		rw.WriteRFC822Size(int64(len(it.raw)))
	}
	if o.Envelope {
		if h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(it.raw))); err == nil {
			rw.WriteEnvelope(imapserver.ExtractEnvelope(h))
		}
	}
	if o.BodyStructure != nil {
		rw.WriteBodyStructure(imapserver.ExtractBodyStructure(bytes.NewReader(it.raw)))
	}
	for _, bs := range o.BodySection {
		buf := it.raw // BODY[] / BODY.PEEK[]: the whole message, no parsing
		if bs.Specifier != imap.PartSpecifierNone || len(bs.Part) > 0 || bs.Partial != nil || len(bs.HeaderFields) > 0 || len(bs.HeaderFieldsNot) > 0 {
			buf = imapserver.ExtractBodySection(bytes.NewReader(it.raw), bs)
		}
		if err := writeLiteral(rw.WriteBodySection(bs, int64(len(buf))), buf); err != nil {
			return err
		}
	}
	for _, bs := range o.BinarySection {
		buf := imapserver.ExtractBinarySection(bytes.NewReader(it.raw), bs)
		if err := writeLiteral(rw.WriteBinarySection(bs, int64(len(buf))), buf); err != nil {
			return err
		}
	}
	for _, bss := range o.BinarySectionSize {
		rw.WriteBinarySectionSize(bss, imapserver.ExtractBinarySectionSize(bytes.NewReader(it.raw), bss))
	}
	return rw.Close()
}

func writeLiteral(wc io.WriteCloser, b []byte) error {
	_, err := wc.Write(b)
	if cerr := wc.Close(); err == nil {
		err = cerr
	}
	return err
}

func (s *imapSession) Store(w *imapserver.FetchWriter, numSet imap.NumSet, flags *imap.StoreFlags, _ *imap.StoreOptions) error {
	if err := s.gate(); err != nil {
		return err
	}
	if s.sel.readOnly {
		return errReadOnly
	}
	st := s.store
	st.mu.Lock()
	var items []fetched
	s.sel.forEachLocked(numSet, func(seq uint32, i int, m *message) {
		if m.store(flags.Op, flags.Flags) {
			s.sel.f.queueFlagsLocked(i, m, s.sel.view)
		}
		items = append(items, fetched{seq: seq, uid: m.uid, flags: m.flagList()})
	})
	st.mu.Unlock()
	if flags.Silent {
		return nil
	}
	flagsOnly := &imap.FetchOptions{Flags: true}
	for _, it := range items {
		if err := writeFetch(w.CreateMessage(it.seq), &it, flagsOnly, false); err != nil {
			return err
		}
	}
	return nil
}

// copyLocked appends copies of numSet's messages to dest and returns the COPYUID data and the source
// indexes.
func (s *imapSession) copyLocked(numSet imap.NumSet, destName string) (*imap.CopyData, []int, error) {
	dest, err := s.store.folderLocked(s.p.Mailbox, destName)
	if err != nil {
		return nil, nil, errTryCreate
	}
	if dest == s.sel.f {
		return nil, nil, no("Source and destination folders are the same.")
	}
	data := &imap.CopyData{UIDValidity: dest.uidValidity}
	var idx []int
	s.sel.forEachLocked(numSet, func(_ uint32, i int, m *message) {
		data.SourceUIDs.AddNum(m.uid)
		data.DestUIDs.AddNum(dest.appendLocked(m.copy()))
		idx = append(idx, i)
	})
	return data, idx, nil
}

func (s *imapSession) Copy(numSet imap.NumSet, dest string) (*imap.CopyData, error) {
	if err := s.gate(); err != nil {
		return nil, err
	}
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	data, _, err := s.copyLocked(numSet, dest)
	return data, err
}

func (s *imapSession) Move(w *imapserver.MoveWriter, numSet imap.NumSet, dest string) error {
	if err := s.gate(); err != nil {
		return err
	}
	if s.sel.readOnly {
		return errReadOnly
	}
	s.store.mu.Lock()
	data, idx, err := s.copyLocked(numSet, dest)
	if err == nil {
		s.sel.f.expungeLocked(idx) // the EXPUNGE responses reach this client through Poll
	}
	s.store.mu.Unlock()
	if err != nil {
		return err
	}
	return w.WriteCopyData(data)
}

func (s *imapSession) Search(kind imapserver.NumKind, criteria *imap.SearchCriteria, options *imap.SearchOptions) (*imap.SearchData, error) {
	if err := s.gate(); err != nil {
		return nil, err
	}
	st := s.store
	st.mu.Lock()
	defer st.mu.Unlock()
	s.sel.staticCriteria(criteria)
	var (
		data   imap.SearchData
		seqSet imap.SeqSet
		uidSet imap.UIDSet
	)
	for i, m := range s.sel.f.msgs {
		seq := s.sel.view.EncodeSeqNum(uint32(i) + 1)
		if seq == 0 || !matchMessage(seq, m, criteria) {
			continue
		}
		uidSet.AddNum(m.uid)
		num := seq
		if kind == imapserver.NumKindUID {
			num = uint32(m.uid)
		} else {
			seqSet.AddNum(seq)
		}
		if data.Min == 0 || num < data.Min {
			data.Min = num
		}
		data.Max = max(data.Max, num)
		data.Count++
	}
	if kind == imapserver.NumKindUID {
		data.All = uidSet
	} else {
		data.All = seqSet
	}
	if options != nil && options.ReturnSave {
		s.sel.searchRes = uidSet
	}
	return &data, nil
}

func (sel *selection) staticCriteria(c *imap.SearchCriteria) {
	var seqs []imap.SeqSet
	for _, ss := range c.SeqNum {
		switch ns := sel.staticNumSet(ss).(type) {
		case imap.SeqSet:
			seqs = append(seqs, ns)
		case imap.UIDSet:
			c.UID = append(c.UID, ns)
		}
	}
	c.SeqNum = seqs
	for i := range c.UID {
		c.UID[i] = sel.staticNumSet(c.UID[i]).(imap.UIDSet)
	}
	for i := range c.Not {
		sel.staticCriteria(&c.Not[i])
	}
	for i := range c.Or {
		sel.staticCriteria(&c.Or[i][0])
		sel.staticCriteria(&c.Or[i][1])
	}
}

// matchMessage evaluates SEARCH criteria; text searches look at the raw bytes (no MIME decoding).
func matchMessage(seq uint32, m *message, c *imap.SearchCriteria) bool {
	for _, ss := range c.SeqNum {
		if !ss.Contains(seq) {
			return false
		}
	}
	for _, us := range c.UID {
		if !us.Contains(m.uid) {
			return false
		}
	}
	if !inDateRange(m.date, c.Since, c.Before) {
		return false
	}
	for _, fl := range c.Flag {
		if !m.hasFlag(fl) {
			return false
		}
	}
	for _, fl := range c.NotFlag {
		if m.hasFlag(fl) {
			return false
		}
	}
	if (c.Larger != 0 && int64(len(m.raw)) <= c.Larger) || (c.Smaller != 0 && int64(len(m.raw)) >= c.Smaller) {
		return false
	}
	if len(c.Header) > 0 || !c.SentSince.IsZero() || !c.SentBefore.IsZero() || len(c.Body) > 0 {
		msg, err := mail.ReadMessage(bytes.NewReader(m.raw))
		if err != nil {
			return false
		}
		for _, hf := range c.Header {
			v, ok := msg.Header[stdtextproto.CanonicalMIMEHeaderKey(hf.Key)]
			if !ok || !containsFold(strings.Join(v, "\n"), hf.Value) {
				return false
			}
		}
		if !c.SentSince.IsZero() || !c.SentBefore.IsZero() {
			d, err := msg.Header.Date()
			if err != nil || !inDateRange(d, c.SentSince, c.SentBefore) {
				return false
			}
		}
		if len(c.Body) > 0 {
			body, _ := io.ReadAll(msg.Body)
			for _, b := range c.Body {
				if !containsFold(string(body), b) {
					return false
				}
			}
		}
	}
	for _, t := range c.Text {
		if !containsFold(string(m.raw), t) {
			return false
		}
	}
	for i := range c.Not {
		if matchMessage(seq, m, &c.Not[i]) {
			return false
		}
	}
	for i := range c.Or {
		if !matchMessage(seq, m, &c.Or[i][0]) && !matchMessage(seq, m, &c.Or[i][1]) {
			return false
		}
	}
	return true
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}

// inDateRange compares dates only, ignoring time and zone (RFC 3501 §6.4.4).
func inDateRange(t, since, before time.Time) bool {
	d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	return (since.IsZero() || !d.Before(since)) && (before.IsZero() || d.Before(before))
}
