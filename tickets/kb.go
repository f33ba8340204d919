package tickets

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/helpdeskgw/helpdesk/internal/markdown"
)

// ArticleState says whether customers see an article.
type ArticleState string

// Article states.
const (
	ArticleDraft     ArticleState = "draft"
	ArticlePublished ArticleState = "published"
)

// Message keys of an article's FieldErrors, besides the Field* ones.
const (
	FieldSlug      = "kb.error.slug"
	FieldSlugTaken = "kb.error.slug_taken"
	FieldLanguage  = "kb.error.language"
	FieldState     = "kb.error.state"
	FieldKeywords  = "kb.error.keywords"
)

// Knowledge base limits.
const (
	MaxArticleTitle    = 200
	MaxArticleSlug     = 100
	MaxArticleCategory = 100
	MaxArticleBody     = 200000
	MaxArticleKeywords = 30
	MaxArticleKeyword  = 60
)

// Article is one knowledge base article.
type Article struct {
	ID         int64
	Department Department
	Language   string
	Slug       string
	Title      string
	Category   string
	Keywords   []string
	// Body is the Markdown source; BodyText its readable text.
	Body      string
	BodyText  string
	State     ArticleState
	CreatedAt time.Time
	UpdatedAt time.Time
	UpdatedBy string
}

// Path is the article's public page.
func (a Article) Path() string {
	return "/kb/" + a.Department.Slug + "/" + a.Language + "/" + a.Slug
}

// Excerpt is the beginning of the article's text, cut at a word.
func (a Article) Excerpt() string { return excerpt(a.BodyText, 200) }

func excerpt(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	runes := []rune(s)[:max]
	if i := strings.LastIndexByte(string(runes), ' '); i > max/2 {
		return string(runes)[:i] + " …"
	}
	return string(runes) + "…"
}

// ArticleInput is an article as the staff write it (on the staff page or
// as a file to import). Department is the department's slug.
type ArticleInput struct {
	Department string
	Language   string
	Slug       string
	Title      string
	Category   string
	Keywords   []string
	Body       string
	State      ArticleState
}

var articleSlug = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// Slugify makes a slug of a title: lower case ASCII words joined by
// hyphens, accents dropped ("Cómo pagar" → "como-pagar").
func Slugify(title string) string { return markdown.Slug(title, MaxArticleSlug) }

// normalize cleans in and checks it, naming what is wrong field by field.
func (in *ArticleInput) normalize() FieldErrors {
	errs := FieldErrors{}
	in.Title = oneLine(strings.TrimSpace(in.Title), 10*MaxArticleTitle)
	in.Category = oneLine(strings.TrimSpace(in.Category), 10*MaxArticleCategory)
	in.Slug = strings.TrimSpace(in.Slug)
	if in.Slug == "" {
		in.Slug = Slugify(in.Title)
	}
	in.Body = strings.ReplaceAll(strings.TrimSpace(in.Body), "\r\n", "\n")
	if in.State == "" {
		in.State = ArticleDraft
	}
	words := []string{}
	for _, k := range in.Keywords {
		for _, w := range strings.Split(k, ",") {
			if w = strings.TrimSpace(oneLine(w, 10*MaxArticleKeyword)); w != "" && !slices.Contains(words, w) {
				words = append(words, w)
			}
		}
	}
	in.Keywords = words
	switch {
	case in.Title == "":
		errs["title"] = FieldRequired
	case utf8.RuneCountInString(in.Title) > MaxArticleTitle:
		errs["title"] = FieldTooLong
	}
	if utf8.RuneCountInString(in.Category) > MaxArticleCategory {
		errs["category"] = FieldTooLong
	}
	if !articleSlug.MatchString(in.Slug) || len(in.Slug) > MaxArticleSlug {
		errs["slug"] = FieldSlug
	}
	if !ValidLocale(in.Language) {
		errs["language"] = FieldLanguage
	}
	if in.State != ArticleDraft && in.State != ArticlePublished {
		errs["state"] = FieldState
	}
	switch {
	case in.Body == "":
		errs["body"] = FieldRequired
	case len(in.Body) > MaxArticleBody:
		errs["body"] = FieldTooLong
	}
	if len(in.Keywords) > MaxArticleKeywords {
		errs["keywords"] = FieldKeywords
	}
	for _, w := range in.Keywords {
		if utf8.RuneCountInString(w) > MaxArticleKeyword {
			errs["keywords"] = FieldKeywords
		}
	}
	if in.Department == "" {
		errs["department"] = FieldRequired
	}
	return errs
}

