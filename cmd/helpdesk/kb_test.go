package main

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// kbArticles are article files as the export writes them.
var kbArticles = map[string]string{
	"facturacion/es/como-descargar-la-factura.md": `---
title: Cómo descargar la factura
category: Pagos
keywords: [recibo, comprobante, año fiscal]
state: published
---
Entra en **Mi cuenta** y pulsa *Facturas*. ¿No aparece? Revisa el año: «2025».

La facturación es mensual — ñandú, pingüino.
`,
	"soporte/es/cambiar-la-contrasena.md": `---
title: Cambiar la contraseña
state: draft
---
Usa el enlace [¿Olvidaste tu contraseña?](https://example.com/reset).
`,
	"soporte/en/resetting-your-password.md": `---
title: 'Resetting: your password'
category: Accounts
keywords: [login]
state: published
---
Use the *forgot password* link.
`,
}

// writeTree writes files (slash-separated path → content) under a new
// directory and returns it.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for rel, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// readTree reads every file under dir, by slash-separated path.
func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		rel, _ := filepath.Rel(dir, path)
		out[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// kbHelpdesk is a fresh database with the departments soporte and
// facturacion, and a way to run commands on it.
func kbHelpdesk(t *testing.T) func(args ...string) (string, error) {
	t.Helper()
	db.Reset(t)
	environ := []string{"HELPDESK_DATABASE_URL=" + db.ConnString(t)}
	cmd := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(context.Background(), args, environ, &out)
		return out.String(), err
	}
	for _, d := range [][]string{{"soporte", "support@example.com"}, {"facturacion", "billing@example.com"}} {
		if _, err := cmd("department", "add", "--slug", d[0], "--name", d[0], "--address", d[1]); err != nil {
			t.Fatal(err)
		}
	}
	return cmd
}

