-- The audit log is filtered by organisation: each change-log row records the org of its actor when it was written
-- (NULL for the server itself and for failed logins), so non-superusers see only their organisation's entries.
ALTER TABLE change_log ADD COLUMN org INTEGER;
UPDATE change_log SET org = (SELECT users.org FROM users WHERE users.pk = change_log.actor) WHERE actor IS NOT NULL;
CREATE INDEX change_log_org ON change_log (org, pk);
CREATE INDEX change_log_actor ON change_log (actor, pk);
CREATE INDEX change_log_at ON change_log (at);
