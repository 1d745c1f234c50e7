// Package webhook is the ERP's push side of incoming mail: a dispatcher that POSTs each stored message
// to the webhook URL of its incoming type, signed, with retries, at least once.
//
// The store queues a delivery in the same transaction that stores the message (store.Webhooks), so a
// crash never loses one. The dispatcher takes the due deliveries, POSTs the message's JSON (the same
// shape as GET /api/v1/messages/{id}, api.Message) with these headers:
//
//	Content-Type: application/json
//	Inkorg-Id: m_…                  the message id
//	Idempotency-Key: m_…            the message id again: the same on every attempt
//	Inkorg-Timestamp: 1767261600     unix seconds of this attempt
//	Inkorg-Signature: v1=<hex>      HMAC-SHA256 keyed by the webhook's secret over timestamp + "." + body
//
// and counts any 2xx answer as delivered. Anything else (another status, a timeout, a refused
// connection, a redirect) is retried with exponential backoff and jitter (by default 30 s doubling up
// to 1 h), never sooner than a 429's or 503's Retry-After; the error is stored with the delivery. After
// MaxAttempts attempts the delivery is given up: it stays undelivered in the store with "gave up after
// N attempts: …" as its last error, never dropped silently.
//
// The ERP verifies a delivery with Verify (or its few lines in any language, see Verify) and
// deduplicates by the Idempotency-Key. Deliveries of different messages may arrive in any order.
package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"inkorg/internal/api"
	"inkorg/internal/settings"
	"inkorg/internal/store"
)

// Config configures the Dispatcher.
type Config struct {
	Store  store.Store
	Client *http.Client     // nil: a plain client; redirects are never followed (a POST must not turn into a GET)
	Logger *slog.Logger     // nil: discard
	Clock  func() time.Time // nil: time.Now
	// Poll is how often the store is asked for due deliveries (default 1 s); Notify wakes the
	// dispatcher at once.
	Poll time.Duration
	// MaxAttempts is how many attempts a delivery gets before it is given up (default 20: with the
	// default backoff, about 13 hours of trying).
	MaxAttempts int
	// Concurrency bounds the deliveries in flight (default 4).
	Concurrency int
	// Timeout bounds one attempt, the answer included (default 30 s).
	Timeout time.Duration
	// MinBackoff and MaxBackoff bound the wait before a retry (defaults 30 s and 1 h).
	MinBackoff, MaxBackoff time.Duration
}

func (c *Config) defaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Poll <= 0 {
		c.Poll = time.Second
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 20
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 4
	}
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = 30 * time.Second
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = time.Hour
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = c.MinBackoff
	}
	client := http.Client{}
	if c.Client != nil {
		client = *c.Client
	}
	if client.CheckRedirect == nil {
		client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	c.Client = &client
}

// Never is the next attempt of a delivery that has been given up.
func Never() time.Time { return time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC) }

// maxRetryAfter caps how long a receiver's Retry-After may postpone a delivery.
const maxRetryAfter = 24 * time.Hour

// Dispatcher delivers the due deliveries; New → Start → Close.
type Dispatcher struct {
	cfg  Config
	wake chan struct{}

	mu      sync.Mutex
	started bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// New makes a Dispatcher; it does nothing until Start.
func New(cfg Config) *Dispatcher {
	cfg.defaults()
	return &Dispatcher{cfg: cfg, wake: make(chan struct{}, 1)}
}

// Start runs the dispatcher until ctx ends or Close.
func (d *Dispatcher) Start(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.started {
		return errors.New("webhook: dispatcher already started")
	}
	if d.cfg.Store == nil {
		return errors.New("webhook: no store")
	}
	d.started = true
	ctx, d.cancel = context.WithCancel(ctx)
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.run(ctx)
	}()
	return nil
}

// Close stops the dispatcher and waits for it. Attempts in flight are cancelled and not counted: their
// deliveries are still due at the next Start.
func (d *Dispatcher) Close() error {
	d.mu.Lock()
	cancel := d.cancel
	d.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	d.wg.Wait()
	return nil
}

// Notify tells the dispatcher that deliveries may be due (a batch was just committed), so it does not
// wait for the next poll.
func (d *Dispatcher) Notify() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

type key struct {
	message string
	typ     settings.IncomingType
}

func (d *Dispatcher) run(ctx context.Context) {
	inflight := map[key]bool{}
	done := make(chan key)
	tick := time.NewTicker(d.cfg.Poll)
	defer tick.Stop()
	for {
		if free := d.cfg.Concurrency - len(inflight); free > 0 && ctx.Err() == nil {
			d.fill(ctx, inflight, free, done)
		}
		select {
		case <-ctx.Done():
			for len(inflight) > 0 {
				delete(inflight, <-done)
			}
			return
		case k := <-done:
			delete(inflight, k)
		case <-d.wake:
		case <-tick.C:
		}
	}
}

