//! The per-user key/value data store (seed 004).

use async_trait::async_trait;
use serde_json::Value;

use super::{SqliteStore, backend, commit, map_err};
use crate::{Result, StoreError, UserDataStore};

#[async_trait]
impl UserDataStore for SqliteStore {
    async fn data_all(&self, user: i64) -> Result<Vec<(String, Value)>> {
        let rows: Vec<(String, String)> = sqlx::query_as("SELECT key, value FROM user_data WHERE user = ? ORDER BY key")
            .bind(user)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        Ok(rows.into_iter().map(|(k, v)| (k, serde_json::from_str(&v).unwrap_or(Value::Null))).collect())
    }

    async fn data_get(&self, user: i64, key: &str) -> Result<Option<Value>> {
        let row: Option<String> = sqlx::query_scalar("SELECT value FROM user_data WHERE user = ? AND key = ?")
            .bind(user)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        Ok(row.map(|v| serde_json::from_str(&v).unwrap_or(Value::Null)))
    }

    async fn data_put(&self, user: i64, key: &str, value: &Value, max_total: usize) -> Result<bool> {
        let text = value.to_string();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(backend)?;
        let (others, exists): (i64, i64) = sqlx::query_as(
            "SELECT COALESCE(SUM(CASE WHEN key <> ?2 THEN size END), 0), COUNT(CASE WHEN key = ?2 THEN 1 END)
             FROM user_data WHERE user = ?1",
        )
        .bind(user)
        .bind(key)
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        let total = usize::try_from(others).unwrap_or(usize::MAX).saturating_add(text.len());
        if total > max_total {
            return Err(StoreError::LimitExceeded(format!("user data is limited to {max_total} bytes per user")));
        }
        sqlx::query(
            "INSERT INTO user_data (user, key, value, size) VALUES (?, ?, ?, ?)
             ON CONFLICT (user, key) DO UPDATE SET value = excluded.value, size = excluded.size",
        )
        .bind(user)
        .bind(key)
        .bind(&text)
        .bind(text.len() as i64)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        commit(tx).await?;
        Ok(exists == 0)
    }

    async fn data_delete(&self, user: i64, key: &str) -> Result<()> {
        let done = sqlx::query("DELETE FROM user_data WHERE user = ? AND key = ?")
            .bind(user)
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        if done.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }
}
