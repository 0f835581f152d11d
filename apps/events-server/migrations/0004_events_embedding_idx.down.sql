-- Reverses 0004.
DROP INDEX IF EXISTS events_embedding_hnsw_idx;
