package mailin

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/helpdeskgw/helpdesk/tickets"
)

// BenchmarkClassifyCorpus reads every mail of the hostile corpus the way
// mail intake does before it stores it (parse, automatic-mail headers,
// delivery reports, quoted history, subject tag) and, in the same run, only
// parses them: the ceiling. With HELPDESK_BENCH_RESULTS set it writes the
// table there (make bench does).
func BenchmarkClassifyCorpus(b *testing.B) {
	files, err := filepath.Glob("testdata/corpus/*.eml")
	if err != nil || len(files) == 0 {
		b.Fatalf("no corpus: %v", err)
	}
	var mails [][]byte
	var size int64
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		// Placeholders the corpus test fills in are left as they are: the
		// mails read the same.
		mails = append(mails, raw)
		size += int64(len(raw))
	}
	tmp := b.TempDir()
	rcv := NewReceiver(ReceiverOptions{TempDir: tmp, OwnAddresses: []string{"support@example.com"}})
	var parseTime, classifyTime time.Duration
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		for _, raw := range mails {
			p, err := Parse(bytes.NewReader(raw), tmp)
			if err != nil {
				b.Fatal(err)
			}
			p.Close()
		}
		parseTime += time.Since(start)
		start = time.Now()
		for _, raw := range mails {
			env := Envelope{Source: "smtp", From: "sender@example.org"}
			m, err := rcv.read(&env, tickets.BytesContent(raw))
			if err != nil {
				b.Fatal(err)
			}
			m.parsed.Close()
		}
		classifyTime += time.Since(start)
	}
	n := float64(b.N * len(mails))
	parseRate, classifyRate := n/parseTime.Seconds(), n/classifyTime.Seconds()
	b.ReportMetric(parseRate, "parse-mails/s")
	b.ReportMetric(classifyRate, "classify-mails/s")
	b.ReportMetric(classifyRate/parseRate, "ratio")
	b.ReportMetric(0, "ns/op")
	if path := os.Getenv("HELPDESK_BENCH_RESULTS"); path != "" {
		var t strings.Builder
		fmt.Fprintf(&t, "# Classification benchmark\n\nMeasured %s with `make bench` (`go test ./mailin -run '^$' -bench '^BenchmarkClassifyCorpus$'`), %d passes over the %d mails of `mailin/testdata/corpus` (%.1f MB; hostile and odd mail: broken MIME, 1,000 parts, a 10,000-line header, HTML bombs, delivery reports, replies).\n\n",
			time.Now().UTC().Format("2006-01-02 15:04 UTC"), b.N, len(mails), float64(size)/1e6)
		fmt.Fprintf(&t, "Classifying is what mail intake does before it stores a mail: parse, then the automatic-mail headers, the delivery report, the quoted history and the subject's tag. The ceiling is parsing alone, in the same run, one mail at a time on one core (%s, %d cores, Go %s).\n\n",
			runtime.GOARCH, runtime.NumCPU(), strings.TrimPrefix(runtime.Version(), "go"))
		fmt.Fprintf(&t, "| figure | value | ceiling | ratio |\n|---|---|---|---|\n")
		fmt.Fprintf(&t, "| corpus mails classified per second | %.0f | parsing alone %.0f | %.2f |\n", classifyRate, parseRate, classifyRate/parseRate)
		fmt.Fprintf(&t, "| MB/s classified | %.1f | parsing alone %.1f | |\n", classifyRate*float64(size)/float64(len(mails))/1e6, parseRate*float64(size)/float64(len(mails))/1e6)
		if err := os.WriteFile(path, []byte(t.String()), 0o644); err != nil {
			b.Fatal(err)
		}
	}
}
