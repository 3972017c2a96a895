-- Castellan schema: directory, credentials, user data and the change log.
CREATE TABLE revision_counter (id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER NOT NULL);
INSERT INTO revision_counter (id, value) VALUES (1, 0);

CREATE TABLE server_secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL);

CREATE TABLE orgs (
    pk INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    slug TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    created_date INTEGER NOT NULL,
    modified_date INTEGER NOT NULL
);

CREATE TABLE users (
    pk INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL,
    username_lower TEXT NOT NULL UNIQUE,
    password_hash TEXT,
    email TEXT NOT NULL,
    email_lower TEXT NOT NULL,
    first_name TEXT NOT NULL DEFAULT '',
    last_name TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    is_staff INTEGER NOT NULL DEFAULT 0,
    is_active INTEGER NOT NULL DEFAULT 1,
    is_superuser INTEGER NOT NULL DEFAULT 0,
    date_joined INTEGER NOT NULL,
    last_login INTEGER,
    org INTEGER NOT NULL REFERENCES orgs (pk),
    phone_number TEXT,
    avatar_type TEXT,
    avatar BLOB
);
CREATE INDEX users_email ON users (email_lower, pk);
CREATE INDEX users_first_name ON users (first_name, pk);
CREATE INDEX users_last_name ON users (last_name, pk);
CREATE INDEX users_date_joined ON users (date_joined, pk);
CREATE INDEX users_last_login ON users (last_login, pk);
CREATE INDEX users_org ON users (org, pk);

CREATE VIRTUAL TABLE users_fts USING fts5 (
    username, first_name, last_name, email,
    content = 'users', content_rowid = 'pk', tokenize = 'trigram'
);
CREATE TRIGGER users_fts_insert AFTER INSERT ON users BEGIN
    INSERT INTO users_fts (rowid, username, first_name, last_name, email)
    VALUES (new.pk, new.username, new.first_name, new.last_name, new.email);
END;
CREATE TRIGGER users_fts_delete AFTER DELETE ON users BEGIN
    INSERT INTO users_fts (users_fts, rowid, username, first_name, last_name, email)
    VALUES ('delete', old.pk, old.username, old.first_name, old.last_name, old.email);
END;
CREATE TRIGGER users_fts_update AFTER UPDATE OF username, first_name, last_name, email ON users BEGIN
    INSERT INTO users_fts (users_fts, rowid, username, first_name, last_name, email)
    VALUES ('delete', old.pk, old.username, old.first_name, old.last_name, old.email);
    INSERT INTO users_fts (rowid, username, first_name, last_name, email)
    VALUES (new.pk, new.username, new.first_name, new.last_name, new.email);
END;

CREATE TABLE password_history (
    pk INTEGER PRIMARY KEY AUTOINCREMENT,
    user INTEGER NOT NULL REFERENCES users (pk) ON DELETE CASCADE,
    hash TEXT NOT NULL
);
CREATE INDEX password_history_user ON password_history (user, pk);

CREATE TABLE groups (
    pk INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    org INTEGER NOT NULL REFERENCES orgs (pk),
    parent INTEGER REFERENCES groups (pk),
    created_date INTEGER NOT NULL,
    modified_date INTEGER NOT NULL
);
CREATE INDEX groups_org ON groups (org, pk);

CREATE TABLE memberships (
    user INTEGER NOT NULL REFERENCES users (pk) ON DELETE CASCADE,
    grp INTEGER NOT NULL REFERENCES groups (pk) ON DELETE CASCADE,
    expires_at INTEGER,
    PRIMARY KEY (user, grp)
) WITHOUT ROWID;
CREATE INDEX memberships_group ON memberships (grp, user);

CREATE TABLE sessions (
    pk INTEGER PRIMARY KEY AUTOINCREMENT,
    user INTEGER NOT NULL REFERENCES users (pk) ON DELETE CASCADE,
    secret_hash BLOB NOT NULL UNIQUE,
    csrf_token TEXT NOT NULL,
    created INTEGER NOT NULL,
    last_used INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    ip TEXT NOT NULL,
    user_agent TEXT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user);

CREATE TABLE api_tokens (
    pk INTEGER PRIMARY KEY AUTOINCREMENT,
    user INTEGER NOT NULL REFERENCES users (pk) ON DELETE CASCADE,
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    secret_hash BLOB NOT NULL UNIQUE,
    created_date INTEGER NOT NULL,
    expires_at INTEGER,
    last_used INTEGER
);
CREATE INDEX api_tokens_user ON api_tokens (user);

CREATE TABLE user_data (
    user INTEGER NOT NULL REFERENCES users (pk) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    size INTEGER NOT NULL,
    PRIMARY KEY (user, key)
) WITHOUT ROWID;

CREATE TABLE change_log (
    pk INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    revision INTEGER,
    actor INTEGER,
    actor_username TEXT,
    action TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_pk TEXT NOT NULL,
    changes TEXT NOT NULL,
    ip TEXT,
    request_id TEXT
);
CREATE INDEX change_log_target ON change_log (target_type, target_pk);
