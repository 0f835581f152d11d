-- slipway:no-transaction
-- Trigram index for `GET /events?q=`. Built CONCURRENTLY so a live table is not
-- write-locked while it builds, which PostgreSQL only allows outside a
-- transaction: hence the marker on the first line, and one statement per file.
CREATE INDEX CONCURRENTLY IF NOT EXISTS events_title_trgm_idx ON events USING gin (title gin_trgm_ops);
