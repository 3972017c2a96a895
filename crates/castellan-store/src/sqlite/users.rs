//! Users, memberships (as the `groups` field), password history and avatars.

use async_trait::async_trait;
use castellan_core::model::{NewUser, User, UserChanges};
use serde_json::{Map, Value, json};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};
use time::OffsetDateTime;

use super::{SqliteStore, Tx, backend, log_write, map_err, push_in};
use crate::time_util::{from_micros, now_micros, to_micros};
use crate::{LoginRecord, Page, Result, Revision, StoreError, UserFilter, UserOrder, UserQuery, UserStore, WriteCtx};

const USER_COLUMNS: &str = "pk, username, email, first_name, last_name, description, is_staff, is_active, is_superuser, \
     date_joined, last_login, org, phone_number, avatar_type IS NOT NULL AS has_avatar, password_hash IS NOT NULL AS has_password";

#[derive(sqlx::FromRow)]
struct UserRow {
    pk: i64,
    username: String,
    email: String,
    first_name: String,
    last_name: String,
    description: String,
    is_staff: bool,
    is_active: bool,
    is_superuser: bool,
    date_joined: i64,
    last_login: Option<i64>,
    org: i64,
    phone_number: Option<String>,
    has_avatar: bool,
    has_password: bool,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        User {
            pk: r.pk,
            username: r.username,
            first_name: r.first_name,
            last_name: r.last_name,
            email: r.email,
            description: r.description,
            is_staff: r.is_staff,
            is_active: r.is_active,
            is_superuser: r.is_superuser,
            date_joined: from_micros(r.date_joined),
            last_login: r.last_login.map(from_micros),
            org: r.org,
            groups: Vec::new(),
            phone_number: r.phone_number,
            has_avatar: r.has_avatar,
            has_password: r.has_password,
        }
    }
}

/// The user as recorded in the change log (never a password or hash).
fn user_json(u: &User) -> Value {
    json!({
        "username": u.username, "email": u.email, "first_name": u.first_name, "last_name": u.last_name,
        "description": u.description, "is_staff": u.is_staff, "is_active": u.is_active,
        "is_superuser": u.is_superuser, "org": u.org, "groups": u.groups, "phone_number": u.phone_number,
    })
}

/// Loads the unexpired direct groups of each user with one query.
async fn attach_groups(conn: &mut SqliteConnection, users: &mut [User]) -> Result<()> {
    if users.is_empty() {
        return Ok(());
    }
    let mut qb = QueryBuilder::<Sqlite>::new("SELECT user, grp FROM memberships WHERE (expires_at IS NULL OR expires_at > ");
    qb.push_bind(now_micros());
    qb.push(") AND user IN (");
    let mut sep = qb.separated(", ");
    for u in users.iter() {
        sep.push_bind(u.pk);
    }
    qb.push(") ORDER BY user, grp");
    let rows: Vec<(i64, i64)> = qb.build_query_as().fetch_all(&mut *conn).await.map_err(backend)?;
    for (user, grp) in rows {
        if let Ok(i) = users.binary_search_by_key(&user, |u| u.pk) {
            users[i].groups.push(grp);
        } else if let Some(u) = users.iter_mut().find(|u| u.pk == user) {
            u.groups.push(grp);
        }
    }
    Ok(())
}

async fn fetch_user(conn: &mut SqliteConnection, pk: i64) -> Result<User> {
    let row: UserRow = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {USER_COLUMNS} FROM users WHERE pk = ?")))
        .bind(pk)
        .fetch_one(&mut *conn)
        .await
        .map_err(map_err)?;
    let mut users = [User::from(row)];
    attach_groups(conn, &mut users).await?;
    let [user] = users;
    Ok(user)
}

/// Fails with `Conflict{groups}` unless every group exists in `org`.
async fn ensure_groups(conn: &mut SqliteConnection, org: i64, groups: &[i64]) -> Result<()> {
    if groups.is_empty() {
        return Ok(());
    }
    let found = existing_groups_in(conn, org, groups).await?;
    if found.len() == groups.len() { Ok(()) } else { Err(StoreError::Conflict { constraint: "groups".into() }) }
}

