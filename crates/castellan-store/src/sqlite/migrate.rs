//! Schema migrations: the files of `migrations/sqlite`, applied in order in one write (all or none), each recorded in
//! `schema_migrations`. A data directory made by an older Castellan (which recorded migrations in sqlx's
//! `_sqlx_migrations`) upgrades in place: the versions recorded there count as applied.

use rusqlite::{Connection, OptionalExtension, params};

use crate::time_util::now_micros;
use crate::{Result, StoreError};

/// Every migration as (version, description, SQL), in order.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../../migrations/sqlite/0001_init.sql")),
    (2, "directory", include_str!("../../migrations/sqlite/0002_directory.sql")),
    (3, "user counts", include_str!("../../migrations/sqlite/0003_user_counts.sql")),
    (4, "permissions", include_str!("../../migrations/sqlite/0004_permissions.sql")),
    (5, "change log org", include_str!("../../migrations/sqlite/0005_change_log_org.sql")),
    (6, "change log revision", include_str!("../../migrations/sqlite/0006_change_log_revision.sql")),
    (7, "expiry cursor", include_str!("../../migrations/sqlite/0007_expiry_cursor.sql")),
    (8, "nodes module", include_str!("../../migrations/sqlite/0008_nodes_module.sql")),
    (9, "lean change log", include_str!("../../migrations/sqlite/0009_lean_change_log.sql")),
    (10, "token scopes", include_str!("../../migrations/sqlite/0010_token_scopes.sql")),
    (11, "group search", include_str!("../../migrations/sqlite/0011_group_search.sql")),
    (12, "permission catalog", include_str!("../../migrations/sqlite/0012_catalog.sql")),
];

/// Applies every migration not yet applied (runs on the writer thread, inside its transaction).
pub(super) fn run(conn: &Connection) -> Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at INTEGER NOT NULL)",
    )?;
    adopt_sqlx_history(conn)?;
    // A newer Castellan's schema is refused before anything is applied to it.
    let newest: i64 = conn.query_row("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", [], |r| r.get(0))?;
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    if newest > known {
        return Err(StoreError::Backend(format!(
            "the database is at schema version {newest}, newer than this Castellan knows ({known}); upgrade Castellan"
        )));
    }
    for &(version, description, sql) in MIGRATIONS {
        let applied: Option<i64> =
            conn.query_row("SELECT version FROM schema_migrations WHERE version = ?", [version], |r| r.get(0)).optional()?;
        if applied.is_some() {
            continue;
        }
        conn.execute_batch(sql).map_err(|e| StoreError::Backend(format!("migration {version} ({description}) failed: {e}")))?;
        conn.execute(
            "INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)",
            params![version, description, now_micros()],
        )?;
    }
    Ok(())
}

/// Records as applied the migrations that sqlx applied successfully, once.
fn adopt_sqlx_history(conn: &Connection) -> Result<()> {
    let has_sqlx: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations')",
        [],
        |r| r.get(0),
    )?;
    if has_sqlx {
        conn.execute(
            "INSERT OR IGNORE INTO schema_migrations (version, description, applied_at)
             SELECT version, description, ? FROM _sqlx_migrations WHERE success",
            [now_micros()],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    fn applied(conn: &Connection) -> i64 {
        conn.query_row("SELECT count(*) FROM schema_migrations", [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn a_database_migrated_by_sqlx_upgrades_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("old.db")).unwrap();
        super::run(&conn).unwrap();
        // What an sqlx-era Castellan left: the schema, and its history in sqlx's table only.
        conn.execute_batch(
            "DROP TABLE schema_migrations;
             CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL,
                 installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL,
                 checksum BLOB NOT NULL, execution_time BIGINT NOT NULL);",
        )
        .unwrap();
        for (version, description, _) in super::MIGRATIONS {
            conn.execute(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (?, ?, 1, x'00', 0)",
                rusqlite::params![version, description],
            )
            .unwrap();
        }
        // Running the migrations again would fail on tables that exist: the history is adopted instead.
        super::run(&conn).unwrap();
        assert_eq!(applied(&conn), super::MIGRATIONS.len() as i64);
        super::run(&conn).unwrap();
        assert_eq!(applied(&conn), super::MIGRATIONS.len() as i64);
    }

    #[test]
    fn a_database_newer_than_this_castellan_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("new.db")).unwrap();
        super::run(&conn).unwrap();
        conn.execute("INSERT INTO schema_migrations (version, description, applied_at) VALUES (999, 'future', 0)", []).unwrap();
        let refused = super::run(&conn).unwrap_err().to_string();
        assert!(refused.contains("newer than this Castellan"), "{refused}");
    }
}
