package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/helpdeskgw/helpdesk/bench/internal/benchkit"
)

// Aims from the issue, on a 2-core machine.
const (
	aimSmallRate = 1500  // 4 KB mails/s
	aimPeakRSS   = 100e6 // bytes, while ingesting a 25 MB attachment
)

// results is everything a run measured.
type results struct {
	started time.Time
	opts    options
	args    []string
	machine machineInfo

	smallSize, bigSize float64 // mean bytes per mail
	noopSmall, noopBig loadResult
	inserts            loadResult
	insertCounters     counters
	statements         []statement // of the 4 KB run, with -statements
	small, big         gatewayCase
	rss                rssResult
	waits              *waitProfile
	tickets, acks      int64    // in the database after the gateway's cases
	warnings           int      // lines the gateway logged at warn or error
	problems           []string // failed checks
}

// gatewayCase is one case sent to the gateway.
type gatewayCase struct {
	load          loadResult
	drain         time.Duration // from the last 250 to the last acknowledgement sent
	counters      counters      // PostgreSQL's, over the case and its drain
	tickets, acks int64         // in the database after the case
}

// rssResult is the peak RSS run.
type rssResult struct {
	start, end memory // before sending, after the acknowledgement was sent
	wire       int64  // bytes of the mail
	stored     int64  // bytes of the attachment as stored
	load       loadResult
}

func (r *results) check(ok bool, format string, args ...any) {
	if !ok {
		r.problems = append(r.problems, fmt.Sprintf(format, args...))
	}
}

// machineInfo describes where the figures were measured.
type machineInfo struct {
	cores     int
	cpu       string
	memory    string
	kernel    string
	goVersion string
	pg        map[string]string
}

