-- Reverses 0001. Fails, as it should, while anything still uses the extensions.
DROP EXTENSION IF EXISTS pg_trgm;
DROP EXTENSION IF EXISTS vector;
DROP EXTENSION IF EXISTS postgis;