const articleColumns = `a.id, a.language, a.slug, a.title, a.category, a.keywords, a.body_md, a.body_text, a.state,
	a.created_at, a.updated_at, a.updated_by, d.id, d.slug, d.name, d.address, d.locale, d.created_at`

const articleFrom = `kb_articles a JOIN departments d ON d.id = a.department_id`

func articleDest(a *Article) []any {
	return []any{&a.ID, &a.Language, &a.Slug, &a.Title, &a.Category, &a.Keywords, &a.Body, &a.BodyText, &a.State,
		&a.CreatedAt, &a.UpdatedAt, &a.UpdatedBy, &a.Department.ID, &a.Department.Slug, &a.Department.Name,
		&a.Department.Address, &a.Department.Locale, &a.Department.CreatedAt}
}

func (s *Store) articles(ctx context.Context, q string, args ...any) ([]Article, error) {
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Article, error) {
		var a Article
		err := r.Scan(articleDest(&a)...)
		return a, err
	})
}

func (s *Store) article(ctx context.Context, where string, args ...any) (Article, error) {
	list, err := s.articles(ctx, `SELECT `+articleColumns+` FROM `+articleFrom+` WHERE `+where, args...)
	if err != nil {
		return Article{}, err
	}
	if len(list) == 0 {
		return Article{}, ErrNotFound
	}
	return list[0], nil
}

// SaveArticle writes an article: a new one when id is 0 (its slug taken
// is a FieldErrors). The agent must work the article's department (its
// old one too, when it moves).
func (s *Store) SaveArticle(ctx context.Context, a Agent, id int64, in ArticleInput) (Article, error) {
	var saved Article
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		saved, _, err = saveArticle(ctx, tx, a.Actor(), a.Sees, id, in, false)
		return err
	})
	if err != nil {
		return Article{}, fmt.Errorf("save article %q: %w", in.Title, err)
	}
	return saved, nil
}

// saveOutcome is what saving an article did.
type saveOutcome int

const (
	articleUnchanged saveOutcome = iota
	articleCreated
	articleUpdated
)

