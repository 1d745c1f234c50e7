package exo

import (
	"bytes"
	"errors"
	"fmt"
	"mime"
	"net/mail"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

// Errors of the MailStore; test them with errors.Is.
var (
	ErrNoMailbox     = errors.New("exo: no such mailbox")
	ErrNoFolder      = errors.New("exo: no such folder")
	ErrNoMessage     = errors.New("exo: no such message")
	ErrFolderExists  = errors.New("exo: folder already exists")
	ErrMailboxExists = errors.New("exo: mailbox already exists")
)

// Delimiter is the folder hierarchy delimiter, as Exchange Online's IMAP uses.
const Delimiter = '/'

// FolderInfo describes one folder of a mailbox.
type FolderInfo struct {
	Name        string
	Messages    uint32
	Unseen      uint32
	UIDValidity uint32
	UIDNext     uint32
}

// MessageInfo describes one message of a folder.
type MessageInfo struct {
	UID          uint32
	Size         int
	Subject      string
	From         string
	Flags        []string
	InternalDate time.Time
}

// MailStore is the emulator's in-memory mail store: mailboxes keyed by address (case-insensitive),
// each with folders (INBOX always), UIDVALIDITY per folder, UIDs, flags and internal dates. The IMAP
// front end serves it directly, so a delivery through the admin API or SMTP shows up to IMAP clients,
// IDLE included. All methods are safe for concurrent use.
//
// One mutex guards everything: the emulator's load is small, and a single lock keeps MOVE (two
// folders), EXPUNGE and the IMAP trackers' ordering trivially consistent. Message bodies are
// immutable, so FETCH copies references under the lock and writes to the network without it.
type MailStore struct {
	clock func() time.Time

	mu           sync.Mutex
	boxes        map[string]*mailbox // by lower-cased address
	lastValidity uint32
}

type mailbox struct {
	address string
	folders map[string]*folder // by folderKey
}

type folder struct {
	name        string
	uidValidity uint32
	uidNext     imap.UID
	msgs        []*message // ordered by UID; index+1 is the sequence number
	tracker     *imapserver.MailboxTracker
	subscribed  bool
	deleted     bool
	changed     chan struct{} // closed and replaced on every change, for IDLE
}

type message struct {
	uid     imap.UID
	raw     []byte // immutable
	date    time.Time
	subject string
	from    string
	flags   []imap.Flag // canonical spelling, guarded by MailStore.mu
}

// NewMailStore returns an empty store; clock gives internal dates and seeds UIDVALIDITY values
// (nil means time.Now).
func NewMailStore(clock func() time.Time) *MailStore {
	if clock == nil {
		clock = time.Now
	}
	return &MailStore{clock: clock, boxes: make(map[string]*mailbox)}
}

func addrKey(address string) string { return strings.ToLower(strings.TrimSpace(address)) }

// folderKey makes folder names case-insensitive, as Exchange's are; INBOX is always "INBOX".
func folderKey(name string) string {
	if strings.EqualFold(name, "INBOX") {
		return "INBOX"
	}
	return strings.ToLower(name)
}

// CreateMailbox adds a mailbox with an empty INBOX.
func (s *MailStore) CreateMailbox(address string) error {
	k := addrKey(address)
	if k == "" || !strings.Contains(k, "@") {
		return fmt.Errorf("exo: create mailbox %q: not an e-mail address", address)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.boxes[k]; ok {
		return fmt.Errorf("exo: create mailbox %s: %w", address, ErrMailboxExists)
	}
	b := &mailbox{address: strings.TrimSpace(address), folders: make(map[string]*folder)}
	b.folders["INBOX"] = s.newFolderLocked("INBOX")
	s.boxes[k] = b
	return nil
}

// HasMailbox reports whether a mailbox exists for address.
func (s *MailStore) HasMailbox(address string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.boxes[addrKey(address)]
	return ok
}

// Mailboxes lists the mailbox addresses, sorted.
func (s *MailStore) Mailboxes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var l []string
	for _, b := range s.boxes {
		l = append(l, b.address)
	}
	sort.Strings(l)
	return l
}

func (s *MailStore) newFolderLocked(name string) *folder {
	v := uint32(s.clock().Unix())
	if v <= s.lastValidity {
		v = s.lastValidity + 1
	}
	s.lastValidity = v
	return &folder{name: name, uidValidity: v, uidNext: 1, tracker: imapserver.NewMailboxTracker(0), subscribed: true,
		changed: make(chan struct{})}
}

func (s *MailStore) boxLocked(address string) (*mailbox, error) {
	b, ok := s.boxes[addrKey(address)]
	if !ok {
		return nil, fmt.Errorf("exo: mailbox %s: %w", address, ErrNoMailbox)
	}
	return b, nil
}

func (s *MailStore) folderLocked(address, name string) (*folder, error) {
	b, err := s.boxLocked(address)
	if err != nil {
		return nil, err
	}
	f, ok := b.folders[folderKey(name)]
	if !ok {
		return nil, fmt.Errorf("exo: mailbox %s folder %q: %w", address, name, ErrNoFolder)
	}
	return f, nil
}

// folderOrCreateLocked returns the folder, creating it (and nothing above it) when missing.
func (s *MailStore) folderOrCreateLocked(address, name string) (*folder, error) {
	b, err := s.boxLocked(address)
	if err != nil {
		return nil, err
	}
	if err := checkFolderName(name); err != nil {
		return nil, err
	}
	k := folderKey(name)
	f, ok := b.folders[k]
	if !ok {
		f = s.newFolderLocked(canonicalFolderName(name))
		b.folders[k] = f
	}
	return f, nil
}

func checkFolderName(name string) error {
	if name == "" || strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/") || strings.Contains(name, "//") ||
		strings.ContainsAny(name, "*%\r\n\x00") {
		return fmt.Errorf("exo: folder name %q: %w", name, ErrNoFolder)
	}
	return nil
}

func canonicalFolderName(name string) string {
	if strings.EqualFold(name, "INBOX") {
		return "INBOX"
	}
	return name
}

// CreateFolder creates a folder in a mailbox.
func (s *MailStore) CreateFolder(address, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.boxLocked(address)
	if err != nil {
		return err
	}
	if err := checkFolderName(name); err != nil {
		return err
	}
	if _, ok := b.folders[folderKey(name)]; ok {
		return fmt.Errorf("exo: create folder %q: %w", name, ErrFolderExists)
	}
	b.folders[folderKey(name)] = s.newFolderLocked(canonicalFolderName(name))
	return nil
}

// Deliver appends a raw RFC 5322 message to a folder (created when missing) and returns its UID.
func (s *MailStore) Deliver(address, folderName string, raw []byte) (uint32, error) {
	if len(raw) == 0 {
		return 0, fmt.Errorf("exo: deliver to %s: empty message", address)
	}
	msg := newMessage(bytes.Clone(raw), time.Time{})
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := s.folderOrCreateLocked(address, folderName)
	if err != nil {
		return 0, fmt.Errorf("exo: deliver: %w", err)
	}
	if msg.date.IsZero() {
		msg.date = s.clock()
	}
	return uint32(f.appendLocked(msg)), nil
}

func newMessage(raw []byte, date time.Time) *message {
	m := &message{raw: raw, date: date}
	if hdr, err := mail.ReadMessage(bytes.NewReader(raw)); err == nil {
		dec := mime.WordDecoder{}
		m.subject = hdr.Header.Get("Subject")
		if d, err := dec.DecodeHeader(m.subject); err == nil {
			m.subject = d
		}
		m.from = hdr.Header.Get("From")
		if a, err := mail.ParseAddress(m.from); err == nil {
			m.from = a.Address
		}
	}
	return m
}

func (f *folder) appendLocked(m *message) imap.UID {
	m.uid = f.uidNext
	f.uidNext++
	f.msgs = append(f.msgs, m)
	f.tracker.QueueNumMessages(uint32(len(f.msgs)))
	f.signalLocked()
	return m.uid
}

// signalLocked wakes the IDLE sessions of this folder.
func (f *folder) signalLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// queueFlagsLocked tells the other sessions (all when source is nil) that a message's flags changed.
func (f *folder) queueFlagsLocked(i int, m *message, source *imapserver.SessionTracker) {
	f.tracker.QueueMessageFlags(uint32(i)+1, m.uid, m.flagList(), source)
	f.signalLocked()
}

// indexLocked returns the index of uid in f.msgs, or -1.
func (f *folder) indexLocked(uid imap.UID) int {
	i, ok := slices.BinarySearchFunc(f.msgs, uid, func(m *message, u imap.UID) int {
		return int(int64(m.uid) - int64(u))
	})
	if !ok {
		return -1
	}
	return i
}

// expungeLocked removes the messages at the given indexes (any order) and tells the trackers, highest
// sequence number first so that each EXPUNGE stays valid for the clients.
func (f *folder) expungeLocked(idx []int) {
	if len(idx) == 0 {
		return
	}
	slices.Sort(idx)
	idx = slices.Compact(idx)
	// The expunges are queued from the highest sequence number down, so that each number still
	// names the message it did when the command began; the messages left are closed up in one pass
	// (one at a time made a MOVE of the first n of m messages cost n×m).
	for j := len(idx) - 1; j >= 0; j-- {
		f.tracker.QueueExpunge(uint32(idx[j]) + 1)
	}
	kept, next := f.msgs[:idx[0]], 0
	for i := idx[0]; i < len(f.msgs); i++ {
		if next < len(idx) && idx[next] == i {
			next++
			continue
		}
		kept = append(kept, f.msgs[i])
	}
	clear(f.msgs[len(kept):])
	f.msgs = kept
	f.signalLocked()
}

func (f *folder) info() FolderInfo {
	fi := FolderInfo{Name: f.name, Messages: uint32(len(f.msgs)), UIDValidity: f.uidValidity, UIDNext: uint32(f.uidNext)}
	for _, m := range f.msgs {
		if !m.hasFlag(imap.FlagSeen) {
			fi.Unseen++
		}
	}
	return fi
}

// Folders lists a mailbox's folders, INBOX first, then by name.
func (s *MailStore) Folders(address string) ([]FolderInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.boxLocked(address)
	if err != nil {
		return nil, err
	}
	l := make([]FolderInfo, 0, len(b.folders))
	for _, f := range b.folders {
		l = append(l, f.info())
	}
	sort.Slice(l, func(i, j int) bool {
		if (l[i].Name == "INBOX") != (l[j].Name == "INBOX") {
			return l[i].Name == "INBOX"
		}
		return l[i].Name < l[j].Name
	})
	return l, nil
}

// Messages lists a folder's messages in UID order.
func (s *MailStore) Messages(address, folderName string) ([]MessageInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := s.folderLocked(address, folderName)
	if err != nil {
		return nil, err
	}
	l := make([]MessageInfo, len(f.msgs))
	for i, m := range f.msgs {
		flags := make([]string, len(m.flags))
		for j, fl := range m.flags {
			flags[j] = string(fl)
		}
		l[i] = MessageInfo{UID: uint32(m.uid), Size: len(m.raw), Subject: m.subject, From: m.from, Flags: flags, InternalDate: m.date}
	}
	return l, nil
}

// Raw returns a copy of a message's RFC 5322 bytes.
func (s *MailStore) Raw(address, folderName string, uid uint32) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, _, err := s.messageLocked(address, folderName, uid)
	if err != nil {
		return nil, err
	}
	return bytes.Clone(m.raw), nil
}

