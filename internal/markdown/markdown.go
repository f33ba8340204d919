// Package markdown turns the knowledge base's Markdown into safe HTML and
// into plain text for search and excerpts.
package markdown

import (
	"bytes"
	"fmt"
	"html/template"
	"strings"
	"unicode/utf8"

	"github.com/microcosm-cc/bluemonday"
	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	east "github.com/yuin/goldmark/extension/ast"
	"github.com/yuin/goldmark/parser"
	"github.com/yuin/goldmark/text"
)

// md renders CommonMark with GitHub's tables, strikethrough, task lists and
// bare links. Raw HTML in the source is left out by goldmark (it is not
// configured unsafe); the policy below cleans what is rendered anyway, so
// that a link to javascript: or a future renderer change cannot reach a
// page.
var md = goldmark.New(
	goldmark.WithExtensions(extension.GFM),
	goldmark.WithParserOptions(parser.WithAutoHeadingID()),
)

// headingIDs names headings "h-" and their words, so that an article's
// headings never take the ID of an element of the page around it.
type headingIDs map[string]bool

func (ids headingIDs) Generate(value []byte, _ ast.NodeKind) []byte {
	base := "h"
	if slug := Slug(string(value), 60); slug != "" {
		base += "-" + slug
	}
	id := base
	for n := 1; ids[id]; n++ {
		id = fmt.Sprintf("%s-%d", base, n)
	}
	ids[id] = true
	return []byte(id)
}

func (ids headingIDs) Put(value []byte) { ids[string(value)] = true }

var policy = func() *bluemonday.Policy {
	p := bluemonday.UGCPolicy()
	p.AllowAttrs("id").Matching(bluemonday.SpaceSeparatedTokens).OnElements("h1", "h2", "h3", "h4", "h5", "h6")
	p.AllowAttrs("checked", "disabled").OnElements("input")
	p.AllowAttrs("type").Matching(bluemonday.SpaceSeparatedTokens).OnElements("input")
	p.RequireNoReferrerOnLinks(true)
	p.AddTargetBlankToFullyQualifiedLinks(true)
	return p
}()

// HTML renders source as sanitized HTML.
func HTML(source string) (template.HTML, error) {
	var buf bytes.Buffer
	ctx := parser.NewContext(parser.WithIDs(headingIDs{}))
	if err := md.Convert([]byte(source), &buf, parser.WithContext(ctx)); err != nil {
		return "", fmt.Errorf("render markdown: %w", err)
	}
	return template.HTML(policy.SanitizeBytes(buf.Bytes())), //nolint:gosec // sanitized just now
		nil
}

// Text is source's readable text: headings, paragraphs, list items and
// table cells on lines of their own, without Markdown's marks, link
// targets or HTML.
func Text(source string) string {
	src := []byte(source)
	doc := md.Parser().Parse(text.NewReader(src))
	var out strings.Builder
	ast.Walk(doc, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		switch n := n.(type) {
		case *ast.Text:
			if entering {
				out.Write(n.Segment.Value(src))
				if n.SoftLineBreak() || n.HardLineBreak() {
					out.WriteByte(' ')
				}
			}
		case *ast.String:
			if entering {
				out.Write(n.Value)
			}
		case *ast.CodeBlock, *ast.FencedCodeBlock:
			if entering {
				lines := n.Lines()
				for i := range lines.Len() {
					seg := lines.At(i)
					out.Write(seg.Value(src))
				}
			}
		case *ast.HTMLBlock, *ast.RawHTML:
			return ast.WalkSkipChildren, nil
		}
		if !entering {
			switch {
			case n.Kind() == east.KindTableCell:
				out.WriteByte(' ')
			case n.Type() == ast.TypeBlock:
				out.WriteByte('\n')
			}
		}
		return ast.WalkContinue, nil
	})
	lines := strings.Split(out.String(), "\n")
	kept := lines[:0]
	for _, l := range lines {
		if l = strings.Join(strings.Fields(l), " "); l != "" {
			kept = append(kept, l)
		}
	}
	return strings.Join(kept, "\n")
}

// Slug makes a slug of s, at most max bytes: lower-case ASCII words joined
// by hyphens, accents dropped ("Cómo pagar" → "como-pagar").
func Slug(s string, max int) string {
	var b strings.Builder
	hyphen := false
	for _, r := range strings.ToLower(s) {
		r = foldAccent(r)
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			hyphen = true
			continue
		}
		if b.Len()+2 > max {
			break
		}
		if hyphen && b.Len() > 0 {
			b.WriteByte('-')
		}
		hyphen = false
		b.WriteRune(r)
	}
	return b.String()
}

// foldAccent maps the accented letters of Spanish and its neighbours to
// their base letter.
func foldAccent(r rune) rune {
	const from, to = "áàâäãåéèêëíìîïóòôöõúùûüñçý", "aaaaaaeeeeiiiiooooouuuuncy"
	if i := strings.IndexRune(from, r); i >= 0 {
		return []rune(to)[utf8.RuneCountInString(from[:i])]
	}
	return r
}
