package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTick is the unit of the CPU times in /proc: USER_HZ, 100 on Linux.
const clockTick = 10 * time.Millisecond

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
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if p.gatewayPID != 0 {
		s.gateway, _, _ = processCPU(p.gatewayPID)
	}
	if p.postmasterPID != 0 {
		s.postgres = treeCPU(p.postmasterPID)
	}
	s.busy, s.iowait, s.all = machineCPU()
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

// processCPU returns a process's user+system time and its parent's pid.
func processCPU(pid int) (time.Duration, int, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, 0, err
	}
	// The command name may hold spaces and parentheses: fields start after
	// the last ')'.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ppid, _ := strconv.Atoi(f[1])
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * clockTick, ppid, nil
}

// treeCPU is the CPU time of a process and its direct children (the
// postmaster and its backends and helpers). Children that have exited are
// not counted: the gateway's pool and the helpers live for the whole run.
func treeCPU(root int) time.Duration {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var total time.Duration
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cpu, ppid, err := processCPU(pid)
		if err == nil && (pid == root || ppid == root) {
			total += cpu
		}
	}
	return total
}

// machineCPU returns busy, iowait and total time of all cores from
// /proc/stat.
func machineCPU() (busy, iowait, all time.Duration) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0, 0, 0
	}
	fields := strings.Fields(sc.Text()) // cpu user nice system idle iowait irq softirq steal ...
	var v [8]int64
	for i := range v {
		if i+1 < len(fields) {
			v[i], _ = strconv.ParseInt(fields[i+1], 10, 64)
		}
	}
	user, nice, system, idle, io, irq, softirq, steal := v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]
	b := user + nice + system + irq + softirq + steal
	return time.Duration(b) * clockTick, time.Duration(io) * clockTick, time.Duration(b+idle+io) * clockTick
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
