package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/helpdeskgw/helpdesk/bench/internal/benchkit"
)

// cpuProbe reads the CPU time used so far by the benchmark itself, the
// gateway and PostgreSQL (the postmaster and its children), and by the
// whole machine. Zero pids are skipped.
type cpuProbe struct {
	gatewayPID, postmasterPID int
}

type cpuSnapshot struct {
	self, gateway, postgres time.Duration
	busy, iowait, all       time.Duration // the machine, all cores
}

func (p cpuProbe) snapshot() cpuSnapshot {
	var s cpuSnapshot
	s.self = benchkit.SelfCPU()
	if p.gatewayPID != 0 {
		s.gateway, _, _ = benchkit.ProcessCPU(p.gatewayPID, false)
	}
	if p.postmasterPID != 0 {
		s.postgres = benchkit.TreeCPU(p.postmasterPID)
	}
	s.busy, s.iowait, s.all = benchkit.MachineCPU()
	return s
}

// cpuUsage is the CPU time spent between two snapshots.
type cpuUsage struct {
	self, gateway, postgres time.Duration
	// busy, others and iowait are fractions of all the machine's cores;
	// others is the part of busy that neither the benchmark, the gateway
	// nor PostgreSQL used (the kernel's threads, and other people's work).
	busy, others, iowait float64
}

func (s cpuSnapshot) sub(before cpuSnapshot) cpuUsage {
	u := cpuUsage{self: s.self - before.self, gateway: s.gateway - before.gateway, postgres: s.postgres - before.postgres}
	if all := s.all - before.all; all > 0 {
		busy := s.busy - before.busy
		u.busy = float64(busy) / float64(all)
		u.others = max(0, float64(busy-u.self-u.gateway-u.postgres)/float64(all))
		u.iowait = float64(s.iowait-before.iowait) / float64(all)
	}
	return u
}

// memory is a process's resident set, now and at its peak, from
// /proc/<pid>/status.
type memory struct{ rss, peak int64 } // bytes

func readMemory(pid int) (memory, error) {
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return memory{}, fmt.Errorf("memory of process %d: %w", pid, err)
	}
	defer f.Close()
	var m memory
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		if err != nil {
			return m, fmt.Errorf("memory of process %d: %s: %w", pid, key, err)
		}
		if key == "VmRSS" {
			m.rss = kb << 10
		} else {
			m.peak = kb << 10
		}
	}
	if err := sc.Err(); err != nil {
		return m, fmt.Errorf("memory of process %d: %w", pid, err)
	}
	return m, nil
}