// saveArticle writes one article in tx for actor, who may write articles
// of the departments sees accepts. id 0 writes a new article, or with
// upsert the article with in's department, language and slug, new or not.
func saveArticle(ctx context.Context, tx pgx.Tx, actor string, sees func(int64) bool, id int64, in ArticleInput, upsert bool) (Article, saveOutcome, error) {
	errs := in.normalize()
	var dept Department
	if _, ok := errs["department"]; !ok {
		err := tx.QueryRow(ctx, `SELECT id, slug, name, address, locale, created_at FROM departments WHERE slug = $1`, in.Department).
			Scan(&dept.ID, &dept.Slug, &dept.Name, &dept.Address, &dept.Locale, &dept.CreatedAt)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			errs["department"] = FieldDepartment
		case err != nil:
			return Article{}, articleUnchanged, fmt.Errorf("read department: %w", err)
		case !sees(dept.ID):
			errs["department"] = FieldDepartment
		}
	}
	if len(errs) > 0 {
		return Article{}, articleUnchanged, errs
	}
	if id != 0 {
		var oldDept int64
		err := tx.QueryRow(ctx, `SELECT department_id FROM kb_articles WHERE id = $1 FOR UPDATE`, id).Scan(&oldDept)
		if errors.Is(err, pgx.ErrNoRows) || err == nil && !sees(oldDept) {
			return Article{}, articleUnchanged, ErrNotFound
		}
		if err != nil {
			return Article{}, articleUnchanged, err
		}
	}
	bodyText := markdown.Text(in.Body)
	var saved Article
	var updated, created bool
	// An unchanged article is not written: its dates and search vector stay.
	err := tx.QueryRow(ctx, `
		WITH target AS (
			SELECT id FROM kb_articles
			WHERE CASE WHEN $1::bigint <> 0 THEN id = $1 ELSE $12 AND (department_id, language, slug) = ($2, $3, $4) END
		), upd AS (
			UPDATE kb_articles a SET department_id = $2, language = $3, slug = $4, title = $5, category = $6,
			       keywords = $7, body_md = $8, body_text = $9, state = $10, updated_at = now(), updated_by = $11
			FROM target
			WHERE a.id = target.id
			  AND (a.department_id, a.language, a.slug, a.title, a.category, a.keywords, a.body_md, a.state)
			      IS DISTINCT FROM ($2, $3, $4, $5, $6, $7, $8, $10)
			RETURNING a.id
		), ins AS (
			INSERT INTO kb_articles (department_id, language, slug, title, category, keywords, body_md, body_text, state, updated_by)
			SELECT $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 WHERE NOT EXISTS (SELECT 1 FROM target)
			RETURNING id
		)
		SELECT coalesce((SELECT id FROM upd), (SELECT id FROM ins), (SELECT id FROM target)),
		       EXISTS (SELECT 1 FROM upd), EXISTS (SELECT 1 FROM ins)`,
		id, dept.ID, in.Language, in.Slug, in.Title, in.Category, in.Keywords, in.Body, bodyText, in.State, actor, upsert).
		Scan(&saved.ID, &updated, &created)
	var pgErr interface{ SQLState() string }
	if errors.As(err, &pgErr) && pgErr.SQLState() == "23505" {
		return Article{}, articleUnchanged, FieldErrors{"slug": FieldSlugTaken}
	}
	if err != nil {
		return Article{}, articleUnchanged, err
	}
	outcome := articleUnchanged
	switch {
	case created:
		outcome = articleCreated
	case updated:
		outcome = articleUpdated
	}
	if outcome != articleUnchanged {
		if err := audit(ctx, tx, actor, "kb.save", fmt.Sprintf("article %d", saved.ID),
			fmt.Sprintf("%s/%s/%s %s", dept.Slug, in.Language, in.Slug, in.State)); err != nil {
			return Article{}, articleUnchanged, err
		}
	}
	saved = Article{ID: saved.ID, Department: dept, Language: in.Language, Slug: in.Slug, Title: in.Title,
		Category: in.Category, Keywords: in.Keywords, Body: in.Body, BodyText: bodyText, State: in.State}
	return saved, outcome, nil
}

// DeleteArticle removes an article of one of the agent's departments.
func (s *Store) DeleteArticle(ctx context.Context, a Agent, id int64) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var dept int64
		var path string
		err := tx.QueryRow(ctx, `
			DELETE FROM kb_articles a USING departments d WHERE a.id = $1 AND d.id = a.department_id
			RETURNING a.department_id, d.slug || '/' || a.language || '/' || a.slug`, id).Scan(&dept, &path)
		if errors.Is(err, pgx.ErrNoRows) || err == nil && !a.Sees(dept) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		return audit(ctx, tx, a.Actor(), "kb.delete", fmt.Sprintf("article %d", id), path)
	})
	if err != nil {
		return fmt.Errorf("delete article %d: %w", id, err)
	}
	return nil
}

// StaffArticle is an article of one of the agent's departments, in any
// state.
func (s *Store) StaffArticle(ctx context.Context, a Agent, id int64) (Article, error) {
	art, err := s.article(ctx, `a.id = $1`, id)
	if err == nil && !a.Sees(art.Department.ID) {
		err = ErrNotFound
	}
	if err != nil {
		return Article{}, fmt.Errorf("article %d: %w", id, err)
	}
	return art, nil
}

