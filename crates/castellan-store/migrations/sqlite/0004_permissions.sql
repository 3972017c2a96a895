-- The permission model: modules with custom actions, roles and their assignments, grants to users, groups and roles
-- (globally or on one object).
CREATE TABLE modules (
    id TEXT PRIMARY KEY,
    description TEXT NOT NULL DEFAULT '',
    is_active INTEGER NOT NULL DEFAULT 1,
    custom_actions TEXT NOT NULL DEFAULT '[]',
    builtin INTEGER NOT NULL DEFAULT 0,
    created_date INTEGER NOT NULL,
    modified_date INTEGER NOT NULL
);
INSERT INTO modules (id, description, custom_actions, builtin, created_date, modified_date) VALUES
    ('users', 'Users and their self service', '[]', 1, 0, 0),
    ('groups', 'Groups and memberships', '[]', 1, 0, 0),
    ('orgs', 'Organisations', '[]', 1, 0, 0),
    ('roles', 'Roles and their assignments', '[]', 1, 0, 0),
    ('modules', 'Modules', '[]', 1, 0, 0),
    ('permissions', 'Grants, objects and checks', '["check"]', 1, 0, 0),
    ('audit', 'The change log', '[]', 1, 0, 0);

CREATE TABLE roles (
    pk INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    org INTEGER NOT NULL REFERENCES orgs (pk),
    created_date INTEGER NOT NULL,
    modified_date INTEGER NOT NULL,
    UNIQUE (org, name)
);

CREATE TABLE role_assignments (
    role INTEGER NOT NULL REFERENCES roles (pk) ON DELETE CASCADE,
    subject_type TEXT NOT NULL CHECK (subject_type IN ('user', 'group')),
    subject_pk INTEGER NOT NULL,
    expires_at INTEGER,
    PRIMARY KEY (role, subject_type, subject_pk)
) WITHOUT ROWID;
CREATE INDEX role_assignments_subject ON role_assignments (subject_type, subject_pk);

CREATE TABLE grants (
    subject_type TEXT NOT NULL CHECK (subject_type IN ('user', 'group', 'role')),
    subject_pk INTEGER NOT NULL,
    module TEXT NOT NULL,
    action TEXT NOT NULL,
    object_model TEXT NOT NULL DEFAULT '',
    object_pk TEXT NOT NULL DEFAULT '',
    expires_at INTEGER,
    PRIMARY KEY (subject_type, subject_pk, module, action, object_model, object_pk)
) WITHOUT ROWID;
CREATE INDEX grants_object ON grants (object_model, object_pk);

-- Deleting a subject deletes what was granted to it (API.md §11).
CREATE TRIGGER grants_user_delete AFTER DELETE ON users BEGIN
    DELETE FROM grants WHERE subject_type = 'user' AND subject_pk = old.pk;
    DELETE FROM role_assignments WHERE subject_type = 'user' AND subject_pk = old.pk;
END;
CREATE TRIGGER grants_group_delete AFTER DELETE ON groups BEGIN
    DELETE FROM grants WHERE subject_type = 'group' AND subject_pk = old.pk;
    DELETE FROM role_assignments WHERE subject_type = 'group' AND subject_pk = old.pk;
END;
CREATE TRIGGER grants_role_delete AFTER DELETE ON roles BEGIN
    DELETE FROM grants WHERE subject_type = 'role' AND subject_pk = old.pk;
END;
CREATE TRIGGER grants_module_delete AFTER DELETE ON modules BEGIN
    DELETE FROM grants WHERE module = old.id;
END;
