package outbox

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
)

// setGraphThrottle makes the emulator's Graph answer 429 (Retry-After) for ms milliseconds.
func setGraphThrottle(t *testing.T, w *world, ms int) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"graph": map[string]int{"throttleMs": ms}})
	resp, err := w.emu.HTTPClient().Post(w.emu.Info().Admin+"/faults", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
		t.Fatalf("faults: %s", resp.Status)
	}
}