// PublishedArticle is the article customers reach at its path.
func (s *Store) PublishedArticle(ctx context.Context, department, language, slug string) (Article, error) {
	art, err := s.article(ctx, `d.slug = $1 AND a.language = $2 AND a.slug = $3 AND a.state = 'published'`,
		department, language, slug)
	if err != nil {
		return Article{}, fmt.Errorf("article %s/%s/%s: %w", department, language, slug, err)
	}
	return art, nil
}

// PublishedArticles lists the published articles in a language, by
// department, category and title.
func (s *Store) PublishedArticles(ctx context.Context, language string) ([]Article, error) {
	list, err := s.articles(ctx, `SELECT `+articleColumns+` FROM `+articleFrom+`
		WHERE a.state = 'published' AND a.language = $1
		ORDER BY d.name, d.id, a.category, a.title, a.id`, language)
	if err != nil {
		return nil, fmt.Errorf("list articles: %w", err)
	}
	return list, nil
}

// AllArticles lists every article, in any state, for export.
func (s *Store) AllArticles(ctx context.Context) ([]Article, error) {
	list, err := s.articles(ctx, `SELECT `+articleColumns+` FROM `+articleFrom+` ORDER BY d.slug, a.language, a.slug`)
	if err != nil {
		return nil, fmt.Errorf("list articles: %w", err)
	}
	return list, nil
}

// ArticleHit is an article a search found. Excerpt is the part of its
// text around the words found, with them between Marks.
type ArticleHit struct {
	Article
	Excerpt string
	Rank    float64
}

// Excerpt marks: the words a search found are between them in a hit's
// Excerpt. They are control characters, which no article text holds.
const (
	MarkStart = "\x02"
	MarkEnd   = "\x03"
)

// SearchArticles finds published articles with every word of query (as
// a search box reads it: "quoted phrases", -excluded, or), stemmed in the
// article's language and without regard to accents, the best first, those
// in language before the others. When no article has every word, it finds
// those with the most of them.
func (s *Store) SearchArticles(ctx context.Context, query, language string, limit int) ([]ArticleHit, error) {
	query = strings.TrimSpace(oneLine(query, 500))
	if query == "" {
		return nil, nil
	}
	hits, err := s.searchArticles(ctx, articleSearch, query, language, 0, limit)
	if err == nil && len(hits) == 0 {
		hits, err = s.SuggestArticles(ctx, query, language, "", limit)
	}
	if err != nil {
		return nil, fmt.Errorf("search articles for %q: %w", query, err)
	}
	return hits, nil
}

// SuggestArticles finds published articles whose title or keywords hold
// any word of text (the last one also as the beginning of a word, when
// text does not end in a space: it may be still being typed), the best
// first; articles in language and in the department (a slug; "" for any)
// count for more.
func (s *Store) SuggestArticles(ctx context.Context, text, language, department string, limit int) ([]ArticleHit, error) {
	return s.findSuggestions(ctx, articleSuggestion, text, language, department, limit)
}

func (s *Store) findSuggestions(ctx context.Context, how articleQuery, text, language, department string, limit int) ([]ArticleHit, error) {
	terms := suggestTerms(text, how.words)
	if terms == "" {
		return nil, nil
	}
	var deptID int64
	if department != "" {
		if err := s.pool.QueryRow(ctx, `SELECT coalesce((SELECT id FROM departments WHERE slug = $1), 0)`, department).Scan(&deptID); err != nil {
			return nil, fmt.Errorf("suggest articles: %w", err)
		}
	}
	hits, err := s.searchArticles(ctx, how, terms, language, deptID, limit)
	if err != nil {
		return nil, fmt.Errorf("suggest articles for %q: %w", text, err)
	}
	return hits, nil
}

