package benchkit

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// SelfCPU is the user and system time this process has used.
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// MachineCPU returns busy, iowait and total time of all cores from
// /proc/stat.
func MachineCPU() (busy, iowait, all time.Duration) {
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
	return time.Duration(b) * ClockTick, time.Duration(io) * ClockTick, time.Duration(b+idle+io) * ClockTick
}
