-- Following the log from a revision (watch) finds its starting row by index.
CREATE INDEX change_log_revision ON change_log (revision);
