package main

import (
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

// cpuProbe reads the CPU time used so far by the load generator (this
// process), the gateway, and PostgreSQL (the postmaster, its live children,
// and the children that have exited).
type cpuProbe struct {
	gatewayPID, postmasterPID int
}

type cpuTimes struct{ self, gateway, postgres time.Duration }

func (p cpuProbe) snapshot() cpuTimes {
	var s cpuTimes
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	s.gateway, _, _ = processCPU(p.gatewayPID, false)
	s.postgres = treeCPU(p.postmasterPID)
	return s
}

func (s cpuTimes) sub(before cpuTimes) cpuTimes {
	return cpuTimes{self: s.self - before.self, gateway: s.gateway - before.gateway, postgres: s.postgres - before.postgres}
}

// processCPU returns a process's user and system time (with its waited-for
// children's when children is set) and its parent's pid.
func processCPU(pid int, children bool) (time.Duration, int, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, 0, err
	}
	// The command name may hold spaces and parentheses: fields start after
	// the last ')'.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 15 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ppid, _ := strconv.Atoi(f[1])
	var ticks int64
	last := 12
	if children {
		last = 14
	}
	for i := 11; i <= last; i++ {
		v, _ := strconv.ParseInt(f[i], 10, 64)
		ticks += v
	}
	return time.Duration(ticks) * clockTick, ppid, nil
}

// treeCPU is the CPU time of the postmaster and its children: the live
// ones read one by one, and the exited ones (a connection closed) counted
// in the postmaster's own children's time.
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
		if pid == root {
			cpu, _, err := processCPU(pid, true)
			if err == nil {
				total += cpu
			}
			continue
		}
		cpu, ppid, err := processCPU(pid, false)
		if err == nil && ppid == root {
			total += cpu
		}
	}
	return total
}
