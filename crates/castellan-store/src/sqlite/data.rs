//! The per-user key/value data store (seed 004).

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};
use serde_json::Value;

use super::{SqliteStore, backend};
use crate::{Result, StoreError, UserDataStore};

#[async_trait]
impl UserDataStore for SqliteStore {
    async fn data_all(&self, user: i64) -> Result<Vec<(String, Value)>> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached("SELECT key, value FROM user_data WHERE user = ? ORDER BY key")?;
            let rows = stmt.query_map(params![user], |r| Ok((r.get(0)?, r.get(1)?))).map_err(backend)?;
            let rows = rows.collect::<rusqlite::Result<Vec<(String, String)>>>().map_err(backend)?;
            Ok(rows.into_iter().map(|(k, v)| (k, serde_json::from_str(&v).unwrap_or(Value::Null))).collect())
        })
        .await
    }

    async fn data_get(&self, user: i64, key: &str) -> Result<Option<Value>> {
        let key = key.to_string();
        self.read(move |c| {
            let row: Option<String> = c
                .prepare_cached("SELECT value FROM user_data WHERE user = ? AND key = ?")?
                .query_row(params![user, key], |r| r.get(0))
                .optional()
                .map_err(backend)?;
            Ok(row.map(|v| serde_json::from_str(&v).unwrap_or(Value::Null)))
        })
        .await
    }

    async fn data_put(&self, user: i64, key: &str, value: &Value, max_total: usize) -> Result<bool> {
        let text = value.to_string();
        let key = key.to_string();
        self.write_plain(move |c| {
            let (others, exists): (i64, i64) = c
                .prepare_cached(
                    "SELECT COALESCE(SUM(CASE WHEN key <> ?2 THEN size END), 0), COUNT(CASE WHEN key = ?2 THEN 1 END)
                     FROM user_data WHERE user = ?1",
                )?
                .query_row(params![user, key], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(backend)?;
            let total = usize::try_from(others).unwrap_or(usize::MAX).saturating_add(text.len());
            if total > max_total {
                return Err(StoreError::LimitExceeded(format!("user data is limited to {max_total} bytes per user")));
            }
            c.prepare_cached(
                "INSERT INTO user_data (user, key, value, size) VALUES (?, ?, ?, ?)
                 ON CONFLICT (user, key) DO UPDATE SET value = excluded.value, size = excluded.size",
            )?
            .execute(params![user, key, text, text.len() as i64])?;
            Ok(exists == 0)
        })
        .await
    }

    async fn data_delete(&self, user: i64, key: &str) -> Result<()> {
        let key = key.to_string();
        self.write_plain(move |c| {
            let deleted = c
                .prepare_cached("DELETE FROM user_data WHERE user = ? AND key = ?")?
                .execute(params![user, key])
                .map_err(backend)?;
            if deleted == 0 { Err(StoreError::NotFound) } else { Ok(()) }
        })
        .await
    }
}