async fn existing_groups_in(conn: &mut SqliteConnection, org: i64, groups: &[i64]) -> Result<Vec<i64>> {
    let mut qb = QueryBuilder::<Sqlite>::new("SELECT pk FROM groups WHERE org = ");
    qb.push_bind(org);
    qb.push(" AND pk IN (");
    let mut sep = qb.separated(", ");
    for g in groups {
        sep.push_bind(*g);
    }
    qb.push(") ORDER BY pk");
    qb.build_query_scalar().fetch_all(&mut *conn).await.map_err(backend)
}

/// Replaces a user's direct memberships with `groups`, keeping expiries of those that stay.
async fn set_groups(tx: &mut Tx, user: i64, groups: &[i64]) -> Result<()> {
    let mut qb = QueryBuilder::<Sqlite>::new("DELETE FROM memberships WHERE user = ");
    qb.push_bind(user);
    if !groups.is_empty() {
        qb.push(" AND grp NOT IN (");
        let mut sep = qb.separated(", ");
        for g in groups {
            sep.push_bind(*g);
        }
        qb.push(")");
    }
    qb.build().execute(&mut **tx).await.map_err(map_err)?;
    for g in groups {
        sqlx::query("INSERT OR IGNORE INTO memberships (user, grp) VALUES (?, ?)")
            .bind(user)
            .bind(*g)
            .execute(&mut **tx)
            .await
            .map_err(map_err)?;
    }
    Ok(())
}

fn like_prefix(term: &str) -> String {
    format!("{}%", super::like_escape(term))
}

/// A case-insensitive `GLOB` prefix pattern: each letter becomes a class of its case variants.
///
/// SQLite's `lower()` and `LIKE` fold ASCII only, so `lower(first_name) LIKE 'él%'` would miss "Élodie";
/// username and email have Rust-lowercased columns, names do not.
fn glob_prefix_any_case(term: &str) -> String {
    let mut pattern = String::new();
    for c in term.chars() {
        let mut variants = vec![c];
        let lower: Vec<char> = c.to_lowercase().collect();
        let upper: Vec<char> = c.to_uppercase().collect();
        for case in [lower, upper] {
            if let [v] = case[..]
                && !variants.contains(&v)
            {
                variants.push(v);
            }
        }
        match c {
            '*' | '?' | '[' | ']' => pattern.extend(['[', c, ']']),
            _ if variants.len() > 1 => {
                pattern.push('[');
                pattern.extend(variants);
                pattern.push(']');
            }
            _ => pattern.push(c),
        }
    }
    pattern.push('*');
    pattern
}

fn push_filter(qb: &mut QueryBuilder<Sqlite>, f: &UserFilter) {
    qb.push(" WHERE 1 = 1");
    push_in(qb, "pk", &f.ids);
    let lower = |v: &[String]| v.iter().map(|s| s.to_lowercase()).collect::<Vec<_>>();
    push_in(qb, "username_lower", &lower(&f.usernames));
    push_in(qb, "email_lower", &lower(&f.emails));
    push_in(qb, "first_name", &f.first_names);
    push_in(qb, "last_name", &f.last_names);
    push_in(qb, "org", &f.orgs);
    for (column, value) in [("is_active", f.is_active), ("is_staff", f.is_staff), ("is_superuser", f.is_superuser)] {
        if let Some(v) = value {
            qb.push(format!(" AND {column} = "));
            qb.push_bind(v);
        }
    }
    if !f.groups.is_empty() {
        qb.push(" AND pk IN (SELECT user FROM memberships WHERE (expires_at IS NULL OR expires_at > ");
        qb.push_bind(now_micros());
        qb.push(")");
        if f.groups_recursive {
            qb.push(" AND grp IN (SELECT descendant FROM group_closure WHERE 1 = 1");
            push_in(qb, "ancestor", &f.groups);
            qb.push(")");
        } else {
            push_in(qb, "grp", &f.groups);
        }
        qb.push(")");
    }
    if let Some(viewer) = f.visible_to {
        qb.push(" AND (pk = ").push_bind(viewer);
        qb.push(" OR pk IN (SELECT user FROM memberships WHERE (expires_at IS NULL OR expires_at > ");
        qb.push_bind(now_micros());
        qb.push(") AND grp IN (");
        super::groups::push_visible_groups(qb, viewer);
        qb.push(")))");
    }
    if let Some(term) = f.search.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        if term.chars().count() >= 3 {
            qb.push(" AND pk IN (SELECT rowid FROM users_fts WHERE users_fts MATCH ");
            qb.push_bind(format!("\"{}\"", term.replace('"', "\"\"")));
            qb.push(")");
        } else {
            let like = like_prefix(term);
            let glob = glob_prefix_any_case(term);
            qb.push(" AND (username_lower LIKE ");
            qb.push_bind(like.clone());
            qb.push(" ESCAPE '\\' OR email_lower LIKE ");
            qb.push_bind(like);
            qb.push(" ESCAPE '\\' OR first_name GLOB ");
            qb.push_bind(glob.clone());
            qb.push(" OR last_name GLOB ");
            qb.push_bind(glob);
            qb.push(")");
        }
    }
}

