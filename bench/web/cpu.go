package main

import (
	"time"

	"github.com/helpdeskgw/helpdesk/bench/internal/benchkit"
)

// cpuProbe reads the CPU time used so far by the load generator (this
// process), the gateway, and PostgreSQL (the postmaster, its live children,
// and the children that have exited).
type cpuProbe struct {
	gatewayPID, postmasterPID int
}

type cpuTimes struct{ self, gateway, postgres time.Duration }

func (p cpuProbe) snapshot() cpuTimes {
	var s cpuTimes
	s.self = benchkit.SelfCPU()
	s.gateway, _, _ = benchkit.ProcessCPU(p.gatewayPID, false)
	s.postgres = benchkit.TreeCPU(p.postmasterPID)
	return s
}

func (s cpuTimes) sub(before cpuTimes) cpuTimes {
	return cpuTimes{self: s.self - before.self, gateway: s.gateway - before.gateway, postgres: s.postgres - before.postgres}
}
