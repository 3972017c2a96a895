-- A write touches fewer pages: its revision is the newest logged revision plus one (found by index) instead of a
-- counter row of its own, and change-log keys need no AUTOINCREMENT bookkeeping (rows are never deleted, so the next
-- key is the largest plus one either way).
CREATE TABLE change_log_new (
    pk INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    revision INTEGER,
    actor INTEGER,
    actor_username TEXT,
    action TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_pk TEXT NOT NULL,
    changes TEXT NOT NULL,
    ip TEXT,
    request_id TEXT,
    org INTEGER
);
INSERT INTO change_log_new (pk, at, revision, actor, actor_username, action, target_type, target_pk, changes, ip, request_id, org)
SELECT pk, at, revision, actor, actor_username, action, target_type, target_pk, changes, ip, request_id, org FROM change_log;
DROP TABLE change_log;
ALTER TABLE change_log_new RENAME TO change_log;
CREATE INDEX change_log_target ON change_log (target_type, target_pk);
CREATE INDEX change_log_org ON change_log (org, pk);
CREATE INDEX change_log_actor ON change_log (actor, pk);
CREATE INDEX change_log_at ON change_log (at);
CREATE INDEX change_log_revision ON change_log (revision);
DROP TABLE revision_counter;