func describeMachine(ctx context.Context, url string) (machineInfo, error) {
	m := machineInfo{cores: runtime.NumCPU(), goVersion: runtime.Version(),
		cpu: benchkit.ProcField("/proc/cpuinfo", "model name"), memory: benchkit.ProcField("/proc/meminfo", "MemTotal")}
	var kb int64
	if _, err := fmt.Sscanf(m.memory, "%d kB", &kb); err == nil {
		m.memory = fmt.Sprintf("%.1f GB", float64(kb)*1024/1e9)
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = "Linux " + strings.TrimSpace(string(b))
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return m, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer conn.Close(ctx)
	m.pg, err = settings(ctx, conn)
	return m, err
}

// row is one line of the figures table.
type row struct{ figure, value, ceiling, ratio string }

func (r *results) rows() []row {
	s, ns, ins := r.small.load, r.noopSmall, r.inserts
	rows := []row{
		{fmt.Sprintf("4 KB mails/s (%s mails of %s, %d conns)", count(float64(s.done)), size(r.smallSize), r.opts.conns),
			count(s.rate()),
			fmt.Sprintf("no-op SMTP %s / bare INSERT %s tx/s", count(ns.rate()), count(ins.rate())),
			fmt.Sprintf("%s / %s", ratio(s.rate(), ns.rate()), ratio(s.rate(), ins.rate()))},
		{"4 KB latency p50 / p99", latencies(s),
			fmt.Sprintf("no-op SMTP %s / bare INSERT %s", latencies(ns), latencies(ins)), ""},
		{"4 KB CPU per mail: gateway / PostgreSQL / load generator", perMail(s),
			fmt.Sprintf("no-op SMTP (server + generator) %s / bare INSERT PostgreSQL %s", micros(ns.cpu.self, ns.done),
				micros(ins.cpu.postgres, ins.done)), ""},
		{"4 KB per mail: commits / WAL syncs / WAL records / WAL bytes", perUnit(r.small.counters, s.done),
			"bare INSERT per tx " + perUnit(r.insertCounters, ins.done), ""},
		{"4 KB machine busy (of which others; iowait)", busy(s.cpu), fmt.Sprintf("no-op SMTP %s / bare INSERT %s", busy(ns.cpu), busy(ins.cpu)), ""},
		{"4 KB acknowledgements all sent, after the last 250", seconds(r.small.drain), "", ""},
	}
	if b, nb := r.big.load, r.noopBig; b.done > 0 || nb.done > 0 {
		rows = append(rows,
			row{fmt.Sprintf("1 MB mails/s (%s mails of %s)", count(float64(b.done)), size(r.bigSize)),
				fmt.Sprintf("%s (%s MB/s)", count(b.rate()), count(b.megabytesPerSecond())),
				fmt.Sprintf("no-op SMTP %s (%s MB/s)", count(nb.rate()), count(nb.megabytesPerSecond())),
				ratio(b.rate(), nb.rate())},
			row{"1 MB latency p50 / p99", latencies(b), "no-op SMTP " + latencies(nb), ""},
			row{"1 MB CPU per mail: gateway / PostgreSQL / load generator", perMail(b), "", ""},
			row{"1 MB per mail: commits / WAL syncs / WAL records / WAL bytes", perUnit(r.big.counters, b.done), "", ""},
			row{"1 MB machine busy (of which others; iowait)", busy(b.cpu), "no-op SMTP " + busy(nb.cpu), ""},
			row{"1 MB acknowledgements all sent, after the last 250", seconds(r.big.drain), "", ""},
		)
	}
	rows = append(rows,
		row{"tickets / ack rows / mails answered 250",
			fmt.Sprintf("%s / %s / %s", count(float64(r.tickets)), count(float64(r.acks)), count(float64(s.done+r.big.load.done))), "", ""},
		row{"non-250 replies", count(float64(s.errorCount() + r.big.load.errorCount())),
			"no-op SMTP " + count(float64(ns.errorCount()+r.noopBig.errorCount())), ""},
		row{"peak RSS (VmHWM), one mail with a 25 MB attachment", mb(r.rss.end.peak),
			"aim " + mb(aimPeakRSS), ratio(float64(r.rss.end.peak), aimPeakRSS)},
		row{"RSS after start, before that mail", mb(r.rss.start.rss), "", ""},
		row{fmt.Sprintf("25 MB attachment: %s on the wire, stored as", size(float64(r.rss.wire))), size(float64(r.rss.stored)),
			"", fmt.Sprintf("250 after %s", seconds(r.rss.load.elapsed))},
	)
	return rows
}

// aims says whether the aims were reached.
func (r *results) aims() []string {
	met := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	return []string{
		fmt.Sprintf("4 KB ingest ≥ %s mails/s: %s mails/s, %s", count(aimSmallRate), count(r.small.load.rate()),
			met(r.small.load.rate() >= aimSmallRate)),
		fmt.Sprintf("peak RSS < %s with a 25 MB attachment: %s, %s", mb(aimPeakRSS), mb(r.rss.end.peak),
			met(r.rss.end.peak > 0 && r.rss.end.peak < aimPeakRSS)),
	}
}

func (r *results) machineLines() []string {
	m := r.machine
	pg := m.pg
	return []string{
		fmt.Sprintf("CPU: %d × %s; memory %s; %s", m.cores, m.cpu, m.memory, m.kernel),
		fmt.Sprintf("Go %s; PostgreSQL %s (fsync=%s, synchronous_commit=%s, full_page_writes=%s, wal_sync_method=%s, shared_buffers=%s, max_wal_size=%s)",
			strings.TrimPrefix(m.goVersion, "go"), pg["server_version"], pg["fsync"], pg["synchronous_commit"],
			pg["full_page_writes"], pg["wal_sync_method"], pg["shared_buffers"], pg["max_wal_size"]),
	}
}

func (r *results) command() string {
	return strings.TrimSpace("go run ./bench/ingest " + strings.Join(r.args, " "))
}

// print writes the report as plain text.
func (r *results) print(w io.Writer) {
	fmt.Fprintf(w, "\nIngest benchmark, %s: %s\n", r.started.UTC().Format("2006-01-02 15:04 MST"), r.command())
	for _, l := range r.machineLines() {
		fmt.Fprintln(w, l)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tvalue\tceiling\tratio")
	for _, x := range r.rows() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", x.figure, x.value, x.ceiling, x.ratio)
	}
	tw.Flush() //nolint:errcheck // w is stdout
	fmt.Fprintln(w)
	for _, a := range r.aims() {
		fmt.Fprintln(w, "aim:", a)
	}
	if r.waits != nil {
		fmt.Fprintf(w, "\nPostgreSQL backends of the gateway during the 4 KB run (%d samples; average count):\n", r.waits.samples)
		for _, e := range r.waits.entries() {
			fmt.Fprintf(w, "  %5.2f  %s\n", e.backends, e.state)
		}
	}
	if len(r.statements) > 0 {
		fmt.Fprintf(w, "\nStatements of the 4 KB run (pg_stat_statements; execution time inside PostgreSQL):\n")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "calls/mail\tµs/mail\tmean µs\tstatement")
		for _, l := range r.statementLines() {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", l[0], l[1], l[2], l[3])
		}
		tw.Flush() //nolint:errcheck // w is stdout
	}
	if r.warnings > 0 {
		fmt.Fprintf(w, "\nthe gateway logged %d warnings or errors (see its log with -keep)\n", r.warnings)
	}
	for _, p := range r.problems {
		fmt.Fprintln(w, "PROBLEM:", p)
	}
}

