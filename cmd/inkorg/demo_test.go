package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestDemo runs "inkorg demo" as a user would, checks that it seeds settings that validate against a
// running emulator, and stops it with Ctrl-C.
func TestDemo(t *testing.T) {
	c := newCLI(t)
	dir := filepath.Join(c.dir, "demo")
	cmd := exec.Command(binary, "demo", "--dir", dir, "--addr", "127.0.0.1:0")
	cmd.Env = c.env
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	ready := make(chan string, 1)
	go func() {
		var all strings.Builder
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			all.WriteString(sc.Text() + "\n")
			if strings.HasPrefix(sc.Text(), "Press Ctrl-C") {
				ready <- all.String()
			}
		}
	}()
	var out string
	select {
	case out = <-ready:
	case <-time.After(60 * time.Second):
		t.Fatalf("demo not ready after 60 s; stderr:\n%s", stderr.String())
	}
	for _, want := range []string{"validated ✓", "4 incoming accounts", "Exchange IMAP  127.0.0.1:", "7 of 7 sample messages stored", "Admin UI       http://127.0.0.1:"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	db := filepath.Join(dir, "inkorg.db")
	c.want(0, split("settings validate --db "+db), "The settings are complete and valid.")
	c.want(0, split("settings incoming list --db "+db), "m2m@contoso.example", "monitor-to-monitor", "supplier-invoice")
	c.want(0, split("settings webshop show --db "+db), "webshop@contoso.example")

	// The settings are the emulator's tenant and app, and the secret shown nowhere.
	var info struct {
		TenantID string `json:"tenantId"`
		Apps     []struct {
			ClientID, ClientSecret string
			PublicClient           bool
		} `json:"apps"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "emulator", "emulator.json"))
	if err != nil || json.Unmarshal(b, &info) != nil {
		t.Fatalf("emulator.json: %v", err)
	}
	r := c.want(0, split("settings system show --db "+db), info.TenantID, info.Apps[0].ClientID)
	if strings.Contains(out+r.stdout+stderr.String(), info.Apps[0].ClientSecret) {
		t.Error("the demo printed the client secret")
	}

	// The ERP's API lists the Monitor-to-Monitor documents with their kinds.
	apiURL := regexp.MustCompile(`ERP API\s+(http://\S+)\s+\(token: (\S+)\)`).FindStringSubmatch(out)
	if apiURL == nil {
		t.Fatalf("no API line:\n%s", out)
	}
	req, _ := http.NewRequest("GET", apiURL[1]+"/messages?type=monitor-to-monitor", nil)
	req.Header.Set("Authorization", "Bearer "+apiURL[2])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var page struct {
		Messages []struct {
			Subject string
			M2M     struct{ Kind string }
		}
	}
	json.NewDecoder(resp.Body).Decode(&page)
	resp.Body.Close()
	kinds := map[string]bool{}
	for _, m := range page.Messages {
		kinds[m.M2M.Kind] = true
	}
	if resp.StatusCode != 200 || len(page.Messages) != 4 || !kinds["purchase-order"] || !kinds["invoice"] || !kinds["order-confirmation"] || !kinds["dispatch-advice"] {
		t.Errorf("API: %d %+v", resp.StatusCode, page)
	}

	cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("demo did not stop cleanly: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("demo did not stop within 30 s of Ctrl-C")
	}
}

// lockedBuffer is a bytes.Buffer safe to read while a process writes to it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