/// A user row with the total count of the rows matching its query.
#[derive(sqlx::FromRow)]
struct CountedRow {
    #[sqlx(flatten)]
    user: UserRow,
    total: i64,
}

/// Whether the filter's search goes through the trigram index (terms of 3+ characters).
fn uses_text_index(f: &UserFilter) -> bool {
    f.search.as_deref().map(str::trim).is_some_and(|t| t.chars().count() >= 3)
}

/// Filter, ordering and window of a page query.
fn push_page(qb: &mut QueryBuilder<Sqlite>, query: &UserQuery) {
    push_filter(qb, &query.filter);
    push_order(qb, &query.ordering);
    qb.push(" LIMIT ").push_bind(query.limit).push(" OFFSET ").push_bind(query.offset);
}

/// How many users match: from the maintained counters when only the organisation is filtered, else counted.
async fn count_matching(conn: &mut SqliteConnection, filter: &UserFilter) -> Result<i64> {
    let mut qb = if only_orgs(filter) {
        let mut qb = QueryBuilder::<Sqlite>::new("SELECT COALESCE(SUM(n), 0) FROM user_counts WHERE 1 = 1");
        push_in(&mut qb, "org", &filter.orgs);
        qb
    } else {
        let mut qb = QueryBuilder::<Sqlite>::new("SELECT count(*) FROM users");
        push_filter(&mut qb, filter);
        qb
    };
    qb.build_query_scalar().fetch_one(&mut *conn).await.map_err(backend)
}

/// Whether the filter restricts nothing but the organisation.
fn only_orgs(f: &UserFilter) -> bool {
    let UserFilter {
        ids,
        usernames,
        emails,
        first_names,
        last_names,
        groups,
        groups_recursive: _,
        visible_to,
        is_active,
        is_staff,
        is_superuser,
        orgs: _,
        search,
    } = f;
    ids.is_empty()
        && usernames.is_empty()
        && emails.is_empty()
        && first_names.is_empty()
        && last_names.is_empty()
        && groups.is_empty()
        && visible_to.is_none()
        && is_active.is_none()
        && is_staff.is_none()
        && is_superuser.is_none()
        && search.as_deref().is_none_or(|s| s.trim().is_empty())
}

fn order_column(o: UserOrder) -> &'static str {
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

