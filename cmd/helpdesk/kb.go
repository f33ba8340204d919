package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/helpdeskgw/helpdesk/tickets"
)

// Knowledge base articles as files: DIR/<department>/<language>/<slug>.md,
// Markdown after a YAML front matter between two lines "---".

// frontMatter is the YAML at the head of an article's file. Department,
// Language and Slug come from the file's path; a file may repeat them, and
// is refused when it says otherwise.
type frontMatter struct {
	Title      string               `yaml:"title"`
	Category   string               `yaml:"category,omitempty"`
	Keywords   []string             `yaml:"keywords,omitempty,flow"`
	State      tickets.ArticleState `yaml:"state"`
	Department string               `yaml:"department,omitempty"`
	Language   string               `yaml:"language,omitempty"`
	Slug       string               `yaml:"slug,omitempty"`
}

const (
	fence     = "---"
	articleMD = ".md"
	// maxArticleFile bounds what is read of one file: the longest body the
	// store takes, and room for its front matter.
	maxArticleFile = tickets.MaxArticleBody + 64<<10
)

func cmdKB(ctx context.Context, args, environ []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError{"kb: want import or export"}
	}
	switch args[0] {
	case "import":
		return cmdKBImport(ctx, args[1:], environ, stdout)
	case "export":
		return cmdKBExport(ctx, args[1:], environ, stdout)
	}
	return usageError{fmt.Sprintf("kb %s: want import or export", args[0])}
}

// parseDirFlags parses the flags of a command that takes one directory;
// they may come before or after it.
func parseDirFlags(fs *flag.FlagSet, args []string) (string, error) {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		return "", usageError{fmt.Sprintf("%s: %v", fs.Name(), err)}
	}
	if fs.NArg() == 0 {
		return "", usageError{fs.Name() + ": want the directory"}
	}
	dir, rest := fs.Arg(0), fs.Args()[1:]
	return dir, parseFlags(fs, rest)
}

// articleFile is an article read from its file.
type articleFile struct {
	path  string
	input tickets.ArticleInput
}

func cmdKBImport(ctx context.Context, args, environ []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("kb import", flag.ContinueOnError)
	dryRun := fs.Bool("dry-run", false, "read and check the files without the database; write nothing")
	dir, err := parseDirFlags(fs, args)
	if err != nil {
		return err
	}
	files, err := readArticleTree(dir)
	if err != nil {
		return err
	}
	if *dryRun {
		for _, f := range files {
			fmt.Fprintf(stdout, "%s: %s (%s)\n", f.path, f.input.Title, stateOrDraft(f.input.State))
		}
		fmt.Fprintf(stdout, "articles read: %d; nothing written (a real import also checks the departments and each field)\n", len(files))
		return nil
	}
	inputs := make([]tickets.ArticleInput, len(files))
	for i, f := range files {
		inputs[i] = f.input
	}
	return withStore(ctx, environ, func(s *tickets.Store) error {
		res, err := s.ImportArticles(ctx, cliActor(), inputs)
		var refused tickets.ImportErrors
		if errors.As(err, &refused) {
			return refusedFiles(files, refused)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%d created, %d updated, %d unchanged\n", res.Created, res.Updated, res.Unchanged)
		return nil
	})
}

// stateOrDraft is the state an article is imported in: a file that says
// none makes a draft.
func stateOrDraft(s tickets.ArticleState) tickets.ArticleState {
	if s == "" {
		return tickets.ArticleDraft
	}
	return s
}

// problemsError reports every problem found, one per line: nothing was
// written.
func problemsError(problems []string) error {
	return fmt.Errorf("kb import: nothing imported, as these files have problems:\n  %s", strings.Join(problems, "\n  "))
}

// readArticleTree reads every article under root, or reports every file
// that cannot be read as one. Dot files and directories are skipped; a
// symbolic link is read only when it leads to a file inside root.
func readArticleTree(root string) ([]articleFile, error) {
	// Walked with its links resolved (a walk does not enter a link), named
	// as given.
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return nil, fmt.Errorf("kb import: %w", err)
	}
	if info, err := os.Stat(realRoot); err != nil || !info.IsDir() {
		return nil, fmt.Errorf("kb import: %s is not a directory", root)
	}
	var files []articleFile
	var problems []string
	err = filepath.WalkDir(realRoot, func(path string, d fs.DirEntry, err error) error {
		if path == realRoot {
			return err
		}
		rel, relErr := filepath.Rel(realRoot, path)
		if relErr != nil {
			return relErr
		}
		shown := filepath.Join(root, rel)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", shown, err))
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			if err := checkLink(realRoot, path); err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", shown, err))
				return nil
			}
		} else if d.IsDir() {
			return nil
		}
		if !strings.HasSuffix(d.Name(), articleMD) {
			return nil
		}
		in, bad := readArticleFile(path, shown, rel)
		problems = append(problems, bad...)
		if len(bad) == 0 {
			files = append(files, articleFile{path: shown, input: in})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("kb import: %w", err)
	}
	if len(problems) > 0 {
		return nil, problemsError(problems)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("kb import: no articles in %s: want files DEPARTMENT/LANGUAGE/SLUG.md", root)
	}
	return files, nil
}

