//! A statement built from pieces with its parameters beside it, for filters that vary per request.

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, Row, params_from_iter};

use crate::Result;

/// SQL text and its positional (`?`) parameters, in order.
#[derive(Debug, Default, Clone)]
pub(super) struct Sql {
    text: String,
    params: Vec<SqlValue>,
}

impl Sql {
    /// Starts a statement.
    pub(super) fn new(text: &str) -> Self {
        Self { text: text.to_string(), params: Vec::new() }
    }

    /// Appends text.
    pub(super) fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends a `?` bound to `value`.
    pub(super) fn bind(&mut self, value: impl Into<SqlValue>) -> &mut Self {
        self.text.push('?');
        self.params.push(value.into());
        self
    }

    /// Appends `(?, ?, ...)` bound to `values`; `(NULL)` when there are none, which matches nothing.
    pub(super) fn bind_list<V: Into<SqlValue>>(&mut self, values: impl IntoIterator<Item = V>) -> &mut Self {
        self.text.push('(');
        let start = self.params.len();
        for v in values {
            if self.params.len() > start {
                self.text.push_str(", ");
            }
            self.text.push('?');
            self.params.push(v.into());
        }
        if self.params.len() == start {
            self.text.push_str("NULL");
        }
        self.text.push(')');
        self
    }

    /// ` AND column IN (...)` for a non-empty list of values; nothing for an empty one.
    pub(super) fn and_in<V: Into<SqlValue> + Clone>(&mut self, column: &str, values: &[V]) -> &mut Self {
        if !values.is_empty() {
            self.push(" AND ").push(column).push(" IN ").bind_list(values.iter().cloned());
        }
        self
    }

    /// Runs the statement, answering the number of changed rows.
    pub(super) fn execute(&self, conn: &Connection) -> Result<usize> {
        Ok(conn.prepare_cached(&self.text)?.execute(params_from_iter(self.params.iter()))?)
    }

    /// Appends `column IN (...)` over keys passed as one JSON array: one statement text for any number of keys (a
    /// viewer may see a hundred thousand groups, a scope may name more keys than SQLite takes parameters). None
    /// matches nothing.
    pub(super) fn in_json(&mut self, column: &str, keys: impl IntoIterator<Item = i64>) -> &mut Self {
        let json = serde_json::Value::from_iter(keys).to_string();
        self.push(column).push(" IN (SELECT value FROM json_each(").bind(json).push("))")
    }

    /// Appends `AND` [`Self::in_json`].
    pub(super) fn and_in_json(&mut self, column: &str, keys: &[i64]) -> &mut Self {
        self.push(" AND ").in_json(column, keys.iter().copied())
    }

    /// Every row, mapped by `f`.
    pub(super) fn rows<T>(&self, conn: &Connection, f: impl FnMut(&Row<'_>) -> rusqlite::Result<T>) -> Result<Vec<T>> {
        let mut stmt = conn.prepare_cached(&self.text)?;
        let rows = stmt.query_map(params_from_iter(self.params.iter()), f)?;
        Ok(rows.collect::<rusqlite::Result<Vec<T>>>()?)
    }

    /// The first row mapped by `f`, `None` when there is none.
    pub(super) fn row<T>(&self, conn: &Connection, f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>) -> Result<Option<T>> {
        let mut stmt = conn.prepare_cached(&self.text)?;
        let mut rows = stmt.query(params_from_iter(self.params.iter()))?;
        match rows.next()? {
            Some(row) => Ok(Some(f(row)?)),
            None => Ok(None),
        }
    }
}
