//! Users, memberships (as the `groups` field), password history and avatars.

use async_trait::async_trait;
use castellan_core::change::{Change, UserFields, UserRecord};
use castellan_core::model::{NewUser, User, UserChanges};
use castellan_core::validate::username_key;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::orders::{Moved, Orders, Row as OrderRow};
use super::{Sql, SqliteStore, TRIGRAM, backend, fts_phrase, log_write};
use crate::time_util::{from_micros, now_micros, to_micros};
use crate::{
    LoginRecord, Page, Result, Revision, SortValue, StoreError, UserCursor, UserFilter, UserOrder, UserQuery, UserStore, WriteCtx,
};

const USER_COLUMNS: &str = "pk, username, email, first_name, last_name, description, is_staff, is_active, is_superuser, \
     date_joined, last_login, org, phone_number, avatar_type IS NOT NULL AS has_avatar, password_hash IS NOT NULL AS has_password";

/// A user from the leading [`USER_COLUMNS`] of a row, without its groups.
fn user_from_row(r: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        pk: r.get(0)?,
        username: r.get(1)?,
        email: r.get(2)?,
        first_name: r.get(3)?,
        last_name: r.get(4)?,
        description: r.get(5)?,
        is_staff: r.get(6)?,
        is_active: r.get(7)?,
        is_superuser: r.get(8)?,
        date_joined: from_micros(r.get(9)?),
        last_login: r.get::<_, Option<i64>>(10)?.map(from_micros),
        org: r.get(11)?,
        groups: Vec::new(),
        groups_hidden: 0,
        phone_number: r.get(12)?,
        has_avatar: r.get(13)?,
        has_password: r.get(14)?,
    })
}

/// The user as recorded in the change log (never a password or hash).
fn user_record(u: &User) -> UserRecord {
    UserRecord {
        username: u.username.clone(),
        email: u.email.clone(),
        first_name: u.first_name.clone(),
        last_name: u.last_name.clone(),
        description: u.description.clone(),
        is_staff: u.is_staff,
        is_active: u.is_active,
        is_superuser: u.is_superuser,
        org: u.org,
        groups: u.groups.clone(),
        phone_number: u.phone_number.clone(),
    }
}

/// Loads the unexpired direct groups of each user with one query.
fn attach_groups(c: &Connection, users: &mut [User]) -> Result<()> {
    if users.is_empty() {
        return Ok(());
    }
    let mut sql = Sql::new("SELECT user, grp FROM memberships WHERE (expires_at IS NULL OR +expires_at > ");
    sql.bind(now_micros());
    sql.push(") AND user IN ").bind_list(users.iter().map(|u| u.pk));
    sql.push(" ORDER BY user, grp");
    let rows: Vec<(i64, i64)> = sql.rows(c, |r| Ok((r.get(0)?, r.get(1)?)))?;
    for (user, grp) in rows {
        if let Ok(i) = users.binary_search_by_key(&user, |u| u.pk) {
            users[i].groups.push(grp);
        } else if let Some(u) = users.iter_mut().find(|u| u.pk == user) {
            u.groups.push(grp);
        }
    }
    Ok(())
}

fn fetch_user(c: &Connection, pk: i64) -> Result<User> {
    let user =
        c.prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE pk = ?"))?.query_row(params![pk], user_from_row)?;
    let mut users = [user];
    attach_groups(c, &mut users)?;
    let [user] = users;
    Ok(user)
}

/// Fails with `Conflict{groups}` unless every group exists in `org`.
fn ensure_groups(c: &Connection, org: i64, groups: &[i64]) -> Result<()> {
    if groups.is_empty() {
        return Ok(());
    }
    let found = existing_groups_in(c, org, groups)?;
    if found.len() == groups.len() { Ok(()) } else { Err(StoreError::Conflict { constraint: "groups".into() }) }
}

fn existing_groups_in(c: &Connection, org: i64, groups: &[i64]) -> Result<Vec<i64>> {
    let mut sql = Sql::new("SELECT pk FROM groups WHERE org = ");
    sql.bind(org);
    sql.push(" AND pk IN ").bind_list(groups.iter().copied());
    sql.push(" ORDER BY pk");
    sql.rows(c, |r| r.get(0))
}

