package cpuuse

import (
	"testing"
	"time"
)

func TestMachine(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Duration
	}{
		{"cpu  100 2 30 9999 50 1 2 3 0 0\ncpu0 1 2 3\n", 138 * 10 * time.Millisecond}, // user nice system irq softirq steal
		{"cpu 1 1 1\n", 3 * 10 * time.Millisecond},
		{"intr 1 2 3\n", 0},
		{"", 0},
	} {
		if got := machine(c.in); got != c.want {
			t.Errorf("machine(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestNowAdvances(t *testing.T) {
	a, err := Now()
	if err != nil {
		t.Fatal(err)
	}
	for x, end := 0, time.Now().Add(20*time.Millisecond); time.Now().Before(end); x++ { // burn some CPU
		_ = x * x
	}
	b, err := Now()
	if err != nil {
		t.Fatal(err)
	}
	if b.Process <= a.Process || !b.At.After(a.At) || b.Machine < a.Machine {
		t.Errorf("no CPU used between %+v and %+v", a, b)
	}
}