func (s *MailStore) messageLocked(address, folderName string, uid uint32) (*message, *folder, error) {
	f, err := s.folderLocked(address, folderName)
	if err != nil {
		return nil, nil, err
	}
	i := f.indexLocked(imap.UID(uid))
	if i < 0 {
		return nil, nil, fmt.Errorf("exo: mailbox %s folder %q uid %d: %w", address, folderName, uid, ErrNoMessage)
	}
	return f.msgs[i], f, nil
}

// Move moves one message to dest (created when missing) and returns its UID there.
func (s *MailStore) Move(address, folderName string, uid uint32, dest string) (uint32, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, src, err := s.messageLocked(address, folderName, uid)
	if err != nil {
		return 0, err
	}
	d, err := s.folderOrCreateLocked(address, dest)
	if err != nil {
		return 0, err
	}
	if d == src {
		return uid, nil
	}
	newUID := d.appendLocked(m.copy())
	src.expungeLocked([]int{src.indexLocked(m.uid)})
	return uint32(newUID), nil
}

// SetSeen sets or clears \Seen on a message; IMAP sessions that selected the folder are told.
func (s *MailStore) SetSeen(address, folderName string, uid uint32, seen bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, f, err := s.messageLocked(address, folderName, uid)
	if err != nil {
		return err
	}
	op := imap.StoreFlagsDel
	if seen {
		op = imap.StoreFlagsAdd
	}
	if m.store(op, []imap.Flag{imap.FlagSeen}) {
		f.queueFlagsLocked(f.indexLocked(m.uid), m, nil)
	}
	return nil
}