/// Replaces a user's direct memberships with `groups`, keeping expiries of those that stay.
fn set_groups(c: &Connection, user: i64, groups: &[i64]) -> Result<()> {
    let mut sql = Sql::new("DELETE FROM memberships WHERE user = ");
    sql.bind(user);
    if !groups.is_empty() {
        sql.push(" AND grp NOT IN ").bind_list(groups.iter().copied());
    }
    sql.execute(c)?;
    let mut insert = c.prepare_cached("INSERT OR IGNORE INTO memberships (user, grp) VALUES (?, ?)")?;
    for g in groups {
        insert.execute(params![user, g])?;
    }
    Ok(())
}

fn push_filter(sql: &mut Sql, f: &UserFilter) {
    sql.push(" WHERE 1 = 1");
    sql.and_in("pk", &f.ids);
    let lower = |v: &[String]| v.iter().map(|s| s.to_lowercase()).collect::<Vec<_>>();
    let keys: Vec<String> = f.usernames.iter().map(|u| username_key(u)).collect();
    sql.and_in("username_lower", &keys);
    sql.and_in("email_lower", &lower(&f.emails));
    sql.and_in("first_name", &f.first_names);
    sql.and_in("last_name", &f.last_names);
    sql.and_in("org", &f.orgs);
    for (column, value) in [("is_active", f.is_active), ("is_staff", f.is_staff), ("is_superuser", f.is_superuser)] {
        if let Some(v) = value {
            sql.push(" AND ").push(column).push(" = ").bind(v);
        }
    }
    // Expiry reads `+expires_at` everywhere in this backend: without the unary plus SQLite sees that a bound time
    // could use the partial expiry index and re-prepares the statement for every new time (15% of a listing's CPU).
    if !f.groups.is_empty() {
        sql.push(" AND pk IN (SELECT user FROM memberships WHERE (expires_at IS NULL OR +expires_at > ");
        sql.bind(now_micros());
        sql.push(")");
        if f.groups_recursive {
            sql.push(" AND grp IN (SELECT descendant FROM group_closure WHERE 1 = 1");
            sql.and_in("ancestor", &f.groups);
            sql.push(")");
        } else {
            sql.and_in("grp", &f.groups);
        }
        sql.push(")");
    }
    if let Some(seen) = &f.seen_by {
        sql.push(" AND (pk = ").bind(seen.viewer);
        sql.push(" OR pk IN (SELECT user FROM memberships WHERE (expires_at IS NULL OR +expires_at > ");
        sql.bind(now_micros()).push(")");
        sql.and_in_json("grp", &seen.groups);
        sql.push("))");
    }
    if let Some(term) = f.search.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        if term.chars().count() >= TRIGRAM {
            sql.push(" AND pk IN (SELECT rowid FROM users_fts WHERE users_fts MATCH ");
            sql.bind(fts_phrase(term));
            sql.push(")");
        } else {
            sql.push(" AND ");
            push_prefixes(sql, &prefix_ranges(term), "");
        }
    }
}

/// The key ranges a short search (1 or 2 characters) matches by prefix, column by column: the folded username,
/// the lower-cased email, and each case spelling of the first and last names (stored as given).
fn prefix_ranges(term: &str) -> Vec<(&'static str, Vec<KeyRange>)> {
    let spellings: Vec<KeyRange> = case_spellings(term).iter().map(|s| KeyRange::prefix(s)).collect();
    vec![
        ("username_lower", vec![KeyRange::prefix(&username_key(term))]),
        ("email_lower", vec![KeyRange::prefix(&term.to_lowercase())]),
        ("first_name", spellings.clone()),
        ("last_name", spellings),
    ]
}

/// The strings that start with one prefix, as a range of keys: from the prefix up to (not including) the first
/// string after all of them (none when there is no such string).
#[derive(Debug, Clone)]
struct KeyRange {
    from: String,
    below: Option<String>,
}

impl KeyRange {
    fn prefix(prefix: &str) -> Self {
        let mut chars: Vec<char> = prefix.chars().collect();
        let below = loop {
            let Some(last) = chars.pop() else { break None };
            if let Some(next) = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32) {
                chars.push(next);
                break Some(chars.into_iter().collect());
            }
        };
        Self { from: prefix.to_string(), below }
    }
}

