package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAgentAndCannedCommands(t *testing.T) {
	db.Reset(t)
	ctx := context.Background()
	environ := []string{"HELPDESK_DATABASE_URL=" + db.ConnString(t)}
	var out bytes.Buffer
	must := func(args ...string) string {
		t.Helper()
		out.Reset()
		if err := runIO(ctx, args, environ, strings.NewReader("a long enough password\n"), &out); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return out.String()
	}
	must("department", "add", "--slug", "soporte", "--name", "Soporte", "--address", "support@example.com")
	if got := must("agent", "add", "--email", "ana@example.com", "--name", "Ana", "--department", "soporte"); !strings.Contains(got, "departments: soporte") {
		t.Errorf("agent add: %s", got)
	}
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte("root password here\n"), 0o600) //nolint:errcheck // checked by the login below
	must("agent", "add", "--email", "root@example.com", "--name", "Root", "--role", "admin", "--password-file", pwFile)
	must("agent", "update", "--email", "ana@example.com", "--disable")
	list := must("agent", "list")
	for _, want := range []string{"ana@example.com", "disabled", "root@example.com", "all (admin)"} {
		if !strings.Contains(list, want) {
			t.Errorf("agent list lacks %q:\n%s", want, list)
		}
	}
	for _, bad := range [][]string{
		{"agent", "add", "--email", "x@example.com"},
		{"agent", "add", "--email", "ana@example.com", "--name", "Ana"}, // taken
		{"agent", "update", "--email", "nobody@example.com", "--name", "X"},
		{"agent", "fly"},
	} {
		if err := runIO(ctx, bad, environ, strings.NewReader("a long enough password\n"), &out); err == nil {
			t.Errorf("%v: accepted", bad)
		}
	}
	if err := runIO(ctx, []string{"agent", "add", "--email", "y@example.com", "--name", "Y"}, environ, strings.NewReader("short\n"), &out); err == nil {
		t.Error("a short password was accepted")
	}

	body := filepath.Join(t.TempDir(), "body")
	os.WriteFile(body, []byte("Hola {{customer_name}}: {{link}}\n"), 0o600) //nolint:errcheck // checked by list
	must("canned", "add", "--title", "Saludo", "--body-file", body, "--department", "soporte")
	if got := must("canned", "list"); !strings.Contains(got, "Saludo") || !strings.Contains(got, "soporte") {
		t.Errorf("canned list:\n%s", got)
	}
	must("department", "update", "--slug", "soporte", "--auto-resolve-days", "7")
	var days int
	if err := db.Pool(t).QueryRow(ctx, `SELECT auto_resolve_days FROM departments`).Scan(&days); err != nil || days != 7 {
		t.Errorf("auto_resolve_days %d (%v), want 7", days, err)
	}
	var audited int
	db.Pool(t).QueryRow(ctx, `SELECT count(*) FROM audit_log WHERE actor LIKE 'cli:%'`).Scan(&audited) //nolint:errcheck // checked below
	if audited != 5 {
		t.Errorf("%d audit rows from the command line, want 5 (2 agents, an update, a canned response, a department)", audited)
	}
}