// fill claims up to free due deliveries and starts them. The claim (store.ClaimDeliveries) lasts one
// attempt's Timeout and a margin: another inkorg process on the same database does not deliver them
// meanwhile, and if this one dies they are due again when it ends.
func (d *Dispatcher) fill(ctx context.Context, inflight map[key]bool, free int, done chan<- key) {
	if free <= 0 {
		return
	}
	now := d.cfg.Clock()
	due, err := d.cfg.Store.ClaimDeliveries(ctx, now, now.Add(d.cfg.Timeout+15*time.Second), free)
	if err != nil {
		if ctx.Err() == nil {
			d.cfg.Logger.Error("webhook: read due deliveries", "err", err)
		}
		return
	}
	var hooks map[settings.IncomingType]store.Webhook
	if len(due) > 0 {
		list, err := d.cfg.Store.Webhooks(ctx)
		if err != nil {
			if ctx.Err() == nil {
				d.cfg.Logger.Error("webhook: read webhooks", "err", err)
			}
			for _, dl := range due {
				d.giveBack(ctx, dl)
			}
			return
		}
		hooks = map[settings.IncomingType]store.Webhook{}
		for _, w := range list {
			hooks[w.Type] = w
		}
	}
	for _, dl := range due {
		k := key{dl.MessageID, dl.Type}
		if inflight[k] || free == 0 {
			// Due again already (an attempt that just failed, whose goroutine has not reported
			// back yet): not started twice, and given back rather than held until the claim ends.
			d.giveBack(ctx, dl)
			continue
		}
		inflight[k] = true
		free--
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			d.attempt(ctx, dl, hooks[dl.Type])
			done <- k
		}()
	}
}

// giveBack returns a claimed delivery uncounted (see store.Webhooks.UnclaimDelivery), also while
// shutting down.
func (d *Dispatcher) giveBack(ctx context.Context, dl store.Delivery) {
	if err := d.cfg.Store.UnclaimDelivery(context.WithoutCancel(ctx), dl); err != nil {
		d.cfg.Logger.Error("webhook: give back delivery", "message", dl.MessageID, "type", string(dl.Type), "err", err)
	}
}

// attempt makes one attempt at a delivery and records its outcome.
func (d *Dispatcher) attempt(ctx context.Context, dl store.Delivery, hook store.Webhook) {
	log := d.cfg.Logger.With("message", dl.MessageID, "type", string(dl.Type), "attempt", dl.Attempts+1)
	if hook.URL == "" {
		// The webhook was removed: keep the delivery, look again later, never give it up for this.
		d.record(ctx, log, dl, false, d.cfg.Clock().Add(d.cfg.MaxBackoff),
			fmt.Sprintf("no webhook is set for the type %s; set one with \"inkorg webhook set --type %s\"", dl.Type, dl.Type))
		return
	}
	if err := CheckURL(hook.URL); err != nil {
		d.fail(ctx, log, dl, 0, err.Error())
		return
	}
	if !hook.Secret.IsSet() {
		d.fail(ctx, log, dl, 0, fmt.Sprintf("the webhook for %s has no signing secret; set one with \"inkorg webhook set --type %s --secret-file FILE\"", dl.Type, dl.Type))
		return
	}
	m, err := d.cfg.Store.Message(ctx, dl.MessageID)
	if errors.Is(err, store.ErrNotFound) {
		d.record(ctx, log, dl, false, Never(), "gave up: the message no longer exists")
		return
	}
	if err != nil {
		if ctx.Err() == nil {
			d.fail(ctx, log, dl, 0, "read the message: "+err.Error())
		} else {
			d.giveBack(ctx, dl)
		}
		return
	}
	body, err := json.Marshal(api.MessageOf(m))
	if err != nil {
		d.fail(ctx, log, dl, 0, "encode the message: "+err.Error())
		return
	}
	retryAfter, errText := d.post(ctx, hook, dl.MessageID, body)
	if ctx.Err() != nil {
		// Shutting down mid-request: the attempt does not count, and the delivery is given back
		// (due again for the next start, or for another process, not only when the claim ends).
		d.giveBack(ctx, dl)
		return
	}
	if errText == "" {
		log.Info("webhook delivered", "url", redact(hook.URL))
		d.record(ctx, log, dl, true, time.Time{}, "")
		return
	}
	d.fail(ctx, log, dl, retryAfter, errText)
}