func (m *message) copy() *message {
	c := *m
	c.flags = slices.Clone(m.flags)
	return &c
}

func (m *message) hasFlag(fl imap.Flag) bool {
	return slices.Contains(m.flags, canonicalFlag(fl))
}

func (m *message) flagList() []imap.Flag {
	return append([]imap.Flag{}, m.flags...)
}

// store applies a STORE operation and reports whether the flags changed.
func (m *message) store(op imap.StoreFlagsOp, flags []imap.Flag) bool {
	before := slices.Clone(m.flags)
	if op == imap.StoreFlagsSet {
		m.flags = nil
	}
	for _, fl := range flags {
		fl = canonicalFlag(fl)
		i := slices.Index(m.flags, fl)
		switch {
		case op == imap.StoreFlagsDel && i >= 0:
			m.flags = slices.Delete(m.flags, i, i+1)
		case op != imap.StoreFlagsDel && i < 0:
			m.flags = append(m.flags, fl)
		}
	}
	return !slices.Equal(before, m.flags)
}

var systemFlags = []imap.Flag{imap.FlagSeen, imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted, imap.FlagDraft}

// canonicalFlag spells system flags the standard way (flags are case-insensitive in IMAP).
func canonicalFlag(fl imap.Flag) imap.Flag {
	for _, sf := range systemFlags {
		if strings.EqualFold(string(fl), string(sf)) {
			return sf
		}
	}
	return fl
}

