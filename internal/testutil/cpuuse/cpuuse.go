// Package cpuuse samples CPU time for the benchmarks: this process's (getrusage) and the whole
// machine's (/proc/stat, every process: a server under test included), so that a benchmark can say
// how much CPU a run took and not only how long, which on a shared machine is the steadier figure.
package cpuuse

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Sample is the CPU time used up to a moment.
type Sample struct {
	Process time.Duration // this process, user and system
	Machine time.Duration // all processes (0 where /proc/stat cannot be read)
	At      time.Time
}

// Now samples the CPU time used so far. It fails only when getrusage does.
func Now() (Sample, error) {
	s := Sample{At: time.Now()}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return s, fmt.Errorf("cpuuse: getrusage: %w", err)
	}
	s.Process = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		s.Machine = machine(string(b))
	}
	return s, nil
}

// machine adds up the busy fields of /proc/stat's first line ("cpu user nice system idle iowait irq
// softirq steal …", in USER_HZ = 100 ticks a second), idle and iowait left out.
func machine(stat string) time.Duration {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) == 0 || f[0] != "cpu" {
		return 0
	}
	var d time.Duration
	for i, v := range f[1:min(len(f), 9)] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		d += time.Duration(n) * 10 * time.Millisecond
	}
	return d
}
