-- Users per organisation, kept by triggers, so an unfiltered list counts in O(1) at millions of rows.
CREATE TABLE user_counts (org INTEGER PRIMARY KEY, n INTEGER NOT NULL);
INSERT INTO user_counts (org, n) SELECT org, count(*) FROM users GROUP BY org;
CREATE TRIGGER user_counts_insert AFTER INSERT ON users BEGIN
    INSERT INTO user_counts (org, n) VALUES (new.org, 1) ON CONFLICT (org) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER user_counts_delete AFTER DELETE ON users BEGIN
    UPDATE user_counts SET n = n - 1 WHERE org = old.org;
END;
