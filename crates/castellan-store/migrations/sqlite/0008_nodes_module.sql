-- Node objects (membership restrictions, seed 004) are gated by `nodes.read`, so `nodes` is a built-in module.
INSERT OR IGNORE INTO modules (id, description, custom_actions, builtin, created_date, modified_date) VALUES
    ('nodes', 'Nodes that restrict memberships', '[]', 1, 0, 0);
