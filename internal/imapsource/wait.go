package imapsource

import (
	"context"
	"io"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

// onMailbox is go-imap's handler for unilateral mailbox data (EXISTS, FLAGS, PERMANENTFLAGS). It runs
// on go-imap's reader goroutine, so it only records and never blocks.
func (c *Conn) onMailbox(d *imapclient.UnilateralDataMailbox) {
	if d.NumMessages == nil {
		return
	}
	c.mu.Lock()
	if *d.NumMessages > c.count {
		c.newMail = true
	}
	c.count = *d.NumMessages
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// onExpunge is go-imap's handler for unilateral EXPUNGE (including those of our own UID MOVE).
func (c *Conn) onExpunge(uint32) { c.expunged(1) }

func (c *Conn) expunged(n uint32) {
	c.mu.Lock()
	c.count -= min(n, c.count)
	c.mu.Unlock()
}

func (c *Conn) peekNewMail() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.newMail
}

func (c *Conn) takeNewMail() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.newMail
	c.newMail = false
	return v
}

// Wait waits for new mail in the selected mailbox, at most max, and reports whether new mail may
// have arrived: the server announced more messages (EXISTS) than at SELECT or than when Wait last
// reported true, including announcements that came with earlier commands. A true may be a false
// alarm (mail that was moved away again); a false means no EXISTS raised the count.
//
// With IDLE (HasIDLE), Wait idles until an EXISTS raises the count, max passes or ctx ends, then
// sends DONE; go-imap restarts a long IDLE every 28 minutes by itself. Without IDLE, it sleeps and
// polls with NOOP every Config.PollInterval. When ctx ends, Wait returns ctx.Err() (with true if
// new mail came in meanwhile). A connection that drops while waiting returns a transient
// *diag.Error at stage "idle" at once.
func (c *Conn) Wait(ctx context.Context, max time.Duration) (bool, error) {
	if c.takeNewMail() {
		return true, nil
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if max <= 0 {
		err := c.guard(StageIdle, "NOOP", func() error { return c.c.Noop().Wait() })
		return c.takeNewMail(), err
	}
	if c.HasIDLE() {
		return c.idle(ctx, max)
	}
	return c.poll(ctx, max)
}

func (c *Conn) idle(ctx context.Context, max time.Duration) (bool, error) {
	var cmd *imapclient.IdleCommand
	if err := c.guard(StageIdle, "IDLE", func() error {
		var err error
		cmd, err = c.c.Idle()
		return err
	}); err != nil {
		return false, err
	}
	timer := time.NewTimer(max)
	defer timer.Stop()
	var ctxErr error
wait:
	for !c.peekNewMail() {
		select {
		case <-c.wake:
		case <-timer.C:
			break wait
		case <-ctx.Done():
			ctxErr = ctx.Err()
			break wait
		case <-c.c.Closed():
			cmd.Close()
			err := cmd.Wait()
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			return c.takeNewMail(), c.brokenError(StageIdle, err)
		}
	}
	if err := c.guard(StageIdle, "DONE", func() error {
		if err := cmd.Close(); err != nil {
			return err
		}
		return cmd.Wait()
	}); err != nil {
		return c.takeNewMail(), err
	}
	return c.takeNewMail(), ctxErr
}

func (c *Conn) poll(ctx context.Context, max time.Duration) (bool, error) {
	deadline := time.Now().Add(max)
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for {
		if d := min(c.cfg.PollInterval, time.Until(deadline)); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return c.takeNewMail(), ctx.Err()
			case <-c.c.Closed():
				return c.takeNewMail(), c.brokenError(StageIdle, io.ErrUnexpectedEOF)
			}
		}
		if err := c.guard(StageIdle, "NOOP", func() error { return c.c.Noop().Wait() }); err != nil {
			return c.takeNewMail(), err
		}
		if c.takeNewMail() {
			return true, nil
		}
		if !time.Now().Before(deadline) {
			return false, nil
		}
	}
}
