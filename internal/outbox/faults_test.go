package outbox

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"inkorg/internal/settings"
	"inkorg/internal/store"
)

// setFaults sets emulator faults (a POST /_emulator/faults body).
func setFaults(t *testing.T, w *world, faults map[string]any) {
	t.Helper()
	body, _ := json.Marshal(faults)
	resp, err := w.emu.HTTPClient().Post(w.emu.Info().Admin+"/faults", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("faults: %s", resp.Status)
	}
}

// setGraphThrottle makes the emulator's Graph answer 429 (Retry-After) for ms milliseconds.
func setGraphThrottle(t *testing.T, w *world, ms int) {
	t.Helper()
	setFaults(t, w, map[string]any{"graph": map[string]int{"throttleMs": ms}})
}

// TestBrokenSubmissions: a connection that breaks before the message is handed over is retried by
// itself and the message arrives once; one that breaks after the server took the whole message,
// before its answer, leaves the message unknown — never resent, since it did arrive.
func TestBrokenSubmissions(t *testing.T) {
	for _, tc := range []struct {
		fault    string
		state    store.OutgoingState
		attempts int
	}{
		{"dropAtMail", store.OutSent, 2},
		{"dropAfterData", store.OutUnknown, 1},
	} {
		t.Run(tc.fault, func(t *testing.T) {
			w := startEmulator(t, nil)
			w.configure(t, settings.SendSMTP)
			setFaults(t, w, map[string]any{"smtp": map[string]bool{tc.fault: true}})
			o := w.outbox(t, nil)
			res, err := o.Submit(context.Background(), Request{AsWebshop: true, To: []string{"anna@contoso.example"}, Subject: "Order 7", Text: "Thanks."})
			must(t, err)
			m := wait(t, o, res.ID)
			if m.State != tc.state || m.Attempts != tc.attempts || m.LastError == nil || m.LastError.Code != "network" {
				t.Fatalf("state %s after %d attempts (%+v); want %s after %d", m.State, m.Attempts, m.LastError, tc.state, tc.attempts)
			}
			if tc.state == store.OutUnknown && !strings.Contains(m.LastError.Summary+m.LastError.Remedy, "may have accepted") {
				t.Errorf("the reason does not say the server may have accepted it: %+v", m.LastError)
			}
			time.Sleep(100 * time.Millisecond) // several sender rounds: nothing more is sent
			if ms, _ := w.emu.Store().Messages("anna@contoso.example", "INBOX"); len(ms) != 1 {
				t.Errorf("anna got %d copies, want 1", len(ms))
			}
			if m, _ := w.st.Outgoing(context.Background(), res.ID); m.State != tc.state {
				t.Errorf("later: %s", m.State)
			}
		})
	}
}