// markdown writes the report for bench/RESULTS-ingest.md.
func (r *results) markdown(w io.Writer) {
	fmt.Fprintf(w, "# Ingest benchmark\n\n")
	fmt.Fprintf(w, "Measured %s with `%s` (`make bench` runs it with the defaults).\n\n",
		r.started.UTC().Format("2006-01-02 15:04 MST"), r.command())
	fmt.Fprintf(w, "The gateway is the real binary (`helpdesk serve --demo`, log level warn) on a private PostgreSQL with fsync "+
		"and synchronous_commit on; a mail counts when the 250 after its DATA arrives, which the gateway sends only "+
		"after the ticket, its message and the acknowledgement's outbox row are committed; meanwhile it sends the "+
		"acknowledgements, to a relay on loopback that accepts and discards them (`-outbox DIR` spools them to files "+
		"instead). The ceilings are measured "+
		"in the same run with the same load generator, mails and concurrency: a go-smtp server that discards the mail, "+
		"and one-row INSERT transactions on the same PostgreSQL. CPU is user+system time per mail from /proc; "+
		"\"machine busy\" is the share of all cores in use, \"others\" the part of it used by other processes "+
		"(a busy machine lowers the rates, not the CPU per mail). PostgreSQL's commits and WAL per mail cover the case and "+
		"the sending of its acknowledgements.\n\n")
	for _, l := range r.machineLines() {
		fmt.Fprintf(w, "- %s\n", l)
	}
	fmt.Fprintf(w, "\n| figure | value | ceiling | ratio |\n|---|---|---|---|\n")
	for _, x := range r.rows() {
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", x.figure, x.value, x.ceiling, x.ratio)
	}
	fmt.Fprintln(w)
	for _, a := range r.aims() {
		fmt.Fprintf(w, "- Aim: %s\n", a)
	}
	if r.waits != nil {
		fmt.Fprintf(w, "\nPostgreSQL backends of the gateway during the 4 KB run (%d samples of pg_stat_activity; average number of backends in each state):\n\n",
			r.waits.samples)
		fmt.Fprintf(w, "| backends | state: wait event |\n|---|---|\n")
		for _, e := range r.waits.entries() {
			fmt.Fprintf(w, "| %.2f | %s |\n", e.backends, e.state)
		}
	}
	if len(r.statements) > 0 {
		fmt.Fprintf(w, "\nStatements of the 4 KB run (pg_stat_statements; execution time inside PostgreSQL):\n\n")
		fmt.Fprintf(w, "| calls/mail | µs/mail | mean µs | statement |\n|---|---|---|---|\n")
		for _, l := range r.statementLines() {
			fmt.Fprintf(w, "| %s | %s | %s | `%s` |\n", l[0], l[1], l[2], strings.ReplaceAll(l[3], "|", "\\|"))
		}
	}
	for _, p := range r.problems {
		fmt.Fprintf(w, "\n**Problem:** %s\n", p)
	}
}

