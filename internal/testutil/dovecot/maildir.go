package dovecot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// Deliver puts one message (raw RFC 5322 bytes, LF or CRLF line ends) into a folder of user's
// mailbox, creating the folder if needed. folder is an IMAP name with "/" as separator ("INBOX",
// "Processed", "Archive/2024"); "." is not allowed in it (Maildir++ uses it on disk).
func (s *Server) Deliver(user, folder string, raw []byte) {
	s.t.Helper()
	if err := s.deliver(user, folder, 1, func(int) []byte { return raw }); err != nil {
		s.t.Fatalf("dovecot: Deliver: %v", err)
	}
}

// DeliverN puts n messages, gen(0) … gen(n-1), into a folder as Deliver does; they get ascending
// UIDs in that order.
func (s *Server) DeliverN(user, folder string, n int, gen func(i int) []byte) {
	s.t.Helper()
	if err := s.deliver(user, folder, n, gen); err != nil {
		s.t.Fatalf("dovecot: DeliverN: %v", err)
	}
}

func (s *Server) deliver(user, folder string, n int, gen func(i int) []byte) error {
	dir, err := s.folderDir(user, folder)
	if err != nil {
		return err
	}
	tmp, newDir := filepath.Join(dir, "tmp"), filepath.Join(dir, "new")
	uid, gid := s.uidGID()
	pid := os.Getpid()
	for i := 0; i < n; i++ {
		raw := gen(i)
		// The name sorts in delivery order: Dovecot orders new files by the time in their name
		// (seconds, then M<microseconds>) when it assigns UIDs.
		t := s.base + s.seq.Add(1)
		name := fmt.Sprintf("%d.M%06dP%d.inkorg,S=%d,W=%d", t/1e6, t%1e6, pid, len(raw), vsize(raw))
		tp := filepath.Join(tmp, name)
		f, err := os.OpenFile(tp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
		_, werr := f.Write(raw)
		if werr == nil && s.cred != nil {
			werr = f.Chown(uid, gid)
		}
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr == nil {
			werr = os.Rename(tp, filepath.Join(newDir, name))
		}
		if werr != nil {
			os.Remove(tp)
			return fmt.Errorf("message %d: %w", i, werr)
		}
	}
	return nil
}

// vsize is the size with CRLF line ends (what IMAP's RFC822.SIZE reports).
func vsize(raw []byte) int {
	n := len(raw)
	for i, c := range raw {
		if c == '\n' && (i == 0 || raw[i-1] != '\r') {
			n++
		}
	}
	return n
}

// folderDir returns the Maildir of user's folder, creating it (owned by the run user) if needed.
func (s *Server) folderDir(user, folder string) (string, error) {
	if err := checkUser(user); err != nil {
		return "", err
	}
	user = strings.ToLower(user)
	key := user + "\x00" + folder
	s.mu.Lock()
	defer s.mu.Unlock()
	if d, ok := s.folders[key]; ok {
		return d, nil
	}
	rel, err := MaildirName(folder)
	if err != nil {
		return "", err
	}
	root := filepath.Join(s.mail, user)
	dir := filepath.Join(root, rel)
	for _, d := range []string{root, dir, filepath.Join(dir, "tmp"), filepath.Join(dir, "new"), filepath.Join(dir, "cur")} {
		if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return "", fmt.Errorf("create folder %q of %s: %w", folder, user, err)
		}
		if err := s.chown(d); err != nil {
			return "", err
		}
	}
	if rel != "." {
		mf := filepath.Join(dir, "maildirfolder")
		if _, err := os.Stat(mf); errors.Is(err, os.ErrNotExist) {
			if err := s.writeFile(mf, nil, 0o600); err != nil {
				return "", err
			}
		}
	}
	s.folders[key] = dir
	return dir, nil
}

// MaildirName maps an IMAP folder name (hierarchy separator "/") to its Maildir++ directory below
// the user's root: "INBOX" (any case) → ".", "Archive/2024" → ".Archive.2024". Non-ASCII names and
// "&" are written in modified UTF-7 as Dovecot does. Empty levels, "." and control characters are
// refused.
func MaildirName(folder string) (string, error) {
	if strings.EqualFold(folder, "INBOX") {
		return ".", nil
	}
	if folder == "" || !utf8.ValidString(folder) {
		return "", fmt.Errorf("bad folder name %q", folder)
	}
	var b strings.Builder
	for _, level := range strings.Split(folder, "/") {
		if level == "" {
			return "", fmt.Errorf("folder name %q has an empty level", folder)
		}
		for _, r := range level {
			if r < 0x20 || r == 0x7f || r == '.' || r == '\\' || r == '~' {
				return "", fmt.Errorf("folder name %q contains %q", folder, r)
			}
		}
		b.WriteByte('.')
		b.WriteString(encodeMUTF7(level))
	}
	if b.Len() > 255 {
		return "", fmt.Errorf("folder name %q is too long", folder)
	}
	return b.String(), nil
}