/// Every spelling of `term` with each letter in either case (single-character case mappings only).
pub(super) fn case_spellings(term: &str) -> Vec<String> {
    let mut spellings = vec![String::new()];
    for c in term.chars() {
        let mut variants = vec![c];
        for case in [c.to_lowercase().collect::<Vec<_>>(), c.to_uppercase().collect()] {
            if let [v] = case[..]
                && !variants.contains(&v)
            {
                variants.push(v);
            }
        }
        spellings = spellings.iter().flat_map(|s| variants.iter().map(move |v| format!("{s}{v}"))).collect();
    }
    spellings
}

/// `(column >= from AND column < below) OR ...` over the given columns; `unindexed` (`"+"`) keeps SQLite from
/// reading them through their indexes.
fn push_prefixes(sql: &mut Sql, columns: &[(&str, Vec<KeyRange>)], unindexed: &str) {
    sql.push("(");
    for (i, (column, ranges)) in columns.iter().enumerate() {
        for (j, range) in ranges.iter().enumerate() {
            sql.push(if i + j == 0 { "(" } else { " OR (" });
            sql.push(unindexed).push(column).push(" >= ").bind(range.from.clone());
            if let Some(below) = &range.below {
                sql.push(" AND ").push(unindexed).push(column).push(" < ").bind(below.clone());
            }
            sql.push(")");
        }
    }
    sql.push(")");
}

/// A short search's term, when the filter has one (terms of 3+ characters go through the trigram index).
fn short_search(f: &UserFilter) -> Option<&str> {
    f.search.as_deref().map(str::trim).filter(|t| !t.is_empty() && t.chars().count() < TRIGRAM)
}

/// What looking a row up by its key costs, in rows read in a pass over the table.
const LOOKUP_COST: i64 = 4;

/// How far a short search's count reads each column's range before taking it for a large one.
const SIZE_PROBE: i64 = 30_000;

/// Rows a page of a short search steps over in key order, at least, before its matches are looked up by their
/// indexes instead.
const SHORT_SEARCH_SCAN: i64 = 20_000;

/// A page of a short search (`us`). The count first probes each column's prefix range in its index (up to
/// [`SIZE_PROBE`] rows). When at most one column has that many matches, it counts that column's range whole and adds
/// the others' matches it does not hold (each looked up); when several have, the lookups would cost more than one
/// pass over the users, which counts them instead. The page is read in key order with the ranges as a filter when
/// that ends sooner than looking the matches up, else from the keys the indexes give.
fn short_search_page(c: &Connection, query: &UserQuery, term: &str) -> Result<(i64, Vec<User>)> {
    let base = UserFilter { search: None, ..query.filter.clone() };
    // The rows of `columns`' ranges (read through their indexes unless `unindexed`), not in `not`'s, up to `most`.
    let count_where =
        |columns: &[(&'static str, Vec<KeyRange>)], unindexed, not: &[(&'static str, Vec<KeyRange>)], most: Option<i64>| {
            let mut sql = Sql::new("SELECT count(*) FROM (SELECT 1 FROM users");
            push_filter(&mut sql, &base);
            sql.push(" AND ");
            push_prefixes(&mut sql, columns, unindexed);
            if !not.is_empty() {
                sql.push(" AND NOT ");
                push_prefixes(&mut sql, not, "+");
            }
            sql.push(" LIMIT ").bind(most.unwrap_or(-1)).push(")");
            Ok::<i64, StoreError>(sql.row(c, |r| r.get::<_, i64>(0))?.unwrap_or(0))
        };
    let mut columns = prefix_ranges(term);
    let mut sizes = columns
        .iter()
        .map(|column| count_where(std::slice::from_ref(column), "", &[], Some(SIZE_PROBE)))
        .collect::<Result<Vec<_>>>()?;
    let count = if sizes.iter().filter(|size| **size >= SIZE_PROBE).count() > 1 {
        count_where(&columns, "+", &[], None)?
    } else {
        let largest = (0..columns.len()).max_by_key(|i| sizes[*i]).unwrap_or(0);
        columns.swap(0, largest);
        sizes.swap(0, largest);
        let mut count = if sizes[0] >= SIZE_PROBE { count_where(&columns[..1], "", &[], None)? } else { sizes[0] };
        for i in (1..columns.len()).filter(|i| sizes[*i] > 0) {
            count += count_where(&columns[i..=i], "", &columns[..i], None)?;
        }
        count
    };
    let within = count_matching(c, &base)?;
    if count == 0 {
        return Ok((0, Vec::new()));
    }
    let reach = if query.after.is_some() { query.limit } else { query.offset + query.limit };
    let mut sql = Sql::new(&format!("SELECT {USER_COLUMNS} FROM users"));
    push_filter(&mut sql, &base);
    sql.push(" AND ");
    // Reading in key order steps over about `reach × within / count` rows; looking the matches up reads each once.
    if reach.saturating_mul(within) / count <= SHORT_SEARCH_SCAN.max(count.saturating_mul(LOOKUP_COST)) {
        push_prefixes(&mut sql, &columns, "+");
    } else {
        let mut keys = Sql::new("SELECT pk FROM users WHERE ");
        push_prefixes(&mut keys, &columns, "");
        let pks: Vec<i64> = keys.rows(c, |r| r.get(0))?;
        sql.in_json("pk", pks);
    }
    push_window(&mut sql, query);
    Ok((count, sql.rows(c, user_from_row)?))
}

