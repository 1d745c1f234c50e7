package imapsource

import (
	"fmt"
	"strings"

	"github.com/emersion/go-imap/v2"

	"inkorg/internal/diag"
)

// Move moves messages of the selected mailbox to the folder dest ("a/b" names a nested folder, see
// EnsureFolder). It uses UID MOVE when the server has MOVE; otherwise UID COPY, UID STORE
// +FLAGS.SILENT (\Deleted) and UID EXPUNGE, which needs UIDPLUS: without it Move refuses (a plain
// EXPUNGE would also remove every other message someone marked \Deleted).
//
// Moving UIDs that no longer exist is not an error, so a Move repeated after a crash is harmless:
// Move first asks which of the UIDs still exist (UID SEARCH, one round trip) and moves only those.
// Without MOVE, a repeat skips the UIDs already marked \Deleted (a crashed attempt copied those
// before marking them) and only expunges them; a crash between COPY and STORE can still leave a
// second copy in dest. Throttling returns a *diag.Error of kind throttled with RetryAfterMS.
func (c *Conn) Move(uids []uint32, dest string) error {
	if len(uids) == 0 {
		return nil
	}
	name, err := c.serverName(dest)
	if err != nil {
		return err
	}
	set := setOf(uids)
	select {
	case <-c.c.Closed():
		return &diag.Error{Stage: StageMove, Kind: diag.KindTransient, Code: "closed", Summary: "the connection to " + c.cfg.Addr + " is closed",
			Remedy: "inkorg reconnects and moves the messages then"}
	default:
	}
	caps := c.c.Caps()
	if len(caps) == 0 {
		// go-imap forgets the capabilities when the connection drops, and after some sign-ins: ask.
		if d, err := c.c.Capability().Wait(); err == nil {
			caps = d
		} else {
			return c.imapError(StageMove, err)
		}
	}
	if caps.Has(imap.CapMove) {
		return c.move(set, name)
	}
	if !caps.Has(imap.CapUIDPlus) {
		return &diag.Error{Stage: StageMove, Kind: diag.KindConfig, Code: "no MOVE, no UIDPLUS",
			Summary: "the IMAP server at " + c.cfg.Addr + " offers neither MOVE nor UIDPLUS, so messages cannot be moved without expunging other deleted messages too",
			Remedy:  "set the account's processed folder to \"leave in place\", or use a server with MOVE or UIDPLUS"}
	}
	return c.copyExpunge(set, name)
}

// move sends UID MOVE for the UIDs of set that still exist. Asking first costs a round trip per
// batch but makes a repeated Move behave the same on every server: some answer UID MOVE of missing
// UIDs with OK, some with NO, and some (go-imap's server, so the emulator) with an empty COPYUID
// that go-imap's client cannot parse, which ends the connection.
func (c *Conn) move(set imap.UIDSet, name string) error {
	exist, err := c.existing(set, false)
	if err != nil || len(exist) == 0 {
		return err
	}
	return c.guard(StageMove, "UID MOVE", func() error {
		_, err := c.c.Move(exist, name).Wait()
		return err
	})
}

// copyExpunge is MOVE's fallback with UIDPLUS.
func (c *Conn) copyExpunge(set imap.UIDSet, name string) error {
	exist, err := c.existing(set, false)
	if err != nil || len(exist) == 0 {
		return err
	}
	deleted, err := c.existing(exist, true)
	if err != nil {
		return err
	}
	var toCopy imap.UIDSet
	nums, _ := exist.Nums()
	for _, u := range nums {
		if !deleted.Contains(u) {
			toCopy.AddNum(u)
		}
	}
	if len(toCopy) > 0 {
		// COPY must succeed before anything is marked \Deleted.
		if err := c.guard(StageMove, "UID COPY", func() error {
			_, err := c.c.Copy(toCopy, name).Wait()
			return err
		}); err != nil {
			return err
		}
	}
	return c.guard(StageMove, "UID STORE/UID EXPUNGE", func() error {
		var store interface{ Close() error }
		if len(toCopy) > 0 {
			store = c.c.Store(toCopy, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil)
		}
		exp := c.c.UIDExpunge(exist) // pipelined: it expunges only what is \Deleted by then
		if store != nil {
			if err := store.Close(); err != nil {
				exp.Close()
				return err
			}
		}
		var n uint32
		for exp.Next() != 0 {
			n++
		}
		c.expunged(n) // these EXPUNGEs went to the command, not to onExpunge
		return exp.Close()
	})
}

