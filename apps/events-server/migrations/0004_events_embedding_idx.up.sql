-- Approximate nearest-neighbour index for `GET /events/{id}/similar` (L2
-- distance, the `<->` operator the query uses).
CREATE INDEX events_embedding_hnsw_idx ON events USING hnsw (embedding vector_l2_ops);
