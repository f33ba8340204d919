package markdown

import (
	"strings"
	"testing"
)

func TestHTMLIsSanitized(t *testing.T) {
	out, err := HTML("# Cómo pagar\n\nVer [factura](https://example.com/f) y [x](javascript:alert(1)).\n\n<script>alert(1)</script>\n\n<img src=x onerror=alert(1)>\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n- [x] hecho\n")
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, bad := range []string{"<script", "javascript:", "onerror", "alert(1)</script>"} {
		if strings.Contains(s, bad) {
			t.Errorf("rendered HTML holds %q:\n%s", bad, s)
		}
	}
	for _, good := range []string{`<h1 id="h-como-pagar">Cómo pagar</h1>`, `href="https://example.com/f"`, `rel="nofollow noreferrer noopener"`, "<table>", "<td>1</td>", `type="checkbox"`} {
		if !strings.Contains(s, good) {
			t.Errorf("rendered HTML lacks %q:\n%s", good, s)
		}
	}
}

func TestHeadingIDsAreTheirOwn(t *testing.T) {
	out, err := HTML("# Title\n\n## Title\n\n## ¿?\n")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`<h1 id="h-title">`, `<h2 id="h-title-1">`, `<h2 id="h">`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("rendered HTML lacks %q:\n%s", want, out)
		}
	}
}

func TestText(t *testing.T) {
	got := Text("# Cómo *pagar*\n\nVer la [factura](https://example.com/f)\ndel mes.\n\n<div>oculto</div>\n\n- uno\n- dos\n\n```\ncódigo\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")
	want := "Cómo pagar\nVer la factura del mes.\nuno\ndos\ncódigo\na b\n1 2"
	if got != want {
		t.Errorf("Text:\n%q\nwant\n%q", got, want)
	}
}

func FuzzText(f *testing.F) {
	f.Add("# a\n\n*b* [c](d)\n\n| x |\n|---|\n| y |\n")
	f.Add("<div>\n> > > - [ ] `x`\n")
	f.Fuzz(func(t *testing.T, s string) {
		Text(s)
		if _, err := HTML(s); err != nil {
			t.Fatal(err)
		}
	})
}