func countArticles(t *testing.T) int {
	t.Helper()
	var n int
	if err := db.Pool(t).QueryRow(context.Background(), `SELECT count(*) FROM kb_articles`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestKBImportExportRoundTrip(t *testing.T) {
	kb := kbHelpdesk(t)
	tree := maps.Clone(kbArticles)
	// Not articles: skipped.
	tree[".git/config"] = "[core]\n"
	tree["soporte/es/.borrador.md"] = "no front matter"
	tree["soporte/es/notas.txt"] = "notes"
	src := writeTree(t, tree)

	out, err := kb("kb", "import", src)
	if err != nil || out != "3 created, 0 updated, 0 unchanged\n" {
		t.Fatalf("import: %q %v", out, err)
	}
	var title, body string
	err = db.Pool(t).QueryRow(context.Background(),
		`SELECT title, body_md FROM kb_articles WHERE slug = 'como-descargar-la-factura'`).Scan(&title, &body)
	if err != nil || title != "Cómo descargar la factura" || !strings.Contains(body, "«2025».\n\nLa facturación es mensual — ñandú, pingüino.") {
		t.Fatalf("stored %q %q %v", title, body, err)
	}

	dst := t.TempDir()
	if out, err := kb("kb", "export", dst); err != nil || out != "articles written to "+dst+": 3\n" {
		t.Fatalf("export: %q %v", out, err)
	}
	exported := readTree(t, dst)
	if !maps.Equal(exported, kbArticles) {
		for rel, want := range kbArticles {
			if exported[rel] != want {
				t.Errorf("%s exported as\n%s\nwant\n%s", rel, exported[rel], want)
			}
		}
		t.Fatalf("exported %q, want %q", slices.Sorted(maps.Keys(exported)), slices.Sorted(maps.Keys(kbArticles)))
	}
	for _, dir := range []string{dst, src} {
		if out, err := kb("kb", "import", dir); err != nil || out != "0 created, 0 updated, 3 unchanged\n" {
			t.Fatalf("import of %s again: %q %v", dir, out, err)
		}
	}

	// Files there already are replaced on request only, whole.
	changed := filepath.Join(dst, "soporte", "en", "resetting-your-password.md")
	if err := os.WriteFile(changed, []byte("edited"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := kb("kb", "export", dst); err == nil || !strings.Contains(err.Error(), "files are there already (--force replaces them): 3 of 3") ||
		!strings.Contains(err.Error(), changed) {
		t.Fatalf("export over files: %v", err)
	}
	if b, _ := os.ReadFile(changed); string(b) != "edited" {
		t.Fatalf("a refused export wrote %q", b)
	}
	if _, err := kb("kb", "export", dst, "--force"); err != nil {
		t.Fatal(err)
	}
	if got := readTree(t, dst); !maps.Equal(got, kbArticles) {
		t.Fatalf("after --force the directory holds %q", slices.Sorted(maps.Keys(got)))
	}
	info, err := os.Stat(changed)
	if err != nil || info.Mode().Perm() != 0o644 {
		t.Fatalf("exported file mode %v %v, want 0644", info.Mode(), err)
	}
}

func TestKBImportRefusesBadFilesAndImportsNothing(t *testing.T) {
	kb := kbHelpdesk(t)
	good := "soporte/es/cambiar-la-contrasena.md"
	outside := filepath.Join(t.TempDir(), "fuera.md")
	if err := os.WriteFile(outside, []byte(kbArticles[good]), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		files map[string]string
		link  string // a link to outside at this path
		// wants are what the error says, each naming its file.
		wants []string
	}{
		{name: "bad front matter",
			files: map[string]string{
				"soporte/es/mal.md":      "---\ntitle: Mal\nkeywords: recibo\n---\nTexto.\n",
				"soporte/es/raro.md":     "---\ntitle: Raro\ncolor: rojo\n---\nTexto.\n",
				"soporte/es/roto.md":     "---\ntitle: [Roto\n---\nTexto.\n",
				"soporte/es/sin-yaml.md": "Solo texto.\n",
			},
			wants: []string{
				filepath.FromSlash("soporte/es/mal.md") + ":3: cannot unmarshal",
				filepath.FromSlash("soporte/es/raro.md") + ":3: unknown field color",
				filepath.FromSlash("soporte/es/roto.md") + ":2: ",
				filepath.FromSlash("soporte/es/sin-yaml.md") + ":1: no front matter",
			}},
		{name: "a file out of place or its front matter against its path",
			files: map[string]string{
				"soporte/fr/article.md":     "---\ntitle: Article\n---\nTexte.\n",
				"soporte/es/muy/hondo.md":   kbArticles[good],
				"soporte/es/contradice.md":  "---\ntitle: Contradice\nlanguage: en\nslug: otro\n---\nTexto.\n",
				"soporte/es/coincidente.md": "---\ntitle: Coincide\ndepartment: soporte\nlanguage: es\nslug: coincidente\n---\nTexto.\n",
			},
			wants: []string{
				filepath.FromSlash("soporte/fr/article.md") + `: language "fr": want es or en`,
				filepath.FromSlash("soporte/es/muy/hondo.md") + ": not where an article goes",
				filepath.FromSlash("soporte/es/contradice.md") + `: language "en" in the front matter, but "es" in the path`,
				filepath.FromSlash("soporte/es/contradice.md") + `: slug "otro" in the front matter, but "contradice" in the path`,
			}},
		{name: "unknown department and a missing title",
			files: map[string]string{
				"nowhere/es/articulo.md":    "---\ntitle: Artículo\nstate: published\n---\nTexto.\n",
				"soporte/es/sin-titulo.md":  "---\nstate: published\n---\nTexto.\n",
				"soporte/es/coincidente.md": "---\ntitle: Coincide\ndepartment: soporte\nlanguage: es\nslug: coincidente\n---\nTexto.\n",
			},
			wants: []string{
				filepath.FromSlash("nowhere/es/articulo.md") + ": department is no department here",
				filepath.FromSlash("soporte/es/sin-titulo.md") + ": title is missing",
			}},
		{name: "a link out of the directory", files: map[string]string{}, link: "soporte/es/enlace.md",
			wants: []string{filepath.FromSlash("soporte/es/enlace.md") + ": links to " + outside + ", outside the directory"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			files := maps.Clone(c.files)
			files[good] = kbArticles[good]
			dir := writeTree(t, files)
			if c.link != "" {
				if err := os.Symlink(outside, filepath.Join(dir, filepath.FromSlash(c.link))); err != nil {
					t.Fatal(err)
				}
			}
			_, err := kb("kb", "import", dir)
			if err == nil {
				t.Fatal("import accepted")
			}
			for _, want := range c.wants {
				if !strings.Contains(err.Error(), filepath.Join(dir, want)) {
					t.Errorf("the error does not say %q:\n%v", want, err)
				}
			}
			if strings.Contains(err.Error(), filepath.FromSlash(good)) || strings.Contains(err.Error(), "coincidente") {
				t.Errorf("the error names a good file:\n%v", err)
			}
			if n := countArticles(t); n != 0 {
				t.Fatalf("%d articles imported", n)
			}
		})
	}
}

func TestKBImportDryRunWritesNothing(t *testing.T) {
	kb := kbHelpdesk(t)
	// A department the database lacks: a dry run does not look.
	tree := maps.Clone(kbArticles)
	tree["nowhere/en/page.md"] = "---\ntitle: Page\n---\nText.\n"
	dir := writeTree(t, tree)
	out, err := kb("kb", "import", dir, "--dry-run")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		filepath.Join(dir, "facturacion", "es", "como-descargar-la-factura.md") + ": Cómo descargar la factura (published)",
		filepath.Join(dir, "nowhere", "en", "page.md") + ": Page (draft)",
		"articles read: 4; nothing written",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run does not say %q:\n%s", want, out)
		}
	}
	if n := countArticles(t); n != 0 {
		t.Fatalf("a dry run imported %d articles", n)
	}
	for _, bad := range [][]string{{"kb"}, {"kb", "import"}, {"kb", "export", "a", "b"}, {"kb", "sync", dir}} {
		var u usageError
		if _, err := kb(bad...); !errors.As(err, &u) {
			t.Errorf("%v: %v, want a usage error", bad, err)
		}
	}
}
