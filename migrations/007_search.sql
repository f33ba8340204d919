-- Message bodies are indexed for search off the ingest path: computing two
-- text-search vectors of every body as it is stored cost three quarters of
-- the ingest rate. A scheduled job fills messages.search; until it has, a
-- search reads the few new bodies directly.
DROP INDEX messages_body_fts;
ALTER TABLE messages ADD COLUMN search tsvector;
CREATE INDEX messages_search ON messages USING gin (search);
CREATE INDEX messages_unsearchable ON messages (id) WHERE search IS NULL;