/// A page of a search that filters nothing else, in key order: the matching keys come from the trigram index alone
/// and only the page's rows are read (counting through the rows themselves cost twice the index lookup). `None`
/// when the query is not such a search.
fn search_page(c: &Connection, query: &UserQuery) -> Result<Option<Page<User>>> {
    if query.after.is_some() {
        return Ok(None);
    }
    let descending = match query.ordering.as_slice() {
        [] | [(UserOrder::Id, false)] => false,
        [(UserOrder::Id, true)] => true,
        _ => return Ok(None),
    };
    let term = match &query.filter {
        UserFilter { search: Some(term), orgs, .. } if orgs.is_empty() && uses_text_index(&query.filter) => term.trim(),
        _ => return Ok(None),
    };
    let unfiltered = UserFilter { search: None, ..query.filter.clone() };
    if !only_orgs(&unfiltered) {
        return Ok(None);
    }
    let mut pks: Vec<i64> = c
        .prepare_cached("SELECT rowid FROM users_fts WHERE users_fts MATCH ?")?
        .query_map([fts_phrase(term)], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    pks.sort_unstable();
    if descending {
        pks.reverse();
    }
    let count = pks.len() as i64;
    let offset = usize::try_from(query.offset).unwrap_or(0);
    let limit = usize::try_from(query.limit).unwrap_or(0);
    let page: Vec<i64> = pks.into_iter().skip(offset).take(limit).collect();
    let mut sql = Sql::new(&format!("SELECT {USER_COLUMNS} FROM users WHERE pk IN "));
    sql.bind_list(page.iter().copied()).push(if descending { " ORDER BY pk DESC" } else { " ORDER BY pk" });
    Ok(Some(Page { count, items: sql.rows(c, user_from_row)? }))
}

/// Whether the filter's search goes through the trigram index (terms of 3+ characters).
fn uses_text_index(f: &UserFilter) -> bool {
    f.search.as_deref().map(str::trim).is_some_and(|t| t.chars().count() >= 3)
}

/// Filter, ordering and window of a page query.
fn push_page(sql: &mut Sql, query: &UserQuery) {
    push_filter(sql, &query.filter);
    push_window(sql, query);
}

/// The window of a page query after its filter: from its cursor, in its order, its limit and offset.
fn push_window(sql: &mut Sql, query: &UserQuery) {
    let backwards = query.after.as_ref().is_some_and(|after| after.backwards);
    if let Some(after) = &query.after {
        push_after(sql, &query.ordering, after);
    }
    push_order(sql, &query.ordering, backwards);
    let offset = if query.after.is_some() { 0 } else { query.offset };
    sql.push(" LIMIT ").bind(query.limit).push(" OFFSET ").bind(offset);
}

/// The sort columns and whether each descends as read (flipped when reading backwards), the `pk` tiebreak last.
fn sort_columns(ordering: &[(UserOrder, bool)], backwards: bool) -> Vec<(&'static str, bool)> {
    let keys = UserOrder::keys(ordering).map(|(order, desc)| (order_column(order), desc));
    keys.chain([("pk", UserOrder::pk_descends(ordering))]).map(|(column, desc)| (column, desc != backwards)).collect()
}

/// Keeps the rows after `after` in the order as read: one row-value comparison, which an index on the sort
/// columns answers by seeking, when every key reads the same way and none can be null; else the equivalent chain
/// (`a > x OR (a IS x AND (b > y OR ...))`, nulls sorting first).
fn push_after(sql: &mut Sql, ordering: &[(UserOrder, bool)], after: &UserCursor) {
    let columns = sort_columns(ordering, after.backwards);
    let values: Vec<SortValue> = after.keys.iter().cloned().chain([SortValue::Int(after.pk)]).collect();
    let descending = columns[0].1;
    // Row values compare nulls as unknown: only for columns that are never null.
    let nullable = columns.iter().any(|(column, _)| NULLABLE_SORT_COLUMNS.contains(column));
    if columns.iter().all(|(_, desc)| *desc == descending) && !nullable {
        let names: Vec<&str> = columns.iter().map(|(column, _)| *column).collect();
        sql.push(" AND (").push(&names.join(", ")).push(if descending { ") < " } else { ") > " });
        sql.bind_list(values.into_iter().map(sort_value));
        return;
    }
    let (first, first_desc) = columns[0];
    if !NULLABLE_SORT_COLUMNS.contains(&first) {
        // A range on the first key lets its index seek; the chain below only sorts out its ties.
        sql.push(" AND ").push(first).push(if first_desc { " <= " } else { " >= " }).bind(sort_value(values[0].clone()));
    }
    sql.push(" AND ");
    for (i, ((column, desc), value)) in columns.iter().zip(&values).enumerate() {
        sql.push("(");
        match (value, desc) {
            (SortValue::Null, false) => sql.push(column).push(" IS NOT NULL"),
            (SortValue::Null, true) => sql.push("0"),
            (v, false) => sql.push(column).push(" > ").bind(sort_value(v.clone())),
            (v, true) if NULLABLE_SORT_COLUMNS.contains(column) => {
                sql.push("(").push(column).push(" < ").bind(sort_value(v.clone())).push(" OR ").push(column).push(" IS NULL)")
            }
            (v, true) => sql.push(column).push(" < ").bind(sort_value(v.clone())),
        };
        if i + 1 < columns.len() {
            sql.push(" OR (").push(column).push(" IS ").bind(sort_value(value.clone())).push(" AND ");
        }
    }
    for i in 0..columns.len() {
        sql.push(if i + 1 < columns.len() { "))" } else { ")" });
    }
}

/// Offsets from which a page is found by its keys first (see [`deep_page`]).
const DEEP_OFFSET: i64 = 1_000;

/// A page far into the list: the rows to skip are stepped over in the sort key's index alone (no table row is read
/// for them), then only the page's rows are read. Stepping over 250,000 rows of `-email` took 200 ms reading each
/// row, and a tenth of that in the index.
fn deep_page(c: &Connection, query: &UserQuery) -> Result<Vec<User>> {
    let mut keys = Sql::new("SELECT pk FROM users");
    push_page(&mut keys, query);
    rows_in_order(c, keys)
}

/// The users whose keys `keys` selects, in that order.
fn rows_in_order(c: &Connection, keys: Sql) -> Result<Vec<User>> {
    users_in_order(c, keys.rows(c, |r| r.get(0))?)
}

/// The users of keys `pks`, in that order.
fn users_in_order(c: &Connection, pks: Vec<i64>) -> Result<Vec<User>> {
    if pks.is_empty() {
        return Ok(Vec::new());
    }
    let mut rows = Sql::new(&format!("SELECT {USER_COLUMNS} FROM users WHERE pk IN "));
    rows.bind_list(pks.iter().copied());
    let mut users = rows.rows(c, user_from_row)?;
    let place: std::collections::HashMap<i64, usize> = pks.iter().enumerate().map(|(i, pk)| (*pk, i)).collect();
    users.sort_by_key(|u| place.get(&u.pk).copied().unwrap_or(usize::MAX));
    Ok(users)
}

impl SqliteStore {
    /// The users' orders, loading them in the background (from a read snapshot) on first use.
    pub(super) fn load_orders(&self) -> std::sync::Arc<Orders> {
        if self.orders.claim() {
            let (db, orders) = (self.db.clone(), self.orders.clone());
            tokio::spawn(async move {
                let loader = orders.clone();
                let load = move |c: &Connection| {
                    let started = std::time::Instant::now();
                    let snapshot = c.unchecked_transaction()?;
                    let revision = super::current_revision(c)?;
                    let rows = OrderRow::load(c)?;
                    snapshot.commit()?;
                    let users = rows.len();
                    loader.install(rows, revision);
                    tracing::info!(users, took_ms = started.elapsed().as_millis() as u64, "loaded the users' orders");
                    Ok(())
                };
                if let Err(e) = db.read(load).await {
                    tracing::warn!(error = %e, "loading the users' orders failed");
                    orders.release();
                }
            });
        }
        self.orders.clone()
    }
}

/// Sort columns that may hold nulls.
const NULLABLE_SORT_COLUMNS: [&str; 1] = ["last_login"];

/// A cursor's value as a bound parameter.
fn sort_value(value: SortValue) -> SqlValue {
    match value {
        SortValue::Int(n) => SqlValue::Integer(n),
        SortValue::Text(s) => SqlValue::Text(s),
        SortValue::Null => SqlValue::Null,
    }
}

/// How many users match: from the maintained counters when only the organisation is filtered, else counted.
fn count_matching(c: &Connection, filter: &UserFilter) -> Result<i64> {
    let sql = if only_orgs(filter) {
        let mut sql = Sql::new("SELECT COALESCE(SUM(n), 0) FROM user_counts WHERE 1 = 1");
        sql.and_in("org", &filter.orgs);
        sql
    } else {
        let mut sql = Sql::new("SELECT count(*) FROM users");
        push_filter(&mut sql, filter);
        sql
    };
    sql.row(c, |r| r.get(0))?.ok_or_else(|| backend(rusqlite::Error::QueryReturnedNoRows))
}

/// Whether the filter restricts nothing but the organisation.
fn only_orgs(f: &UserFilter) -> bool {
    let n = f.narrowing();
    !n.by_fields && !n.by_groups && !n.by_flags && n.search.is_none()
}

pub(super) fn order_column(o: UserOrder) -> &'static str {
    match o {
        UserOrder::Id => "pk",
        UserOrder::Username => "username_lower",
        UserOrder::Email => "email_lower",
        UserOrder::FirstName => "first_name",
        UserOrder::LastName => "last_name",
        UserOrder::DateJoined => "date_joined",
        UserOrder::LastLogin => "last_login",
    }
}