// existing returns the UIDs of set that are still in the selected mailbox (and \Deleted, if
// deleted is set).
func (c *Conn) existing(set imap.UIDSet, deleted bool) (imap.UIDSet, error) {
	crit := &imap.SearchCriteria{UID: []imap.UIDSet{set}}
	if deleted {
		crit.Flag = []imap.Flag{imap.FlagDeleted}
	}
	var data *imap.SearchData
	if err := c.guard(StageMove, "UID SEARCH", func() error {
		var err error
		data, err = c.c.UIDSearch(crit, nil).Wait()
		return err
	}); err != nil {
		return nil, err
	}
	var out imap.UIDSet
	for _, u := range data.AllUIDs() {
		if set.Contains(u) { // never trust "n:*" semantics for the highest message
			out.AddNum(u)
		}
	}
	return out, nil
}

// EnsureFolder creates the folder name unless it exists. name uses "/" between levels
// ("inkorg/processed"); the levels are joined with the server's hierarchy delimiter (Exchange "/",
// Dovecot often "."), and each missing level is created in turn. A folder that already exists,
// including one created meanwhile by someone else (ALREADYEXISTS, "already exists"), is fine.
func (c *Conn) EnsureFolder(name string) error {
	full, err := c.serverName(name)
	if err != nil {
		return err
	}
	if ok, err := c.folderExists(full); err != nil || ok {
		return err
	}
	parts := strings.Split(name, "/")
	for i := range parts {
		level := strings.Join(parts[:i+1], c.delim)
		var raw error
		err := c.guard(StageFolder, "CREATE", func() error {
			raw = c.c.Create(level, nil).Wait()
			return raw
		})
		if err == nil {
			continue
		}
		if ie, ok := isRefusal(raw); ok && (ie.Code == imap.ResponseCodeAlreadyExists || strings.Contains(strings.ToLower(ie.Text), "already exists")) {
			continue
		}
		if i < len(parts)-1 {
			// Some servers refuse to create a level that exists only implicitly; the last level
			// decides.
			if _, ok := isRefusal(raw); ok {
				continue
			}
		}
		return err
	}
	return nil
}

// folderExists asks LIST for exactly this name.
func (c *Conn) folderExists(full string) (bool, error) {
	var list []*imap.ListData
	if err := c.guard(StageFolder, "LIST", func() error {
		var err error
		list, err = c.c.List("", full, nil).Collect()
		return err
	}); err != nil {
		return false, err
	}
	for _, l := range list {
		if l.Mailbox == full || strings.EqualFold(l.Mailbox, full) && strings.EqualFold(full, "INBOX") {
			for _, a := range l.Attrs {
				if a == imap.MailboxAttrNonExistent || a == imap.MailboxAttrNoSelect {
					return false, nil
				}
			}
			return true, nil
		}
	}
	return false, nil
}

// serverName turns "a/b" into the server's spelling, asking for the hierarchy delimiter once.
func (c *Conn) serverName(name string) (string, error) {
	bad := func(why string) error {
		return &diag.Error{Stage: StageFolder, Kind: diag.KindConfig, Code: "folder name",
			Summary: fmt.Sprintf("the folder name %q %s", name, why), Remedy: "fix the folder name in the account's settings"}
	}
	if name == "" || strings.ContainsAny(name, "*%\r\n\"") {
		return "", bad("is empty or contains *, %, \" or a line break")
	}
	for _, p := range strings.Split(name, "/") {
		if p == "" {
			return "", bad("has an empty level")
		}
	}
	if !strings.Contains(name, "/") {
		return name, nil
	}
	if c.delim == "" {
		var list []*imap.ListData
		if err := c.guard(StageFolder, "LIST", func() error {
			var err error
			list, err = c.c.List("", "", nil).Collect()
			return err
		}); err != nil {
			return "", err
		}
		if len(list) == 0 || list[0].Delim == 0 {
			return "", bad("has levels, but the IMAP server has no folder hierarchy")
		}
		c.delim = string(list[0].Delim)
	}
	if c.delim == "/" {
		return name, nil
	}
	for _, p := range strings.Split(name, "/") {
		if strings.Contains(p, c.delim) {
			return "", bad(fmt.Sprintf("contains the server's hierarchy delimiter %q inside a level", c.delim))
		}
	}
	return strings.ReplaceAll(name, "/", c.delim), nil
}
