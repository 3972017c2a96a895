-- Group search by substring of name or description uses a trigram index, as user search does.
CREATE VIRTUAL TABLE groups_fts USING fts5 (
    name, description,
    content = 'groups', content_rowid = 'pk', tokenize = 'trigram'
);
INSERT INTO groups_fts (groups_fts) VALUES ('rebuild');
CREATE TRIGGER groups_fts_insert AFTER INSERT ON groups BEGIN
    INSERT INTO groups_fts (rowid, name, description) VALUES (new.pk, new.name, new.description);
END;
CREATE TRIGGER groups_fts_delete AFTER DELETE ON groups BEGIN
    INSERT INTO groups_fts (groups_fts, rowid, name, description) VALUES ('delete', old.pk, old.name, old.description);
END;
CREATE TRIGGER groups_fts_update AFTER UPDATE OF name, description ON groups BEGIN
    INSERT INTO groups_fts (groups_fts, rowid, name, description) VALUES ('delete', old.pk, old.name, old.description);
    INSERT INTO groups_fts (rowid, name, description) VALUES (new.pk, new.name, new.description);
END;
