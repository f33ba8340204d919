package dovecot

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Connections counts the clients connected to the server's listeners
// right now, as the kernel sees them from the server's side: established
// TCP connections whose local end is one of its ports. Every logged-in
// client holds one, idle or not.
func (s *Server) Connections() (int, error) {
	ports := map[uint64]bool{uint64(s.port): true}
	if s.tlsPort != 0 {
		ports[uint64(s.tlsPort)] = true
	}
	n := 0
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		got, err := countEstablished(table, ports)
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

func countEstablished(table string, ports map[uint64]bool) (int, error) {
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
		// sl local_address rem_address st …; addresses are HEX:PORT.
		fields := strings.Fields(sc.Text())
		if first || len(fields) < 4 || fields[3] != tcpEstablished {
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
