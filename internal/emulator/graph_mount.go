package emulator

import (
	"fmt"
	"net/http"
	"sync"
	"time"

	"inkorg/internal/emulator/graph"
)

// graphFrontEnd is the seam between the assembly and the Graph front end (served under /v1.0 on the
// HTTPS listener; faults set through the admin API).
type graphFrontEnd interface {
	http.Handler
	setFaults(GraphFaultsJSON)
	throttleMs() int
}

// GraphFaultsJSON are the Graph front end's faults (POST /_emulator/faults, section "graph").
type GraphFaultsJSON struct {
	ThrottleMs        int  `json:"throttleMs"`                  // answer 429 ApplicationThrottled (Retry-After) for this long
	ExpireDeltaTokens bool `json:"expireDeltaTokens,omitempty"` // forget every delta/skip token now (410 SyncStateNotFound next)
}

// graphMount adapts package graph's Handler to the assembly's seam (admin faults included).
type graphMount struct {
	h     *graph.Handler
	clock func() time.Time

	mu    sync.Mutex
	until time.Time
}

func newGraphMount(e *Emulator) (*graphMount, error) {
	h, err := graph.New(graph.Config{Store: e.store, Authorizer: e.auth, Clock: e.clock, Logger: e.cfg.Logger.With("component", "graph")})
	if err != nil {
		return nil, fmt.Errorf("emulator: %w", err)
	}
	return &graphMount{h: h, clock: e.clock}, nil
}

func (g *graphMount) ServeHTTP(w http.ResponseWriter, r *http.Request) { g.h.ServeHTTP(w, r) }

func (g *graphMount) setFaults(f GraphFaultsJSON) {
	d := time.Duration(f.ThrottleMs) * time.Millisecond
	g.h.SetFaults(graph.Faults{Throttle: d})
	if f.ExpireDeltaTokens {
		g.h.ExpireSyncStates()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.until = time.Time{}
	if d > 0 {
		g.until = g.clock().Add(d)
	}
}

func (g *graphMount) throttleMs() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if d := g.until.Sub(g.clock()); d > 0 {
		return int(d / time.Millisecond)
	}
	return 0
}