// articleQuery is a way searchArticles looks for articles.
type articleQuery struct {
	// vector is the column matched: search (everything) or suggest
	// (titles and keywords).
	vector string
	// queries makes its argument $1 into a query in Spanish and one in
	// English.
	queries string
	// excerpts: whether hits come with an excerpt of their text, marked.
	excerpts bool
	// words is how many words of a text suggestions look for at most.
	words int
}

var (
	// articleSearch is what a customer searches for.
	articleSearch = articleQuery{vector: "search", excerpts: true, queries: bothQueries("websearch_to_tsquery")}
	// articleSuggestion is what suggestTerms makes of a subject.
	articleSuggestion = articleQuery{vector: "suggest", excerpts: true, words: 40, queries: bothQueries("to_tsquery")}
	// ticketPick is articleSuggestion for a ticket, whose pick keeps only
	// the articles, and looks for its subject and its message's first
	// words: each word more costs every candidate's ranking, and they are
	// what the customer put first.
	ticketPick = articleQuery{vector: articleSuggestion.vector, words: 20, queries: articleSuggestion.queries}
)

// bothQueries makes $1 into a query in Spanish and one in English with
// parse, each matching words as written and without accents; where the two
// are the same (nothing to unaccent), once, as each term costs every
// candidate's ranking.
func bothQueries(parse string) string {
	return `SELECT CASE WHEN es = es_folded THEN es ELSE es || es_folded END,
	               CASE WHEN en = en_folded THEN en ELSE en || en_folded END
	        FROM (SELECT ` + parse + `('pg_catalog.spanish', $1) AS es, ` + parse + `('kb_spanish', $1) AS es_folded,
	                     ` + parse + `('pg_catalog.english', $1) AS en, ` + parse + `('kb_english', $1) AS en_folded) AS parsed`
}

// suggestTerms makes text into a tsquery source matching any of its words:
// "word | word2 | wor:*". Words are letters and digits only, so nothing in
// them is query syntax.
func suggestTerms(text string, maxWords int) string {
	var words []string
	seen := map[string]bool{}
	for _, w := range strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	}) {
		if utf8.RuneCountInString(w) < 2 || utf8.RuneCountInString(w) > 40 || seen[w] {
			continue
		}
		seen[w] = true
		words = append(words, w)
		if len(words) == maxWords {
			break
		}
	}
	if len(words) == 0 {
		return ""
	}
	typing := len(words) < maxWords && text != "" && !unicode.IsSpace(rune(text[len(text)-1])) &&
		strings.HasSuffix(strings.ToLower(text), words[len(words)-1])
	if last := words[len(words)-1]; typing && utf8.RuneCountInString(last) >= 3 {
		words[len(words)-1] = last + ":*"
	}
	return strings.Join(words, " | ")
}

// searchArticles looks for published articles as how says, with its
// queries of arg.
func (s *Store) searchArticles(ctx context.Context, how articleQuery, arg, language string, deptID int64, limit int) ([]ArticleHit, error) {
	if limit <= 0 {
		limit = 20
	}
	excerpt := `''`
	if how.excerpts {
		excerpt = `ts_headline(CASE a.language WHEN 'es' THEN 'kb_spanish' ELSE 'kb_english' END::regconfig,
		                   a.body_text, f.query,
		                   'StartSel=` + MarkStart + `, StopSel=` + MarkEnd + `, MaxWords=30, MinWords=12, MaxFragments=2, FragmentDelimiter=" … "')`
	}
	rows, err := s.pool.Query(ctx, `
		WITH q (es, en) AS (`+how.queries+`),
		-- One branch per language: a.search @@ (a query chosen per row)
		-- could not use the index.
		lq (language, query) AS (SELECT 'es', es FROM q UNION ALL SELECT 'en', en FROM q),
		-- The best, ordered and cut before the texts are read: a common
		-- word matches hundreds.
		found AS (
			SELECT a.id, lq.query, a.language = $2 AS own, a.title,
			       ts_rank(a.`+how.vector+`, lq.query) * CASE WHEN a.department_id = $4 THEN 2 ELSE 1 END AS rank
			FROM lq JOIN kb_articles a ON a.`+how.vector+` @@ lq.query AND a.language = lq.language
			WHERE a.state = 'published'
			ORDER BY own DESC, rank DESC, a.title, a.id
			LIMIT $3
		)
		SELECT `+articleColumns+`, f.rank, `+excerpt+`
		FROM found f JOIN kb_articles a ON a.id = f.id JOIN departments d ON d.id = a.department_id
		ORDER BY f.own DESC, f.rank DESC, f.title, f.id`, arg, language, limit, deptID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (ArticleHit, error) {
		var h ArticleHit
		err := r.Scan(append(articleDest(&h.Article), &h.Rank, &h.Excerpt)...)
		return h, err
	})
}