// statementLines are the costliest statements of the 4 KB run, and their
// total: calls per mail, µs per mail, mean µs, statement.
func (r *results) statementLines() [][4]string {
	n := float64(max(r.small.load.done, 1))
	var lines [][4]string
	var total time.Duration
	var calls int64
	for i, st := range r.statements {
		total += st.total
		calls += st.calls
		if i >= 15 {
			continue
		}
		q := st.query
		if len(q) > 110 {
			q = q[:110] + "…"
		}
		lines = append(lines, [4]string{fmt.Sprintf("%.2f", float64(st.calls)/n), fmt.Sprintf("%.0f", st.total.Seconds()*1e6/n),
			fmt.Sprintf("%.0f", st.total.Seconds()*1e6/float64(max(st.calls, 1))), q})
	}
	return append(lines, [4]string{fmt.Sprintf("%.2f", float64(calls)/n), fmt.Sprintf("%.0f", total.Seconds()*1e6/n), "",
		fmt.Sprintf("all %d statements", len(r.statements))})
}

// report prints the results, writes them as Markdown and fails when a
// check did.
func (b *bench) report(root string) error {
	b.res.print(os.Stdout)
	if b.opts.results != "" {
		path := b.opts.results
		if !filepath.IsAbs(path) {
			path = filepath.Join(root, path)
		}
		var sb strings.Builder
		b.res.markdown(&sb)
		if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
			return fmt.Errorf("write results: %w", err)
		}
		progress("wrote %s", path)
	}
	if n := len(b.res.problems); n > 0 {
		return fmt.Errorf("%d checks failed", n)
	}
	return nil
}

// Number formatting.

func count(v float64) string {
	if v < 100 && v != math.Trunc(v) {
		return fmt.Sprintf("%.1f", v)
	}
	s := fmt.Sprintf("%.0f", v)
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 && s[i-1] != '-' {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

func ratio(v, ceiling float64) string {
	if ceiling <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", v/ceiling)
}

func latencies(r loadResult) string {
	return fmt.Sprintf("%s / %s ms", millis(r.percentile(50)), millis(r.percentile(99)))
}

func millis(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	if ms < 10 {
		return fmt.Sprintf("%.2f", ms)
	}
	return fmt.Sprintf("%.1f", ms)
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

func micros(d time.Duration, n int) string {
	if n == 0 {
		return "–"
	}
	return fmt.Sprintf("%s µs", count(float64(d)/float64(time.Microsecond)/float64(n)))
}

func perMail(r loadResult) string {
	return fmt.Sprintf("%s / %s / %s", micros(r.cpu.gateway, r.done), micros(r.cpu.postgres, r.done), micros(r.cpu.self, r.done))
}

func perUnit(c counters, n int) string {
	if n == 0 {
		return "–"
	}
	f := float64(n)
	return fmt.Sprintf("%.2f / %.2f / %.1f / %s", float64(c.commits)/f, float64(c.walSyncs)/f, float64(c.walRecords)/f,
		size(float64(c.walBytes)/f))
}

func busy(u cpuUsage) string {
	return fmt.Sprintf("%.0f%% (others %.0f%%, iowait %.0f%%)", u.busy*100, u.others*100, u.iowait*100)
}

// mb is a memory size in MB (10⁶ bytes), as the aim is given.
func mb(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/1e6) }

func size(b float64) string {
	switch {
	case b >= 1e6:
		return fmt.Sprintf("%.2f MB", b/1e6)
	case b >= 1e3:
		return fmt.Sprintf("%.1f kB", b/1e3)
	}
	return fmt.Sprintf("%.0f B", b)
}