pub(super) fn push_order(sql: &mut Sql, ordering: &[(UserOrder, bool)], backwards: bool) {
    let terms: Vec<String> = sort_columns(ordering, backwards)
        .into_iter()
        .map(|(column, desc)| format!("{column} {}", if desc { "DESC" } else { "ASC" }))
        .collect();
    sql.push(" ORDER BY ").push(&terms.join(", "));
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn create_user(&self, ctx: &WriteCtx, new: NewUser) -> Result<(User, Revision)> {
        self.write(ctx, move |c, ctx| {
            ensure_groups(c, new.org, &new.groups)?;
            let now = now_micros();
            let pk: i64 = c
                .prepare_cached(
                    "INSERT INTO users (username, username_lower, password_hash, email, email_lower, first_name, last_name, description,
                                        is_staff, is_active, is_superuser, date_joined, org)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING pk",
                )?
                .query_row(
                    params![
                        new.username,
                        username_key(&new.username),
                        new.password_hash.as_deref(),
                        new.email,
                        new.email.to_lowercase(),
                        new.first_name,
                        new.last_name,
                        new.description,
                        new.is_staff,
                        new.is_active,
                        new.is_superuser,
                        now,
                        new.org
                    ],
                    |r| r.get(0),
                )?;
            set_groups(c, pk, &new.groups)?;
            let user = fetch_user(c, pk)?;
            ctx.moved.borrow_mut().push(Moved { before: None, after: Some(user.clone()) });
            let revision = log_write(c, ctx, Change::UserCreated { pk, after: user_record(&user) })?;
            Ok((user, revision))
        })
        .await
    }

    async fn get_user(&self, pk: i64) -> Result<User> {
        self.read(move |c| fetch_user(c, pk)).await
    }

    async fn get_users(&self, pks: &[i64]) -> Result<Vec<User>> {
        let query = UserQuery {
            filter: UserFilter { ids: pks.to_vec(), ..Default::default() },
            limit: pks.len() as i64,
            ..Default::default()
        };
        if pks.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.list_users(&query).await?.items)
    }

    async fn login_record(&self, username: &str) -> Result<Option<LoginRecord>> {
        let username = username_key(username);
        self.read(move |c| {
            let row: Option<(i64, Option<String>)> = c
                .prepare_cached("SELECT pk, password_hash FROM users WHERE username_lower = ?")?
                .query_row(params![username], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .map_err(backend)?;
            let Some((pk, password_hash)) = row else { return Ok(None) };
            let user = fetch_user(c, pk)?;
            Ok(Some(LoginRecord { user, password_hash }))
        })
        .await
    }

    async fn list_users(&self, query: &UserQuery) -> Result<Page<User>> {
        let query = query.clone();
        let orders = Orders::could_answer(&query).then(|| self.load_orders());
        let builds = orders.clone();
        let page = self
            .read(move |c| {
                // One snapshot for the count, the orders' revision and the page: a write between them would shift rows.
                let snapshot = c.unchecked_transaction()?;
                let in_memory = match &orders {
                    Some(orders) => orders.page(&query, super::current_revision(c)?),
                    None => None,
                };
                let (count, mut items) = if let Some((count, pks)) = in_memory {
                    (count, users_in_order(c, pks)?)
                } else if let Some(page) = search_page(c, &query)? {
                    (page.count, page.items)
                } else if let Some(term) = short_search(&query.filter) {
                    short_search_page(c, &query, term)?
                } else if uses_text_index(&query.filter) {
                    // The text search is the expensive part: run it once for the page and the total together.
                    let mut sql = Sql::new(&format!("SELECT {USER_COLUMNS}, count(*) OVER () AS total FROM users"));
                    push_page(&mut sql, &query);
                    let rows: Vec<(User, i64)> = sql.rows(c, |r| Ok((user_from_row(r)?, r.get("total")?)))?;
                    let count = match rows.first() {
                        Some((_, total)) => *total,
                        None if query.offset == 0 => 0,
                        None => count_matching(c, &query.filter)?,
                    };
                    (count, rows.into_iter().map(|(user, _)| user).collect())
                } else if query.after.is_none() && query.offset >= DEEP_OFFSET {
                    let count = count_matching(c, &query.filter)?;
                    (count, deep_page(c, &query)?)
                } else {
                    let count = count_matching(c, &query.filter)?;
                    let mut sql = Sql::new(&format!("SELECT {USER_COLUMNS} FROM users"));
                    push_page(&mut sql, &query);
                    (count, sql.rows(c, user_from_row)?)
                };
                if query.after.as_ref().is_some_and(|after| after.backwards) {
                    // Read backwards from the cursor; answered in the query's order.
                    items.reverse();
                }
                if !query.skip_groups {
                    attach_groups(c, &mut items)?;
                }
                snapshot.commit()?;
                Ok(Page { count, items })
            })
            .await;
        if let Some(orders) = builds.filter(|orders| orders.claim_build()) {
            // An ordering this page walked the slow way is kept whole from now on, sorted while pages go on.
            tokio::task::spawn_blocking(move || orders.build_requested());
        }
        page
    }

    async fn count_users(&self) -> Result<i64> {
        self.read(|c| c.prepare_cached("SELECT count(*) FROM users")?.query_row([], |r| r.get(0)).map_err(backend)).await
    }

    async fn update_user(&self, ctx: &WriteCtx, pk: i64, changes: UserChanges) -> Result<(User, Revision)> {
        self.write(ctx, move |c, ctx| {
            let before = fetch_user(c, pk)?;
            let mut sql = Sql::new("UPDATE users SET pk = pk");
            if let Some(v) = &changes.username {
                sql.push(", username = ").bind(v.clone()).push(", username_lower = ").bind(username_key(v));
            }
            if let Some(v) = &changes.email {
                sql.push(", email = ").bind(v.clone()).push(", email_lower = ").bind(v.to_lowercase());
            }
            for (column, value) in [("first_name", &changes.first_name), ("last_name", &changes.last_name), ("description", &changes.description)] {
                if let Some(v) = value {
                    sql.push(", ").push(column).push(" = ").bind(v.clone());
                }
            }
            for (column, value) in [("is_active", changes.is_active), ("is_staff", changes.is_staff), ("is_superuser", changes.is_superuser)] {
                if let Some(v) = value {
                    sql.push(", ").push(column).push(" = ").bind(v);
                }
            }
            if let Some(v) = &changes.phone_number {
                sql.push(", phone_number = ").bind(v.clone());
            }
            if let Some(image) = &changes.avatar {
                let (content_type, bytes) = image.clone().unzip();
                sql.push(", avatar_type = ").bind(content_type).push(", avatar = ").bind(bytes);
            }
            if let Some(hash) = &changes.password_hash {
                c.prepare_cached(
                    "INSERT INTO password_history (user, hash) SELECT pk, password_hash FROM users WHERE pk = ? AND password_hash IS NOT NULL",
                )?
                .execute(params![pk])
                .map_err(backend)?;
                sql.push(", password_hash = ").bind(hash.clone());
            }
            sql.push(" WHERE pk = ").bind(pk);
            sql.execute(c)?;
            if let Some(groups) = &changes.groups {
                ensure_groups(c, before.org, groups)?;
                set_groups(c, pk, groups)?;
            }
            let after = fetch_user(c, pk)?;
            let revision = log_write(c, ctx, updated(pk, &before, &after, &changes))?;
            ctx.moved.borrow_mut().push(Moved { before: Some(before), after: Some(after.clone()) });
            Ok((after, revision))
        })
        .await
    }

    async fn delete_user(&self, ctx: &WriteCtx, pk: i64) -> Result<Revision> {
        self.write(ctx, move |c, ctx| {
            let before = fetch_user(c, pk)?;
            c.prepare_cached("DELETE FROM users WHERE pk = ?")?.execute(params![pk])?;
            let revision = log_write(c, ctx, Change::UserDeleted { pk, before: user_record(&before) })?;
            ctx.moved.borrow_mut().push(Moved { before: Some(before), after: None });
            Ok(revision)
        })
        .await
    }

    async fn password_hashes(&self, pk: i64, n: usize) -> Result<Vec<String>> {
        let limit = i64::try_from(n).unwrap_or(i64::MAX);
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT hash FROM (
                     SELECT password_hash AS hash, 9223372036854775807 AS ord FROM users WHERE pk = ?1 AND password_hash IS NOT NULL
                     UNION ALL SELECT hash, pk AS ord FROM password_history WHERE user = ?1
                 ) ORDER BY ord DESC LIMIT ?2",
            )?;
            let hashes = stmt.query_map(params![pk, limit], |r| r.get(0)).map_err(backend)?;
            hashes.collect::<rusqlite::Result<Vec<String>>>().map_err(backend)
        })
        .await
    }

    async fn set_last_login(&self, pk: i64, at: OffsetDateTime) -> Result<()> {
        let at = to_micros(at);
        self.write_plain(move |c| {
            c.prepare_cached("UPDATE users SET last_login = ? WHERE pk = ?")?.execute(params![at, pk]).map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn get_avatar(&self, pk: i64) -> Result<Option<(String, Vec<u8>)>> {
        self.read(move |c| {
            let row: Option<(Option<String>, Option<Vec<u8>>)> = c
                .prepare_cached("SELECT avatar_type, avatar FROM users WHERE pk = ?")?
                .query_row(params![pk], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .map_err(backend)?;
            match row {
                None => Err(StoreError::NotFound),
                Some((Some(t), Some(b))) => Ok(Some((t, b))),
                Some(_) => Ok(None),
            }
        })
        .await
    }

    async fn existing_groups(&self, org: i64, pks: &[i64]) -> Result<Vec<i64>> {
        if pks.is_empty() {
            return Ok(Vec::new());
        }
        let pks = pks.to_vec();
        self.read(move |c| existing_groups_in(c, org, &pks)).await
    }
}

/// The change of updating user `pk`: before/after values of the fields that changed; a password change is recorded
/// without any secret.
fn updated(pk: i64, before: &User, after: &User, changes: &UserChanges) -> Change {
    let fields = |u: &User| match serde_json::to_value(user_record(u)) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    let (b, a) = (fields(before), fields(after));
    let mut before_map = UserFields::new();
    let mut after_map = UserFields::new();
    for (k, av) in a {
        let bv = b.get(&k).cloned().unwrap_or(Value::Null);
        if bv != av {
            before_map.insert(k.clone(), bv);
            after_map.insert(k, av);
        }
    }
    if changes.password_hash.is_some() {
        after_map.insert("password".into(), Value::from("changed"));
    }
    if let Some(image) = &changes.avatar {
        after_map.insert("avatar".into(), image.as_ref().map(|(content_type, _)| content_type.clone()).into());
    }
    Change::UserUpdated { pk, before: before_map, after: after_map }
}
