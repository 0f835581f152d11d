-- slipway:no-transaction
-- Reverses 0003 without locking the table, hence outside a transaction too.
DROP INDEX CONCURRENTLY IF EXISTS events_title_trgm_idx;