// deleteFolder removes a folder (not INBOX) and its messages.
func (s *MailStore) deleteFolder(address, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := s.folderLocked(address, name)
	if err != nil {
		return err
	}
	if f.name == "INBOX" {
		return fmt.Errorf("exo: delete INBOX: not allowed")
	}
	f.deleted = true
	delete(s.boxes[addrKey(address)].folders, folderKey(name))
	return nil
}

// renameFolder renames a folder (not INBOX); its UIDVALIDITY and messages stay.
func (s *MailStore) renameFolder(address, oldName, newName string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := s.folderLocked(address, oldName)
	if err != nil {
		return err
	}
	if err := checkFolderName(newName); err != nil {
		return err
	}
	b := s.boxes[addrKey(address)]
	if f.name == "INBOX" || folderKey(newName) == "INBOX" {
		return fmt.Errorf("exo: rename INBOX: not allowed")
	}
	if _, ok := b.folders[folderKey(newName)]; ok && folderKey(newName) != folderKey(oldName) {
		return fmt.Errorf("exo: rename to %q: %w", newName, ErrFolderExists)
	}
	delete(b.folders, folderKey(oldName))
	f.name = newName
	b.folders[folderKey(newName)] = f
	return nil
}

// RenumberFolder gives a folder a new UIDVALIDITY and numbers its messages again from 1, as a server
// does after rebuilding a mailbox (RFC 3501 §2.3.1.1). The old folder is gone for the sessions that
// had it selected: their next command fails and they must select it again. It returns the new
// UIDVALIDITY.
func (s *MailStore) RenumberFolder(address, name string) (uint32, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, err := s.folderLocked(address, name)
	if err != nil {
		return 0, err
	}
	nf := s.newFolderLocked(old.name)
	nf.subscribed = old.subscribed
	for _, m := range old.msgs {
		c := *m
		c.flags = append([]imap.Flag(nil), m.flags...)
		nf.appendLocked(&c)
	}
	old.deleted = true
	s.boxes[addrKey(address)].folders[folderKey(name)] = nf
	old.signalLocked()
	return nf.uidValidity, nil
}
