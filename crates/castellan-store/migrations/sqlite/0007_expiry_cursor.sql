-- How far the expiry timer has recorded expirations (µs since the epoch): each expiry is logged exactly once.
CREATE TABLE expiry_cursor (id INTEGER PRIMARY KEY CHECK (id = 1), at INTEGER NOT NULL);
INSERT INTO expiry_cursor (id, at) VALUES (1, 0);
CREATE INDEX memberships_expires ON memberships (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX grants_expires ON grants (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX role_assignments_expires ON role_assignments (expires_at) WHERE expires_at IS NOT NULL;
