-- Reverses 0002 (its indexes go with the table).
DROP TABLE IF EXISTS events;