// ticketArticles is how many articles are picked for a ticket.
const ticketArticles = 3

// ArticlesForTicket lists up to limit (at most three) published articles
// in the ticket's language that may answer it. They are picked once, by
// its subject and first message, those of its department first, and
// counted as suggested then; later calls list the same ones (those still
// published), without searching again.
func (s *Store) ArticlesForTicket(ctx context.Context, ticketID int64, limit int) ([]ArticleHit, error) {
	const picked = `SELECT ` + articleColumns + ` FROM tickets t
		CROSS JOIN LATERAL unnest(t.suggested_articles) WITH ORDINALITY AS p (id, n)
		JOIN kb_articles a ON a.id = p.id JOIN departments d ON d.id = a.department_id
		WHERE t.id = $1 AND p.n <= $2 AND a.state = 'published' AND a.language = t.locale
		ORDER BY p.n`
	limit = min(max(limit, 0), ticketArticles)
	list, err := s.articles(ctx, picked, ticketID, limit)
	if err == nil && len(list) == 0 {
		// None picked yet, none found, or none still published.
		var done bool
		err = s.pool.QueryRow(ctx, `SELECT suggested_articles IS NOT NULL FROM tickets WHERE id = $1`, ticketID).Scan(&done)
		if errors.Is(err, pgx.ErrNoRows) {
			err = ErrNotFound
		}
		if err == nil && !done {
			var ids []int64
			if ids, err = s.pickArticles(ctx, ticketID); err == nil && len(ids) > 0 {
				list, err = s.articles(ctx, picked, ticketID, limit)
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("articles for ticket %d: %w", ticketID, err)
	}
	hits := make([]ArticleHit, len(list))
	for i, a := range list {
		hits[i] = ArticleHit{Article: a}
	}
	return hits, nil
}

// pickArticles searches the articles for a ticket and records them (none
// found is recorded too), counting them as suggested; when another pick
// was recorded meanwhile, that one stands.
func (s *Store) pickArticles(ctx context.Context, ticketID int64) ([]int64, error) {
	var subject, body, locale, dept string
	err := s.pool.QueryRow(ctx, `
		SELECT t.subject, coalesce((SELECT left(m.body_text, 500) FROM messages m
		                            WHERE m.ticket_id = t.id ORDER BY m.id LIMIT 1), ''), t.locale, d.slug
		FROM tickets t JOIN departments d ON d.id = t.department_id WHERE t.id = $1`, ticketID).
		Scan(&subject, &body, &locale, &dept)
	if err != nil {
		return nil, err
	}
	hits, err := s.findSuggestions(ctx, ticketPick, subject+" "+body+" ", locale, dept, 2*ticketArticles)
	if err != nil {
		return nil, err
	}
	// Only those in the ticket's language: the customer reads them beside
	// mail and pages in it.
	picked := []int64{}
	for _, h := range hits {
		if h.Language == locale && len(picked) < ticketArticles {
			picked = append(picked, h.ID)
		}
	}
	var recorded []int64
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// A pick lost in a crash is made again when next asked for.
		if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit = off`); err != nil {
			return err
		}
		err := tx.QueryRow(ctx, `
			UPDATE tickets SET suggested_articles = $2 WHERE id = $1 AND suggested_articles IS NULL
			RETURNING suggested_articles`, ticketID, picked).Scan(&recorded)
		if errors.Is(err, pgx.ErrNoRows) {
			return tx.QueryRow(ctx, `SELECT suggested_articles FROM tickets WHERE id = $1`, ticketID).Scan(&recorded)
		}
		if err != nil || len(picked) == 0 {
			return err
		}
		return countArticles(ctx, tx, EventSuggested, picked)
	})
	return recorded, err
}

// ArticleEvent is what is counted of an article.
type ArticleEvent string

// Counted events.
const (
	// EventSuggested: listed to a customer before or with a ticket.
	EventSuggested ArticleEvent = "suggested"
	// EventOpened: opened from such a list.
	EventOpened ArticleEvent = "opened"
	// EventHelpful: its reader said it answered them, no ticket needed.
	EventHelpful ArticleEvent = "helpful"
	// EventResolved is counted by ResolveByArticle.
	EventResolved ArticleEvent = "resolved"
)

// CountArticles adds one event to each published article of ids (up to
// ten; others are ignored, as are unknown ones).
func (s *Store) CountArticles(ctx context.Context, event ArticleEvent, ids []int64) error {
	if len(ids) > 10 {
		ids = ids[:10]
	}
	if len(ids) == 0 {
		return nil
	}
	if err := countArticles(ctx, s.pool, event, ids); err != nil {
		return fmt.Errorf("count articles %s: %w", event, err)
	}
	return nil
}

func countArticles(ctx context.Context, db execer, event ArticleEvent, ids []int64) error {
	var column string
	switch event {
	case EventSuggested, EventOpened, EventHelpful, EventResolved:
		column = string(event)
	default:
		return fmt.Errorf("unknown event %q", event)
	}
	_, err := db.Exec(ctx, `
		INSERT INTO kb_article_stats (article_id, `+column+`)
		SELECT id, 1 FROM kb_articles WHERE id = ANY($1) AND state = 'published' ORDER BY id
		ON CONFLICT (article_id, day) DO UPDATE SET `+column+` = kb_article_stats.`+column+` + 1`, ids)
	return err
}

// ResolveByArticle resolves a ticket on its customer's word that a
// published article solved it, and counts that for the article.
func (s *Store) ResolveByArticle(ctx context.Context, ticketID, articleID int64) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var title string
		err := tx.QueryRow(ctx, `SELECT title FROM kb_articles WHERE id = $1 AND state = 'published'`, articleID).Scan(&title)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `
			WITH old AS (SELECT id, status, customer_email FROM tickets WHERE id = $1 FOR UPDATE),
			u AS (
				UPDATE tickets t SET status = 'resolved', solved_by_article = $2, updated_at = now() FROM old
				WHERE t.id = old.id AND old.status <> 'resolved'
				RETURNING old.id, old.status, old.customer_email
			)
			INSERT INTO ticket_history (ticket_id, actor, action, old_value, new_value)
			SELECT id, 'customer:' || customer_email, 'status', status, 'resolved' FROM u
			UNION ALL
			SELECT id, 'customer:' || customer_email, 'solved_by_article', '', $3 FROM u`, ticketID, articleID, title)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return nil // resolved already: counted once
		}
		return countArticles(ctx, tx, EventResolved, []int64{articleID})
	})
	if err != nil {
		return fmt.Errorf("resolve ticket %d by article %d: %w", ticketID, articleID, err)
	}
	return nil
}

// ArticleStats is an article with its counts, over the period asked and
// in all.
type ArticleStats struct {
	Article
	Recent, Total ArticleCounts
}

// ArticleCounts are an article's counted events.
type ArticleCounts struct{ Suggested, Opened, Helpful, Resolved int64 }

// Deflected is how many customers it answered: those who said so without
// a ticket, and those whose ticket it solved.
func (c ArticleCounts) Deflected() int64 { return c.Helpful + c.Resolved }

// StaffArticles lists the articles of the agent's departments with their
// counts over the last days and in all, those that answered most first.
func (s *Store) StaffArticles(ctx context.Context, a Agent, days int) ([]ArticleStats, error) {
	deptIDs := make([]int64, 0, len(a.Departments))
	for _, d := range a.Departments {
		deptIDs = append(deptIDs, d.ID)
	}
	rows, err := s.pool.Query(ctx, `
		SELECT `+articleColumns+`,
		       coalesce(sum(st.suggested) FILTER (WHERE st.day > current_date - $3::int), 0),
		       coalesce(sum(st.opened) FILTER (WHERE st.day > current_date - $3::int), 0),
		       coalesce(sum(st.helpful) FILTER (WHERE st.day > current_date - $3::int), 0),
		       coalesce(sum(st.resolved) FILTER (WHERE st.day > current_date - $3::int), 0),
		       coalesce(sum(st.suggested), 0), coalesce(sum(st.opened), 0),
		       coalesce(sum(st.helpful), 0), coalesce(sum(st.resolved), 0)
		FROM `+articleFrom+` LEFT JOIN kb_article_stats st ON st.article_id = a.id
		WHERE $1 OR a.department_id = ANY($2)
		GROUP BY a.id, d.id
		ORDER BY coalesce(sum(st.helpful + st.resolved), 0) DESC, d.name, a.language, a.title, a.id`,
		a.IsAdmin(), deptIDs, days)
	if err != nil {
		return nil, fmt.Errorf("list articles with counts: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ArticleStats, error) {
		var st ArticleStats
		err := r.Scan(append(articleDest(&st.Article), &st.Recent.Suggested, &st.Recent.Opened, &st.Recent.Helpful,
			&st.Recent.Resolved, &st.Total.Suggested, &st.Total.Opened, &st.Total.Helpful, &st.Total.Resolved)...)
		return st, err
	})
	if err != nil {
		return nil, fmt.Errorf("list articles with counts: %w", err)
	}
	return list, nil
}

// ImportResult says what an import did.
type ImportResult struct{ Created, Updated, Unchanged int }

// ImportError names the input an import refused, and why.
type ImportError struct {
	Index int // in the list given
	Err   error
}

// ImportErrors are every refusal of an import; nothing was imported.
type ImportErrors []ImportError

func (e ImportErrors) Error() string {
	parts := make([]string, len(e))
	for i, ie := range e {
		parts[i] = fmt.Sprintf("#%d: %v", ie.Index, ie.Err)
	}
	return "refused: " + strings.Join(parts, "; ")
}

// ImportArticles writes articles by department, language and slug, new or
// replacing the one there, all or none: with any refused, nothing is
// written and ImportErrors lists each. actor is who imports, for the audit
// log; any department may be written.
func (s *Store) ImportArticles(ctx context.Context, actor string, list []ArticleInput) (ImportResult, error) {
	var res ImportResult
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		res = ImportResult{}
		var refused ImportErrors
		for i, in := range list {
			// Each in a savepoint, so that one refused does not end the
			// transaction before the others are checked.
			sp, err := tx.Begin(ctx)
			if err != nil {
				return err
			}
			_, outcome, err := saveArticle(ctx, sp, actor, func(int64) bool { return true }, 0, in, true)
			var fe FieldErrors
			if errors.As(err, &fe) {
				refused = append(refused, ImportError{Index: i, Err: fe})
				if err := sp.Rollback(ctx); err != nil {
					return err
				}
				continue
			}
			if err != nil {
				return err
			}
			if err := sp.Commit(ctx); err != nil {
				return err
			}
			switch outcome {
			case articleUnchanged:
				res.Unchanged++
			case articleUpdated:
				res.Updated++
			case articleCreated:
				res.Created++
			}
		}
		if len(refused) > 0 {
			return refused
		}
		return nil
	})
	if err != nil {
		return ImportResult{}, fmt.Errorf("import articles: %w", err)
	}
	return res, nil
}