// post sends one signed request; errText is "" on a 2xx answer.
func (d *Dispatcher) post(ctx context.Context, hook store.Webhook, id string, body []byte) (retryAfter time.Duration, errText string) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	where := redact(hook.URL)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, hook.URL, bytes.NewReader(body))
	if err != nil {
		return 0, "POST " + where + ": " + err.Error()
	}
	ts := d.cfg.Clock().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "inkorg-webhook/1")
	req.Header.Set(HeaderID, id)
	req.Header.Set(HeaderIdempotencyKey, id)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(hook.Secret.Reveal(), ts, body))
	resp, err := d.cfg.Client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return 0, fmt.Sprintf("POST %s: no answer within %s", where, d.cfg.Timeout)
		}
		return 0, "POST " + where + ": " + err.Error()
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return 0, ""
	}
	errText = fmt.Sprintf("POST %s: HTTP %s", where, resp.Status)
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		errText += "; redirects are not followed: set the webhook URL to the final address"
		if loc := resp.Header.Get("Location"); loc != "" {
			errText += " (" + redact(loc) + ")"
		}
	}
	if s := printable(snippet); s != "" {
		errText += ": " + s
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), d.cfg.Clock())
	}
	return retryAfter, errText
}

// fail records a failed attempt: the next one after the backoff (and no sooner than retryAfter), or
// none after MaxAttempts.
func (d *Dispatcher) fail(ctx context.Context, log *slog.Logger, dl store.Delivery, retryAfter time.Duration, errText string) {
	n := dl.Attempts + 1
	if n >= d.cfg.MaxAttempts {
		errText = fmt.Sprintf("gave up after %d attempts: %s", n, errText)
		log.Error("webhook delivery given up", "err", errText)
		d.record(ctx, log, dl, false, Never(), errText)
		return
	}
	wait := max(d.Backoff(n), min(retryAfter, maxRetryAfter))
	log.Warn("webhook attempt failed", "err", errText, "retry_in", wait.Round(time.Millisecond))
	d.record(ctx, log, dl, false, d.cfg.Clock().Add(wait), errText)
}

func (d *Dispatcher) record(ctx context.Context, log *slog.Logger, dl store.Delivery, ok bool, next time.Time, errText string) {
	if err := d.cfg.Store.DeliveryDone(ctx, dl, ok, next, errText); err != nil && ctx.Err() == nil {
		log.Error("webhook: record delivery", "err", err)
	}
}

// Backoff is the wait before attempt n+1 after n failed attempts: MinBackoff doubling each time up to
// MaxBackoff, with ±10 % jitter so that many deliveries failing together do not retry together.
func (d *Dispatcher) Backoff(n int) time.Duration {
	w := d.cfg.MinBackoff
	for i := 1; i < n && w < d.cfg.MaxBackoff; i++ {
		w *= 2
	}
	w = min(w, d.cfg.MaxBackoff)
	if j := int64(w / 5); j > 0 {
		w += time.Duration(rand.Int64N(j)) - w/10
	}
	return w
}

// parseRetryAfter reads a Retry-After value: seconds, or an HTTP date; 0 when absent or unreadable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s < 0 {
			return 0
		}
		return min(time.Duration(min(s, int64(maxRetryAfter/time.Second)))*time.Second, maxRetryAfter)
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), maxRetryAfter)
	}
	return 0
}

// CheckURL refuses a webhook URL inkorg will not POST to: it must be https, or http to this machine
// only (127.0.0.1, ::1, localhost), without user:password (the secret signs; credentials in a URL end
// up in logs) and without a #fragment.
func CheckURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("the webhook URL %q does not parse: %w", clip(s), err)
	}
	if u.Host == "" || u.Hostname() == "" {
		return fmt.Errorf("the webhook URL %q has no host; write it as https://erp.example.com/inkorg/webhook", clip(s))
	}
	switch u.Scheme {
	case "https":
	case "http":
		if h := u.Hostname(); h != "127.0.0.1" && h != "::1" && !strings.EqualFold(h, "localhost") {
			return fmt.Errorf("the webhook URL %s uses http: use https (plain http is allowed only to 127.0.0.1 or localhost, on this machine)", redact(s))
		}
	default:
		return fmt.Errorf("the webhook URL %q must start with https://", clip(s))
	}
	if u.User != nil {
		return fmt.Errorf("the webhook URL %s holds a user name or password: remove it; the receiver checks the Inkorg-Signature instead", redact(s))
	}
	if u.Fragment != "" || strings.Contains(s, "#") {
		return fmt.Errorf("the webhook URL %s has a #fragment, which is never sent: remove it", redact(s))
	}
	return nil
}

// redact is a URL without its user info and query, for logs and stored errors (a query may hold a key).
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(an unreadable URL)"
	}
	r := u.Scheme + "://" + u.Host + u.EscapedPath()
	if u.RawQuery != "" {
		r += "?…"
	}
	return r
}

// printable is a receiver's answer made safe to store: valid UTF-8 on one line.
func printable(b []byte) string {
	s := strings.ToValidUTF8(string(b), "?")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if len(b) == 200 && utf8.ValidString(s) {
		s += "…"
	}
	return s
}