fn push_order(qb: &mut QueryBuilder<Sqlite>, ordering: &[(UserOrder, bool)]) {
    qb.push(" ORDER BY ");
    let mut pk_desc = false;
    for (o, desc) in ordering {
        if *o == UserOrder::Id {
            pk_desc = *desc;
            break;
        }
        qb.push(format!("{} {}, ", order_column(*o), if *desc { "DESC" } else { "ASC" }));
    }
    qb.push(if pk_desc { "pk DESC" } else { "pk ASC" });
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn create_user(&self, ctx: &WriteCtx, new: NewUser) -> Result<(User, Revision)> {
        let mut tx = self.begin_write().await?;
        ensure_groups(&mut tx, new.org, &new.groups).await?;
        let now = now_micros();
        let pk: i64 = sqlx::query_scalar(
            "INSERT INTO users (username, username_lower, password_hash, email, email_lower, first_name, last_name, description,
                                is_staff, is_active, is_superuser, date_joined, org)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING pk",
        )
        .bind(&new.username)
        .bind(new.username.to_lowercase())
        .bind(new.password_hash.as_deref())
        .bind(&new.email)
        .bind(new.email.to_lowercase())
        .bind(&new.first_name)
        .bind(&new.last_name)
        .bind(&new.description)
        .bind(new.is_staff)
        .bind(new.is_active)
        .bind(new.is_superuser)
        .bind(now)
        .bind(new.org)
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
        set_groups(&mut tx, pk, &new.groups).await?;
        let user = fetch_user(&mut tx, pk).await?;
        let revision = log_write(tx, ctx, "create", "users", &pk.to_string(), &json!({"after": user_json(&user)})).await?;
        Ok((user, revision))
    }

    async fn get_user(&self, pk: i64) -> Result<User> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        fetch_user(&mut conn, pk).await
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
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        let row: Option<(i64, Option<String>)> = sqlx::query_as("SELECT pk, password_hash FROM users WHERE username_lower = ?")
            .bind(username.to_lowercase())
            .fetch_optional(&mut *conn)
            .await
            .map_err(backend)?;
        let Some((pk, password_hash)) = row else { return Ok(None) };
        let user = fetch_user(&mut conn, pk).await?;
        Ok(Some(LoginRecord { user, password_hash }))
    }

    async fn list_users(&self, query: &UserQuery) -> Result<Page<User>> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        let (count, rows) = if uses_text_index(&query.filter) {
            // The text search is the expensive part: run it once for the page and the total together.
            let mut qb = QueryBuilder::<Sqlite>::new(format!("SELECT {USER_COLUMNS}, count(*) OVER () AS total FROM users"));
            push_page(&mut qb, query);
            let rows: Vec<CountedRow> = qb.build_query_as().fetch_all(&mut *conn).await.map_err(backend)?;
            let count = match rows.first() {
                Some(row) => row.total,
                None if query.offset == 0 => 0,
                None => count_matching(&mut conn, &query.filter).await?,
            };
            (count, rows.into_iter().map(|r| r.user).collect())
        } else {
            let count = count_matching(&mut conn, &query.filter).await?;
            let mut qb = QueryBuilder::<Sqlite>::new(format!("SELECT {USER_COLUMNS} FROM users"));
            push_page(&mut qb, query);
            let rows: Vec<UserRow> = qb.build_query_as().fetch_all(&mut *conn).await.map_err(backend)?;
            (count, rows)
        };
        let mut items: Vec<User> = rows.into_iter().map(User::from).collect();
        attach_groups(&mut conn, &mut items).await?;
        Ok(Page { count, items })
    }

    async fn count_users(&self) -> Result<i64> {
        sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&self.pool).await.map_err(backend)
    }

    async fn update_user(&self, ctx: &WriteCtx, pk: i64, c: UserChanges) -> Result<(User, Revision)> {
        let mut tx = self.begin_write().await?;
        let before = fetch_user(&mut tx, pk).await?;
        let mut qb = QueryBuilder::<Sqlite>::new("UPDATE users SET pk = pk");
        if let Some(v) = &c.username {
            qb.push(", username = ").push_bind(v.clone()).push(", username_lower = ").push_bind(v.to_lowercase());
        }
        if let Some(v) = &c.email {
            qb.push(", email = ").push_bind(v.clone()).push(", email_lower = ").push_bind(v.to_lowercase());
        }
        for (column, value) in [("first_name", &c.first_name), ("last_name", &c.last_name), ("description", &c.description)] {
            if let Some(v) = value {
                qb.push(format!(", {column} = ")).push_bind(v.clone());
            }
        }
        for (column, value) in [("is_active", c.is_active), ("is_staff", c.is_staff), ("is_superuser", c.is_superuser)] {
            if let Some(v) = value {
                qb.push(format!(", {column} = ")).push_bind(v);
            }
        }
        if let Some(v) = &c.phone_number {
            qb.push(", phone_number = ").push_bind(v.clone());
        }
        if let Some(image) = &c.avatar {
            let (content_type, bytes) = image.clone().unzip();
            qb.push(", avatar_type = ").push_bind(content_type).push(", avatar = ").push_bind(bytes);
        }
        if let Some(hash) = &c.password_hash {
            sqlx::query("INSERT INTO password_history (user, hash) SELECT pk, password_hash FROM users WHERE pk = ? AND password_hash IS NOT NULL")
                .bind(pk)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            qb.push(", password_hash = ").push_bind(hash.clone());
        }
        qb.push(" WHERE pk = ").push_bind(pk);
        qb.build().execute(&mut *tx).await.map_err(map_err)?;
        if let Some(groups) = &c.groups {
            ensure_groups(&mut tx, before.org, groups).await?;
            set_groups(&mut tx, pk, groups).await?;
        }
        let after = fetch_user(&mut tx, pk).await?;
        let revision = log_write(tx, ctx, "update", "users", &pk.to_string(), &diff(&before, &after, &c)).await?;
        Ok((after, revision))
    }

    async fn delete_user(&self, ctx: &WriteCtx, pk: i64) -> Result<Revision> {
        let mut tx = self.begin_write().await?;
        let before = fetch_user(&mut tx, pk).await?;
        sqlx::query("DELETE FROM users WHERE pk = ?").bind(pk).execute(&mut *tx).await.map_err(map_err)?;
        let revision = log_write(tx, ctx, "delete", "users", &pk.to_string(), &json!({"before": user_json(&before)})).await?;
        Ok(revision)
    }

    async fn password_hashes(&self, pk: i64, n: usize) -> Result<Vec<String>> {
        let limit = i64::try_from(n).unwrap_or(i64::MAX);
        sqlx::query_scalar(
            "SELECT hash FROM (
                 SELECT password_hash AS hash, 9223372036854775807 AS ord FROM users WHERE pk = ?1 AND password_hash IS NOT NULL
                 UNION ALL SELECT hash, pk AS ord FROM password_history WHERE user = ?1
             ) ORDER BY ord DESC LIMIT ?2",
        )
        .bind(pk)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)
    }

    async fn set_last_login(&self, pk: i64, at: OffsetDateTime) -> Result<()> {
        sqlx::query("UPDATE users SET last_login = ? WHERE pk = ?")
            .bind(to_micros(at))
            .bind(pk)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn get_avatar(&self, pk: i64) -> Result<Option<(String, Vec<u8>)>> {
        let row: Option<(Option<String>, Option<Vec<u8>>)> = sqlx::query_as("SELECT avatar_type, avatar FROM users WHERE pk = ?")
            .bind(pk)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        match row {
            None => Err(StoreError::NotFound),
            Some((Some(t), Some(b))) => Ok(Some((t, b))),
            Some(_) => Ok(None),
        }
    }

    async fn existing_groups(&self, org: i64, pks: &[i64]) -> Result<Vec<i64>> {
        if pks.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        existing_groups_in(&mut conn, org, pks).await
    }
}

/// Before/after values of the fields that changed; a password change is recorded without any secret.
fn diff(before: &User, after: &User, changes: &UserChanges) -> Value {
    let (b, a) = (user_json(before), user_json(after));
    let mut before_map = Map::new();
    let mut after_map = Map::new();
    if let (Value::Object(b), Value::Object(a)) = (b, a) {
        for (k, av) in a {
            let bv = b.get(&k).cloned().unwrap_or(Value::Null);
            if bv != av {
                before_map.insert(k.clone(), bv);
                after_map.insert(k, av);
            }
        }
    }
    if changes.password_hash.is_some() {
        after_map.insert("password".into(), json!("changed"));
    }
    if let Some(image) = &changes.avatar {
        after_map.insert("avatar".into(), json!(image.as_ref().map(|(content_type, _)| content_type)));
    }
    json!({"before": before_map, "after": after_map})
}
