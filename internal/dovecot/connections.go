package dovecot

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Connections counts the clients connected to the server's listeners
// right now, as the kernel sees them from the server's side: established
// TCP connections whose local end is one of its ports, held by one of its
// processes (another program's connection may have been given the same
// local port before the server took it). Every logged-in client holds
// one, idle or not.
func (s *Server) Connections() (int, error) {
	ports := map[uint64]bool{uint64(s.port): true}
	if s.tlsPort != 0 {
		ports[uint64(s.tlsPort)] = true
	}
	s.mu.Lock()
	proc := s.proc
	s.mu.Unlock()
	if proc == nil {
		return 0, nil
	}
	held, err := groupSockets(proc.pgid)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		got, err := countEstablished(table, ports, held)
		if err != nil {
			return 0, err
		}
		n += got
	}
	return n, nil
}

// tcpEstablished is the state column of an established connection in
// /proc/net/tcp.
const tcpEstablished = "01"

// groupSockets lists the inodes of the sockets the processes of group
// pgid hold.
func groupSockets(pgid int) (map[string]bool, error) {
	pids, err := groupProcesses(pgid)
	if err != nil {
		return nil, err
	}
	held := map[string]bool{}
	for _, pid := range pids {
		fds, err := os.ReadDir(filepath.Join("/proc", pid, "fd"))
		if err != nil {
			continue // exited meanwhile
		}
		for _, fd := range fds {
			target, err := os.Readlink(filepath.Join("/proc", pid, "fd", fd.Name()))
			if inode, ok := strings.CutPrefix(target, "socket:["); err == nil && ok {
				held[strings.TrimSuffix(inode, "]")] = true
			}
		}
	}
	return held, nil
}

func countEstablished(table string, ports map[uint64]bool, held map[string]bool) (int, error) {
	f, err := os.Open(table)
	if err != nil {
		if os.IsNotExist(err) {
			return 0, nil // no IPv6
		}
		return 0, fmt.Errorf("count connections: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for first := true; sc.Scan(); first = false {
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid
		// timeout inode …; addresses are HEX:PORT.
		fields := strings.Fields(sc.Text())
		if first || len(fields) < 10 || fields[3] != tcpEstablished || !held[fields[9]] {
			continue
		}
		_, portHex, ok := strings.Cut(fields[1], ":")
		if !ok {
			continue
		}
		if port, err := strconv.ParseUint(portHex, 16, 16); err == nil && ports[port] {
			n++
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("count connections: %w", err)
	}
	return n, nil
}