// checkLink accepts a symbolic link in the tree that leads to a file
// inside it (realRoot, links resolved).
func checkLink(realRoot, path string) error {
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		return fmt.Errorf("broken link: %w", err)
	}
	if rel, err := filepath.Rel(realRoot, target); err != nil || !filepath.IsLocal(rel) {
		return fmt.Errorf("links to %s, outside the directory", target)
	}
	info, err := os.Stat(target)
	if err != nil {
		return err
	}
	if info.IsDir() {
		return errors.New("links to a directory, which is not followed")
	}
	return nil
}

// readArticleFile reads the article at path, rel inside the tree; when it
// cannot, it says why, each problem a line naming the file as shown (and
// the line, when known).
func readArticleFile(path, shown, rel string) (tickets.ArticleInput, []string) {
	parts := strings.Split(filepath.ToSlash(rel), "/")
	if len(parts) != 3 {
		return tickets.ArticleInput{}, []string{shown + ": not where an article goes: want DEPARTMENT/LANGUAGE/SLUG.md"}
	}
	in := tickets.ArticleInput{Department: parts[0], Language: parts[1], Slug: strings.TrimSuffix(parts[2], articleMD)}
	src, err := readLimited(path, maxArticleFile)
	if err != nil {
		return in, []string{fmt.Sprintf("%s: %v", shown, err)}
	}
	if !utf8.Valid(src) {
		return in, []string{shown + ": not UTF-8 text"}
	}
	front, body, ok := splitFrontMatter(string(src))
	if !ok {
		return in, []string{shown + ":1: no front matter: the file must begin with a line --- and the front matter end with another"}
	}
	var fm frontMatter
	dec := yaml.NewDecoder(strings.NewReader(front))
	dec.KnownFields(true)
	if err := dec.Decode(&fm); err != nil && !errors.Is(err, io.EOF) {
		return in, yamlProblems(shown, err)
	}
	var problems []string
	for _, c := range []struct{ field, inFile, inPath string }{
		{"department", fm.Department, in.Department},
		{"language", fm.Language, in.Language},
		{"slug", fm.Slug, in.Slug},
	} {
		if c.inFile != "" && c.inFile != c.inPath {
			problems = append(problems, fmt.Sprintf("%s: %s %q in the front matter, but %q in the path", shown, c.field, c.inFile, c.inPath))
		}
	}
	if !tickets.ValidLocale(in.Language) {
		problems = append(problems, fmt.Sprintf("%s: language %q: want es or en", shown, in.Language))
	}
	in.Title, in.Category, in.Keywords, in.State, in.Body = fm.Title, fm.Category, fm.Keywords, fm.State, body
	return in, problems
}

// readLimited reads a file, refusing one longer than limit bytes.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("longer than %d bytes", limit)
	}
	return b, nil
}

// splitFrontMatter cuts src, which begins with a line "---", into the YAML
// up to the next such line and the body after it.
func splitFrontMatter(src string) (front, body string, ok bool) {
	first, rest, _ := strings.Cut(strings.TrimPrefix(src, "\ufeff"), "\n")
	if strings.TrimRight(first, " \t\r") != fence {
		return "", "", false
	}
	for end := 0; end <= len(rest); {
		line, _, more := strings.Cut(rest[end:], "\n")
		if strings.TrimRight(line, " \t\r") == fence {
			after := min(end+len(line)+1, len(rest))
			return rest[:end], rest[after:], true
		}
		if !more {
			break
		}
		end += len(line) + 1
	}
	return "", "", false
}

var (
	yamlLine    = regexp.MustCompile(`^line (\d+): `)
	yamlUnknown = regexp.MustCompile(`^field (\S+) not found in type \S+$`)
)

const frontMatterFields = "title, category, keywords, state, department, language, slug"

// yamlProblems words a YAML error about the front matter of the file at
// path, with the file's line numbers (the front matter starts on line 2).
func yamlProblems(path string, err error) []string {
	msgs := []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	out := make([]string, len(msgs))
	for i, msg := range msgs {
		where := path + ": front matter"
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			n, _ := strconv.Atoi(m[1]) //nolint:errcheck // the pattern matched digits
			where, msg = fmt.Sprintf("%s:%d", path, n+1), msg[len(m[0]):]
		}
		if m := yamlUnknown.FindStringSubmatch(msg); m != nil {
			msg = fmt.Sprintf("unknown field %s (the fields are %s)", m[1], frontMatterFields)
		}
		out[i] = where + ": " + msg
	}
	return out
}

