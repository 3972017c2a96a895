-- The Omnitron permission catalog (API.md §7): BE permission namespaces and BE permissions (method + path
-- expression), the FE permission tree, FE permission groups, who holds each, and catalog/channel groups.
CREATE TABLE be_namespaces (
    pk INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    builtin INTEGER NOT NULL DEFAULT 0,
    created_date INTEGER NOT NULL,
    modified_date INTEGER NOT NULL
);

CREATE TABLE be_permissions (
    pk INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    namespace INTEGER NOT NULL REFERENCES be_namespaces (pk) ON DELETE CASCADE,
    action TEXT NOT NULL,
    path TEXT NOT NULL,
    builtin INTEGER NOT NULL DEFAULT 0,
    stale INTEGER NOT NULL DEFAULT 0,
    created_date INTEGER NOT NULL,
    modified_date INTEGER NOT NULL,
    UNIQUE (namespace, action, path)
);

CREATE TABLE fe_permissions (
    pk INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    slug TEXT NOT NULL,
    parent INTEGER REFERENCES fe_permissions (pk) ON DELETE CASCADE,
    builtin INTEGER NOT NULL DEFAULT 0,
    created_date INTEGER NOT NULL,
    modified_date INTEGER NOT NULL
);
CREATE UNIQUE INDEX fe_permissions_slug ON fe_permissions (ifnull(parent, 0), slug);
-- The root of the server's own admin UI tree, pk 1 as in seed 000.
INSERT INTO fe_permissions (pk, name, slug, parent, builtin, created_date, modified_date)
    VALUES (1, 'is_superuser', 'is_superuser', NULL, 1, 0, 0);

CREATE TABLE fe_groups (
    pk INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    description TEXT,
    created_date INTEGER NOT NULL,
    modified_date INTEGER NOT NULL
);

CREATE TABLE be_namespace_users (
    namespace INTEGER NOT NULL REFERENCES be_namespaces (pk) ON DELETE CASCADE,
    user INTEGER NOT NULL REFERENCES users (pk) ON DELETE CASCADE,
    PRIMARY KEY (namespace, user)
) WITHOUT ROWID;
CREATE INDEX be_namespace_users_user ON be_namespace_users (user);

CREATE TABLE be_permission_users (
    be INTEGER NOT NULL REFERENCES be_permissions (pk) ON DELETE CASCADE,
    user INTEGER NOT NULL REFERENCES users (pk) ON DELETE CASCADE,
    PRIMARY KEY (be, user)
) WITHOUT ROWID;
CREATE INDEX be_permission_users_user ON be_permission_users (user);

CREATE TABLE fe_permission_users (
    fe INTEGER NOT NULL REFERENCES fe_permissions (pk) ON DELETE CASCADE,
    user INTEGER NOT NULL REFERENCES users (pk) ON DELETE CASCADE,
    PRIMARY KEY (fe, user)
) WITHOUT ROWID;
CREATE INDEX fe_permission_users_user ON fe_permission_users (user);

CREATE TABLE fe_permission_be (
    fe INTEGER NOT NULL REFERENCES fe_permissions (pk) ON DELETE CASCADE,
    be INTEGER NOT NULL REFERENCES be_permissions (pk) ON DELETE CASCADE,
    PRIMARY KEY (fe, be)
) WITHOUT ROWID;
CREATE INDEX fe_permission_be_be ON fe_permission_be (be);

CREATE TABLE fe_group_users (
    grp INTEGER NOT NULL REFERENCES fe_groups (pk) ON DELETE CASCADE,
    user INTEGER NOT NULL REFERENCES users (pk) ON DELETE CASCADE,
    PRIMARY KEY (grp, user)
) WITHOUT ROWID;
CREATE INDEX fe_group_users_user ON fe_group_users (user);

CREATE TABLE fe_group_permissions (
    grp INTEGER NOT NULL REFERENCES fe_groups (pk) ON DELETE CASCADE,
    fe INTEGER NOT NULL REFERENCES fe_permissions (pk) ON DELETE CASCADE,
    PRIMARY KEY (grp, fe)
) WITHOUT ROWID;
CREATE INDEX fe_group_permissions_fe ON fe_group_permissions (fe);

-- Catalog and channel groups: the members of `grp` hold `catalogs.access` / `channels.access` on each item.
CREATE TABLE object_groups (
    pk INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('catalogs', 'channels')),
    grp INTEGER NOT NULL REFERENCES groups (pk) ON DELETE CASCADE,
    created_date INTEGER NOT NULL,
    modified_date INTEGER NOT NULL
);
CREATE INDEX object_groups_grp ON object_groups (grp);

CREATE TABLE object_group_items (
    og INTEGER NOT NULL REFERENCES object_groups (pk) ON DELETE CASCADE,
    item INTEGER NOT NULL,
    PRIMARY KEY (og, item)
) WITHOUT ROWID;
