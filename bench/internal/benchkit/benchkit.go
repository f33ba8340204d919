// Package benchkit holds what the benchmark commands share: the private,
// durable PostgreSQL they measure against, a description of the machine,
// percentiles, and the Markdown table their results go into.
package benchkit

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/helpdeskgw/helpdesk/internal/pgcluster"
)

// Database is a private PostgreSQL cluster, durable as production's (fsync
// and synchronous_commit on), with one database created in it.
type Database struct {
	Cluster *pgcluster.Cluster
	URL     string
}

// StartDatabase initializes a cluster in dir and creates the database name.
func StartDatabase(ctx context.Context, dir, name string) (*Database, error) {
	c, err := pgcluster.Start(ctx, pgcluster.Options{Dir: dir, Durable: true})
	if err != nil {
		return nil, err
	}
	db := &Database{Cluster: c, URL: c.URL(name)}
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		db.Destroy()
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE template0 ENCODING 'UTF8'"); err != nil {
		db.Destroy()
		return nil, fmt.Errorf("create database %s: %w", name, err)
	}
	return db, nil
}

// Destroy stops the server and removes its data.
func (db *Database) Destroy() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := db.Cluster.Destroy(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "stop PostgreSQL:", err)
	}
}

// Machine describes where figures were measured: cores, CPU, memory, kernel
// and Go version.
func Machine() string {
	memory := ProcField("/proc/meminfo", "MemTotal")
	var kb int64
	if _, err := fmt.Sscanf(memory, "%d kB", &kb); err == nil {
		memory = fmt.Sprintf("%.1f GB", float64(kb)*1024/1e9)
	}
	kernel := "unknown kernel"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = "Linux " + strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("CPU: %d × %s; memory %s; %s; %s", runtime.NumCPU(), ProcField("/proc/cpuinfo", "model name"),
		memory, kernel, runtime.Version())
}

// ProcField is the value of the first "key: value" line of a /proc file.
func ProcField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	return "unknown"
}

// Percentile returns the p-th percentile (0–100) of ds, nearest rank; ds
// is sorted in place.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(float64(len(ds))*p/100+0.5) - 1
	return ds[max(0, min(i, len(ds)-1))]
}

// Millis formats a duration in milliseconds.
func Millis(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

// Ratio formats a/b.
func Ratio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", a/b)
}

// Row is one line of a results table.
type Row struct{ Figure, Value, Ceiling, Ratio string }

// Table renders rows as a Markdown table: figure, value, ceiling, ratio.
func Table(rows []Row) string {
	var b strings.Builder
	b.WriteString("| figure | value | ceiling | ratio |\n|---|---|---|---|\n")
	for _, row := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", row.Figure, row.Value, row.Ceiling, row.Ratio)
	}
	return b.String()
}

// Report is a results file: a title, what was measured and how, the
// machine, the table, and whether each aim was met.
type Report struct {
	Title   string
	Command string
	Method  string
	Rows    []Row
	Aims    []string
}

// Markdown renders the report.
func (r Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\nMeasured %s with `%s`.\n\n%s\n\n- %s\n\n", r.Title, time.Now().UTC().Format("2006-01-02 15:04 UTC"),
		r.Command, r.Method, Machine())
	b.WriteString(Table(r.Rows))
	if len(r.Aims) > 0 {
		b.WriteString("\n")
		for _, a := range r.Aims {
			fmt.Fprintf(&b, "- %s\n", a)
		}
	}
	return b.String()
}

// Write prints the report and writes it to path (nowhere when empty).
func (r Report) Write(path string) error {
	md := r.Markdown()
	fmt.Print(md)
	if path == "" {
		return nil
	}
	if err := os.WriteFile(path, []byte(md), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// PostmasterPID reads the server's process ID from its data directory.
func PostmasterPID(dataDir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0, fmt.Errorf("PostgreSQL's pid: %w", err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		return 0, fmt.Errorf("PostgreSQL's pid %q: %w", first, err)
	}
	return pid, nil
}

// ClockTick is the unit of the CPU times in /proc: USER_HZ, 100 on Linux.
const ClockTick = 10 * time.Millisecond

// ProcessCPU returns a process's user and system time (with its waited-for
// children's when children is set) and its parent's pid.
func ProcessCPU(pid int, children bool) (time.Duration, int, error) {
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
	return time.Duration(ticks) * ClockTick, ppid, nil
}

// TreeCPU is the CPU time of the postmaster and its children: the live
// ones read one by one, and the exited ones (a connection closed) counted
// in the postmaster's own children's time.
func TreeCPU(root int) time.Duration {
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
			cpu, _, err := ProcessCPU(pid, true)
			if err == nil {
				total += cpu
			}
			continue
		}
		cpu, ppid, err := ProcessCPU(pid, false)
		if err == nil && ppid == root {
			total += cpu
		}
	}
	return total
}
