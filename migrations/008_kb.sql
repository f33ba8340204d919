-- The knowledge base: articles per department and language, written in
-- Markdown by the staff, searched by customers before they open a ticket,
-- and counted: how often each was suggested, opened from a suggestion,
-- said to answer a question without a ticket, and resolved a ticket.

-- Accent-insensitive search: these configurations drop accents before
-- stemming. Snowball stems accented and unaccented Spanish differently
-- ("facturación" → "factur", "facturacion" → "facturacion"), so documents
-- are indexed with both the plain and the unaccented configuration and
-- queries match either.
CREATE EXTENSION IF NOT EXISTS unaccent;
CREATE TEXT SEARCH CONFIGURATION kb_spanish (COPY = pg_catalog.spanish);
ALTER TEXT SEARCH CONFIGURATION kb_spanish
    ALTER MAPPING FOR hword, hword_part, word WITH unaccent, spanish_stem;
CREATE TEXT SEARCH CONFIGURATION kb_english (COPY = pg_catalog.english);
ALTER TEXT SEARCH CONFIGURATION kb_english
    ALTER MAPPING FOR hword, hword_part, word WITH unaccent, english_stem;

CREATE TABLE kb_articles (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    department_id  bigint NOT NULL REFERENCES departments (id) ON DELETE CASCADE,
    language       text NOT NULL CHECK (language IN ('es', 'en')),
    slug           text NOT NULL CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$' AND length(slug) <= 100),
    title          text NOT NULL CHECK (title <> '' AND length(title) <= 200),
    -- A heading within the department on /kb ("Pagos", "Cuenta"); '' for none.
    category       text NOT NULL DEFAULT '' CHECK (length(category) <= 100),
    -- Words customers use that the text may not ("contraseña", "login").
    keywords       text[] NOT NULL DEFAULT '{}',
    body_md        text NOT NULL CHECK (length(body_md) <= 200000),
    -- body_md's readable text, without Markdown's marks or link targets:
    -- what is searched and what excerpts quote.
    body_text      text NOT NULL DEFAULT '',
    state          text NOT NULL DEFAULT 'draft' CHECK (state IN ('draft', 'published')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    updated_by     text NOT NULL DEFAULT '',
    -- Title weighs most, then keywords, then the text.
    search         tsvector NOT NULL,
    -- Title and keywords alone, for suggestions: matching them in search
    -- would check each candidate's whole text for the weights.
    suggest        tsvector NOT NULL,
    UNIQUE (department_id, language, slug)
);
CREATE INDEX kb_articles_search ON kb_articles USING gin (search);
CREATE INDEX kb_articles_suggest ON kb_articles USING gin (suggest);
CREATE INDEX kb_articles_listing ON kb_articles (language, department_id, category, title) WHERE state = 'published';

-- The search vectors are kept by a trigger (not generated columns) because
-- array_to_string is not immutable.
CREATE FUNCTION kb_articles_search() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    plain regconfig := CASE NEW.language WHEN 'es' THEN 'pg_catalog.spanish' ELSE 'pg_catalog.english' END;
    folded regconfig := CASE NEW.language WHEN 'es' THEN 'kb_spanish' ELSE 'kb_english' END;
    words text := array_to_string(NEW.keywords, ' ');
BEGIN
    NEW.suggest :=
        setweight(to_tsvector(plain, NEW.title) || to_tsvector(folded, NEW.title), 'A') ||
        setweight(to_tsvector(plain, words) || to_tsvector(folded, words), 'B');
    NEW.search := NEW.suggest ||
        setweight(to_tsvector(plain, NEW.category) || to_tsvector(folded, NEW.category), 'C') ||
        setweight(to_tsvector(plain, NEW.body_text) || to_tsvector(folded, NEW.body_text), 'D');
    RETURN NEW;
END $$;
CREATE TRIGGER kb_articles_search BEFORE INSERT OR UPDATE OF title, keywords, category, body_text, language
    ON kb_articles FOR EACH ROW EXECUTE FUNCTION kb_articles_search();

-- Counts per article and day: suggested (listed on the submit form, in an
-- acknowledgement or on a ticket's page), opened (from such a suggestion),
-- helpful (the reader said it answered them, no ticket needed), resolved
-- (a ticket's customer said it solved their ticket).
CREATE TABLE kb_article_stats (
    article_id  bigint NOT NULL REFERENCES kb_articles (id) ON DELETE CASCADE,
    day         date NOT NULL DEFAULT current_date,
    suggested   bigint NOT NULL DEFAULT 0,
    opened      bigint NOT NULL DEFAULT 0,
    helpful     bigint NOT NULL DEFAULT 0,
    resolved    bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (article_id, day)
);

-- The article a customer said solved their ticket.
ALTER TABLE tickets ADD COLUMN solved_by_article bigint REFERENCES kb_articles (id) ON DELETE SET NULL;

-- The articles picked for a ticket, once (by its acknowledgement or its
-- page, whichever comes first): its page offers them without searching
-- again at every view. NULL until then.
ALTER TABLE tickets ADD COLUMN suggested_articles bigint[];
