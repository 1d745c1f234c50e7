package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"os"
	"path/filepath"
	"strings"
	"time"

	"inkorg/internal/compose"
	"inkorg/internal/entra"
	"inkorg/internal/outbox"
	"inkorg/internal/store"
)

const sendUsage = `usage: inkorg send (--as USER | --webshop) --to ADDRESS [--to …] [--cc …] [--bcc …] --subject TEXT
                   [--body-file P | --body TEXT] [--html-file P] [--attach P]… [--cloud FILE] [--db …]

Sends one message the way the ERP's POST /api/v1/mail does: the sender's effective settings decide
(the webshop uses the user WEBSHOP's), the message is queued in the outbox, and inkorg sends it now and
prints the outcome: sent, failed with the reason and the remedy, or unknown. Under the e-mail method
outlook-client nothing is sent: the draft (.eml, X-Unsent: 1) is written to standard output.
Exit 0 when sent, 1 otherwise.

Example:
  inkorg send --webshop --to kund@example.com --subject "Order 4711" --body-file order.txt --attach order.pdf
  inkorg send --as ANNA --to erik@contoso.com --subject Test --body Hello --cloud emulator.json
`

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func cmdSend(e *env, args []string) error {
	f := newFlags(e, "send", sendUsage)
	db := dbFlag(f)
	cloudFile := cloudFlag(f)
	as := f.String("as", "", "send as this user")
	webshop := f.Bool("webshop", false, "send as the webshop (the user WEBSHOP's settings)")
	var to, cc, bcc, attach listFlag
	f.Var(&to, "to", "a recipient (repeat for more)")
	f.Var(&cc, "cc", "a Cc recipient (repeat for more)")
	f.Var(&bcc, "bcc", "a Bcc recipient (repeat for more)")
	f.Var(&attach, "attach", "a file to attach (repeat for more)")
	subject := f.String("subject", "", "the subject")
	body := f.String("body", "", "the text body")
	bodyFile := f.String("body-file", "", "a file holding the text body (- for standard input)")
	htmlFile := f.String("html-file", "", "a file holding an HTML body")
	replyTo := f.String("reply-to", "", "a Reply-To address")
	timeout := f.Duration("timeout", 5*time.Minute, "how long to wait for the outcome")
	if err := f.parse(args); err != nil {
		return err
	}
	if (*as == "") == !*webshop {
		return f.usageErr("give exactly one of --as USER and --webshop")
	}
	if len(to)+len(cc)+len(bcc) == 0 {
		return f.usageErr("give at least one --to")
	}
	if *body != "" && *bodyFile != "" {
		return f.usageErr("give --body or --body-file, not both")
	}
	req := outbox.Request{AsUser: *as, AsWebshop: *webshop, To: to, Cc: cc, Bcc: bcc, Subject: *subject, Text: *body}
	if *replyTo != "" {
		req.ReplyTo = []string{*replyTo}
	}
	if *bodyFile != "" {
		b, err := readInput(e, *bodyFile)
		if err != nil {
			return err
		}
		req.Text = string(b)
	}
	if *htmlFile != "" {
		b, err := os.ReadFile(*htmlFile)
		if err != nil {
			return fmt.Errorf("--html-file: %w", err)
		}
		req.HTML = string(b)
	}
	for _, p := range attach {
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("--attach: %w", err)
		}
		req.Attachments = append(req.Attachments, compose.Attachment{Name: filepath.Base(p), ContentType: mime.TypeByExtension(filepath.Ext(p)), Data: b})
	}
	cl, err := loadCloud(e, *cloudFile)
	if err != nil {
		return err
	}
	st, err := openStore(e, *db, true)
	if err != nil {
		return err
	}
	defer st.Close()
	log := slog.New(slog.DiscardHandler)
	ob := outbox.New(outbox.Config{Store: st, Tokens: entra.New(entra.Config{Cloud: cl, Logger: log, Clock: e.now}), Cloud: cl, Logger: log,
		Clock: e.now, PollInterval: 50 * time.Millisecond})
	res, err := ob.Submit(e.ctx, req)
	if re, ok := err.(*outbox.RequestError); ok {
		fmt.Fprintf(e.stderr, "inkorg: %s\n", re.Error())
		return problemsError{}
	}
	if err != nil {
		return err
	}
	if res.Draft != nil {
		_, err := e.stdout.Write(res.Draft)
		return err
	}
	fmt.Fprintf(e.stdout, "Queued %s (%s).\n", res.ID, res.Message.MessageID)
	if err := ob.Start(e.ctx); err != nil {
		return err
	}
	defer ob.Close()
	ctx, cancel := context.WithTimeout(e.ctx, *timeout)
	defer cancel()
	m, err := ob.Wait(ctx, res.ID)
	if err != nil {
		fmt.Fprintf(e.stdout, "Still %s after %s (attempt %d); the message stays queued and \"inkorg serve\" sends it.\n", m.State, *timeout, m.Attempts)
		printReason(e, m)
		return problemsError{}
	}
	switch m.State {
	case store.OutSent:
		fmt.Fprintf(e.stdout, "Sent from %s to %s by %s (attempt %d).\n", m.From, strings.Join(m.Recipients, ", "), m.Transport, m.Attempts)
		return nil
	case store.OutUnknown:
		fmt.Fprintf(e.stdout, "Unknown: the connection broke while the server had the message; it may have arrived. Not resent.\n")
	default:
		fmt.Fprintf(e.stdout, "Failed after %d attempt(s).\n", m.Attempts)
	}
	printReason(e, m)
	return problemsError{}
}

func printReason(e *env, m store.Outgoing) {
	r := m.LastError
	if r == nil {
		return
	}
	fmt.Fprintf(e.stdout, "  ✗ %s: %s", r.Stage, r.Summary)
	if r.Code != "" {
		fmt.Fprintf(e.stdout, " [%s]", r.Code)
	}
	fmt.Fprintln(e.stdout)
	if r.Server != "" {
		fmt.Fprintf(e.stdout, "    server said: %s\n", r.Server)
	}
	if r.Remedy != "" {
		fmt.Fprintf(e.stdout, "    what to do: %s\n", r.Remedy)
	}
	for _, a := range r.Actions {
		fmt.Fprintf(e.stdout, "      %s\n", a)
	}
}

// readInput reads a file, or standard input for "-".
func readInput(e *env, p string) ([]byte, error) {
	var b []byte
	var err error
	if p == "-" {
		b, err = io.ReadAll(e.stdin)
	} else {
		b, err = os.ReadFile(p)
	}
	if err != nil {
		return nil, fmt.Errorf("--body-file: %w", err)
	}
	return b, nil
}
