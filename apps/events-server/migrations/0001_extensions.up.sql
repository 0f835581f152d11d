-- The three extensions the events API is built on: PostGIS for "near me"
-- queries on geography points, pgvector for embedding similarity, pg_trgm for
-- fuzzy text search. IF NOT EXISTS because a provisioner may have created them
-- already (creating extensions can need more privileges than the app role has).
CREATE EXTENSION IF NOT EXISTS postgis;
CREATE EXTENSION IF NOT EXISTS vector;
CREATE EXTENSION IF NOT EXISTS pg_trgm;