// encodeMUTF7 encodes s in IMAP's modified UTF-7 (RFC 3501 §5.1.3).
func encodeMUTF7(s string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,"
	var b strings.Builder
	var run []rune
	flush := func() {
		if len(run) == 0 {
			return
		}
		u := utf16.Encode(run)
		buf := make([]byte, 0, 2*len(u))
		for _, c := range u {
			buf = append(buf, byte(c>>8), byte(c))
		}
		b.WriteByte('&')
		var acc, bits uint
		for _, c := range buf {
			acc = acc<<8 | uint(c)
			bits += 8
			for bits >= 6 {
				bits -= 6
				b.WriteByte(alphabet[(acc>>bits)&63])
			}
		}
		if bits > 0 {
			b.WriteByte(alphabet[(acc<<(6-bits))&63])
		}
		b.WriteByte('-')
		run = run[:0]
	}
	for _, r := range s {
		switch {
		case r == '&':
			flush()
			b.WriteString("&-")
		case r >= 0x20 && r <= 0x7e:
			flush()
			b.WriteRune(r)
		default:
			run = append(run, r)
		}
	}
	flush()
	return b.String()
}

// Status is what doveadm mailbox status says about a folder.
type Status struct {
	Messages, Unseen, UIDNext, UIDValidity uint32
}

// Status asks Dovecot (doveadm mailbox status) about a folder; this also makes Dovecot take in
// messages delivered since it last looked.
func (s *Server) Status(user, folder string) Status {
	s.t.Helper()
	return doveadmJSON(s, "Status", ParseStatus, "mailbox", "status", "-u", strings.ToLower(user), "messages unseen uidnext uidvalidity", folder)
}

// Count is the number of messages in a folder.
func (s *Server) Count(user, folder string) int {
	s.t.Helper()
	return int(s.Status(user, folder).Messages)
}

// MessageIDs counts the Message-ID header values of a folder's messages (doveadm fetch): a value
// seen twice is a message the folder holds twice.
func (s *Server) MessageIDs(user, folder string) map[string]int {
	s.t.Helper()
	return doveadmJSON(s, "MessageIDs", ParseMessageIDs, "fetch", "-u", strings.ToLower(user), "hdr.message-id", "mailbox", folder)
}

// doveadmJSON runs a doveadm command with JSON output and parses what it prints; either failing
// fails the test (what names the call).
func doveadmJSON[T any](s *Server, what string, parse func([]byte) (T, error), args ...string) T {
	s.t.Helper()
	out, err := s.doveadm(context.Background(), append([]string{"-f", "json"}, args...)...)
	if err != nil {
		s.t.Fatalf("dovecot: %s: %v", what, err)
	}
	v, err := parse([]byte(out))
	if err != nil {
		s.t.Fatalf("dovecot: %s: %v", what, err)
	}
	return v
}

// ParseMessageIDs parses doveadm fetch's JSON output of hdr.message-id, e.g.
// [{"hdr.message-id":"<a@b>"},{"hdr.message-id":"<c@d>"}], into counts by value (angle brackets and
// blanks removed).
func ParseMessageIDs(out []byte) (map[string]int, error) {
	var rows []map[string]string
	if err := json.Unmarshal(out, &rows); err != nil {
		return nil, fmt.Errorf("doveadm fetch: %w", err)
	}
	ids := map[string]int{}
	for i, r := range rows {
		v, ok := r["hdr.message-id"]
		if !ok {
			return nil, fmt.Errorf("doveadm fetch: row %d has no hdr.message-id", i)
		}
		ids[strings.Trim(strings.TrimSpace(v), "<>")]++
	}
	return ids, nil
}

// ParseStatus parses doveadm's JSON output for one folder, e.g.
// [{"mailbox":"INBOX","messages":"3","uidnext":"4","uidvalidity":"1700000000","unseen":"1"}];
// the four numbers must all be there.
func ParseStatus(out []byte) (Status, error) {
	var rows []map[string]string
	if err := json.Unmarshal(out, &rows); err != nil {
		return Status{}, fmt.Errorf("doveadm status: %w", err)
	}
	if len(rows) != 1 {
		return Status{}, fmt.Errorf("doveadm status: %d rows, want 1", len(rows))
	}
	var st Status
	for _, f := range []struct {
		name string
		dst  *uint32
	}{{"messages", &st.Messages}, {"unseen", &st.Unseen}, {"uidnext", &st.UIDNext}, {"uidvalidity", &st.UIDValidity}} {
		v, ok := rows[0][f.name]
		if !ok {
			return Status{}, fmt.Errorf("doveadm status: no %s", f.name)
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return Status{}, fmt.Errorf("doveadm status: %s: %w", f.name, err)
		}
		*f.dst = uint32(n)
	}
	return st, nil
}

// Doveadm runs doveadm against this instance as the run user and returns its standard output, e.g.
// s.Doveadm("mailbox", "update", "-u", user, "--uid-validity", "42", "INBOX").
func (s *Server) Doveadm(args ...string) string {
	s.t.Helper()
	out, err := s.doveadm(context.Background(), args...)
	if err != nil {
		s.t.Fatalf("dovecot: %v", err)
	}
	return out
}

func (s *Server) doveadm(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.bin.Doveadm, append([]string{"-c", s.confPath()}, args...)...)
	cmd.Dir = s.dir
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + s.dir}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGKILL}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("doveadm %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}
