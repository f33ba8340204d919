package suite

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"strings"
	"time"
)

// ChecksTable renders checks as a Markdown table.
func ChecksTable(checks []Check) string {
	var b strings.Builder
	b.WriteString("| check | result | numbers |\n|---|---|---|\n")
	for _, c := range checks {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", c.Name, c.Status, strings.ReplaceAll(c.Detail, "|", "\\|"))
	}
	return b.String()
}

// PrintChecks writes checks as plain lines, for the terminal.
func PrintChecks(title string, checks []Check) {
	fmt.Printf("\n%s\n", title)
	for _, c := range checks {
		fmt.Printf("  %-8s %s: %s\n", c.Status, c.Name, c.Detail)
	}
}

// The results file holds one section per program, each between markers,
// so that bench/load and bench/faults each replace their own.
const resultsTitle = "# Load and fault suite\n\n" +
	"Written by `go run ./bench/load` (`make bench`) and `go run ./bench/faults` (`make faults`); each replaces its own section.\n"

// sectionOrder is where each program's section goes in the file.
var sectionOrder = []string{"load", "faults"}

// WriteSection replaces the section key of the results file at path with
// body, keeping the other sections; a file without sections is replaced.
func WriteSection(path, key, body string) error {
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read %s: %w", path, err)
	}
	sections := map[string]string{}
	for _, k := range sectionOrder {
		if s, ok := between(string(old), begin(k), end(k)); ok {
			sections[k] = s
		}
	}
	sections[key] = strings.TrimSpace(body)
	var b strings.Builder
	b.WriteString(resultsTitle)
	for _, k := range sectionOrder {
		if s, ok := sections[k]; ok {
			fmt.Fprintf(&b, "\n%s\n%s\n%s\n", begin(k), s, end(k))
		}
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func begin(key string) string { return "<!-- begin " + key + " -->" }
func end(key string) string   { return "<!-- end " + key + " -->" }

func between(s, from, to string) (string, bool) {
	i := strings.Index(s, from)
	if i < 0 {
		return "", false
	}
	rest := s[i+len(from):]
	j := strings.Index(rest, to)
	if j < 0 {
		return "", false
	}
	return strings.TrimSpace(rest[:j]), true
}

// Count writes a number with thousands separators, one decimal below 100
// when it has a fraction.
func Count(v float64) string {
	if math.Abs(v) < 100 && v != math.Trunc(v) {
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

// Seconds writes a duration in seconds.
func Seconds(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }

// Progress logs a step of the run to stderr.
func Progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}