// problemWords says in words what each of the store's FieldErrors about an
// article means.
var problemWords = map[string]string{
	tickets.FieldRequired:   "is missing",
	tickets.FieldTooLong:    "is too long",
	tickets.FieldDepartment: "is no department here (see helpdesk department list)",
	tickets.FieldSlug: fmt.Sprintf("must be lower-case letters and digits, in words joined by single hyphens, at most %d characters",
		tickets.MaxArticleSlug),
	tickets.FieldSlugTaken: "is taken by another article",
	tickets.FieldLanguage:  "must be es or en",
	tickets.FieldState:     "must be draft or published",
	tickets.FieldKeywords: fmt.Sprintf("must be at most %d, each at most %d characters",
		tickets.MaxArticleKeywords, tickets.MaxArticleKeyword),
}

// refusedFiles names the file of each article the store refused, and why.
func refusedFiles(files []articleFile, refused tickets.ImportErrors) error {
	var problems []string
	for _, r := range refused {
		path := files[r.Index].path
		var fe tickets.FieldErrors
		if !errors.As(r.Err, &fe) {
			problems = append(problems, fmt.Sprintf("%s: %v", path, r.Err))
			continue
		}
		fields := make([]string, 0, len(fe))
		for f := range fe {
			fields = append(fields, f)
		}
		slices.Sort(fields)
		for _, f := range fields {
			words, ok := problemWords[fe[f]]
			if !ok {
				words = fe[f]
			}
			problems = append(problems, fmt.Sprintf("%s: %s %s", path, f, words))
		}
	}
	return problemsError(problems)
}

func cmdKBExport(ctx context.Context, args, environ []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("kb export", flag.ContinueOnError)
	force := fs.Bool("force", false, "replace the files already there")
	dir, err := parseDirFlags(fs, args)
	if err != nil {
		return err
	}
	return withStore(ctx, environ, func(s *tickets.Store) error {
		list, err := s.AllArticles(ctx)
		if err != nil {
			return err
		}
		paths := make([]string, len(list))
		for i, a := range list {
			rel := filepath.Join(a.Department.Slug, a.Language, a.Slug+articleMD)
			if !filepath.IsLocal(rel) {
				return fmt.Errorf("kb export: article %d: %q is no path inside the directory", a.ID, rel)
			}
			paths[i] = filepath.Join(dir, rel)
		}
		if !*force {
			if err := refuseOverwrite(paths); err != nil {
				return err
			}
		}
		for i, a := range list {
			if err := writeArticleFile(paths[i], a); err != nil {
				return fmt.Errorf("kb export: %w", err)
			}
		}
		fmt.Fprintf(stdout, "articles written to %s: %d\n", dir, len(list))
		return nil
	})
}

// refuseOverwrite fails, naming them, when any of paths exists.
func refuseOverwrite(paths []string) error {
	const named = 10
	var taken []string
	for _, p := range paths {
		if _, err := os.Lstat(p); err == nil {
			taken = append(taken, p)
		}
	}
	if len(taken) == 0 {
		return nil
	}
	count, more := len(taken), ""
	if len(taken) > named {
		more = fmt.Sprintf("\n  and %d more", len(taken)-named)
		taken = taken[:named]
	}
	return fmt.Errorf("kb export: nothing written, as files are there already (--force replaces them): %d of %d:\n  %s%s",
		count, len(paths), strings.Join(taken, "\n  "), more)
}

// articleFileContent is an article as its file holds it.
func articleFileContent(a tickets.Article) ([]byte, error) {
	fm, err := yaml.Marshal(frontMatter{Title: a.Title, Category: a.Category, Keywords: a.Keywords, State: a.State})
	if err != nil {
		return nil, fmt.Errorf("front matter of article %d: %w", a.ID, err)
	}
	var b bytes.Buffer
	b.WriteString(fence + "\n")
	b.Write(fm)
	b.WriteString(fence + "\n")
	b.WriteString(a.Body)
	b.WriteString("\n")
	return b.Bytes(), nil
}

// writeArticleFile writes an article's file whole or not at all: a temporary
// file in the same directory, renamed over the path once written. Its
// name is a dot file's, which an import skips.
func writeArticleFile(path string, a tickets.Article) error {
	data, err := articleFileContent(a)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	err = errors.Join(writeAll(f, data), f.Close())
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp) //nolint:errcheck // the write failed already; this only tidies up
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// writeAll writes data to f, readable by all, and flushes it to disk, so
// that the rename publishes a complete file.
func writeAll(f *os.File, data []byte) error {
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	return f.Sync()
}
