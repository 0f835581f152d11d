-- The events table. `location` is a geography point (SRID 4326, lon/lat) so
-- ST_DWithin measures metres on the spheroid; `embedding` is small (3
-- dimensions) because the reference service only needs to exercise pgvector.
CREATE TABLE events (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    title       TEXT NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
    description TEXT NOT NULL DEFAULT '',
    starts_at   TIMESTAMPTZ NOT NULL,
    location    GEOGRAPHY(Point, 4326) NOT NULL,
    embedding   VECTOR(3),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX events_location_gist_idx ON events USING gist (location);
CREATE INDEX events_starts_at_idx ON events (starts_at);
