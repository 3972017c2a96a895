-- Directory: group hierarchy with an ancestor closure, group permissions, restricted memberships, objects (nodes),
-- per-organisation password policies.
ALTER TABLE groups ADD COLUMN permissions TEXT NOT NULL DEFAULT '{}';
CREATE UNIQUE INDEX groups_sibling_name ON groups (org, COALESCE(parent, 0), name);
CREATE INDEX groups_parent ON groups (parent, pk);

CREATE TABLE group_closure (
    ancestor INTEGER NOT NULL REFERENCES groups (pk) ON DELETE CASCADE,
    descendant INTEGER NOT NULL REFERENCES groups (pk) ON DELETE CASCADE,
    depth INTEGER NOT NULL,
    PRIMARY KEY (ancestor, descendant)
) WITHOUT ROWID;
CREATE INDEX group_closure_descendant ON group_closure (descendant, ancestor);
INSERT INTO group_closure (ancestor, descendant, depth) SELECT pk, pk, 0 FROM groups;

ALTER TABLE memberships ADD COLUMN restricted INTEGER NOT NULL DEFAULT 0;
CREATE TABLE membership_nodes (
    user INTEGER NOT NULL,
    grp INTEGER NOT NULL,
    node INTEGER NOT NULL,
    PRIMARY KEY (user, grp, node),
    FOREIGN KEY (user, grp) REFERENCES memberships (user, grp) ON DELETE CASCADE
) WITHOUT ROWID;

CREATE TABLE objects (
    pk INTEGER PRIMARY KEY AUTOINCREMENT,
    model TEXT NOT NULL,
    object_pk TEXT NOT NULL,
    parent INTEGER REFERENCES objects (pk) ON DELETE SET NULL,
    org INTEGER NOT NULL REFERENCES orgs (pk),
    UNIQUE (model, object_pk)
);
CREATE INDEX objects_parent ON objects (parent);

CREATE TABLE password_policies (
    org INTEGER PRIMARY KEY REFERENCES orgs (pk) ON DELETE CASCADE,
    policy TEXT NOT NULL
);
