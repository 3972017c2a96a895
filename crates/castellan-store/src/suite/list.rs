//! Listing users: filters, search, ordering with the key tiebreak, paging and exact counts.

use castellan_core::model::{NewUser, User, UserChanges};
use time::{Duration, OffsetDateTime};

use super::{ctx, make_org, make_user, names};
use crate::{Page, Store, UserCursor, UserFilter, UserOrder, UserQuery};

/// Six users over two organisations, created in this order (so keys ascend in this order).
struct People {
    acme: i64,
    globex: i64,
    alice: User,
    bob: User,
    carol: User,
    dave: User,
    erin: User,
    mallory: User,
}

/// Creates [`People`].
async fn people(store: &dyn Store) -> People {
    let acme = make_org(store, "acme").await.pk;
    let globex = make_org(store, "globex").await.pk;
    let mut made = Vec::new();
    // (username, first, last, email, active, staff, superuser, org)
    let rows = [
        ("alice", "Alice", "Liddell", "alice@acme.test", true, true, true, acme),
        ("bob", "Robert", "Smith", "bob@acme.test", true, false, false, acme),
        ("Carol", "Carol", "Smith", "Carol@Globex.test", false, false, false, globex),
        ("dave", "David", "Jones", "dave_x@acme.test", true, true, false, acme),
        ("erin", "Erin", "Smith", "erin@globex.test", true, false, false, globex),
        ("mallory", "Mallory", "Brown", "mallory@acme.test", false, false, false, acme),
    ];
    for (username, first, last, email, is_active, is_staff, is_superuser, org) in rows {
        let new = NewUser {
            username: username.into(),
            password_hash: None,
            email: email.into(),
            first_name: first.into(),
            last_name: last.into(),
            description: String::new(),
            is_active,
            is_staff,
            is_superuser,
            org,
            groups: Vec::new(),
        };
        made.push(make_user(store, new).await);
    }
    let [alice, bob, carol, dave, erin, mallory]: [User; 6] = made.try_into().unwrap();
    People { acme, globex, alice, bob, carol, dave, erin, mallory }
}

/// Lists with a filter, default ordering and a large page.
async fn find(store: &dyn Store, filter: UserFilter) -> Page<User> {
    store.list_users(&UserQuery { filter, limit: 1000, ..Default::default() }).await.unwrap()
}

/// The usernames matched by `filter`, in key order, after checking the count agrees.
async fn found(store: &dyn Store, filter: UserFilter) -> Vec<String> {
    let page = find(store, filter).await;
    assert_eq!(page.count, page.items.len() as i64, "count is exact");
    names(&page.items).into_iter().map(String::from).collect()
}

/// The usernames matched by a search term.
async fn search(store: &dyn Store, term: &str) -> Vec<String> {
    found(store, UserFilter { search: Some(term.into()), ..Default::default() }).await
}

/// Usernames in the order given by `ordering`.
async fn ordered(store: &dyn Store, ordering: &[(UserOrder, bool)]) -> Vec<String> {
    let query = UserQuery { ordering: ordering.to_vec(), limit: 1000, ..Default::default() };
    names(&store.list_users(&query).await.unwrap().items).into_iter().map(String::from).collect()
}

/// `get_users` returns known keys in ascending order and skips unknown ones.
pub async fn get_users_ascending_skips_unknown(store: &dyn Store) {
    let p = people(store).await;
    let got = store.get_users(&[p.erin.pk, p.alice.pk, p.erin.pk + 1000, p.carol.pk]).await.unwrap();
    assert_eq!(got, vec![p.alice.clone(), p.carol.clone(), p.erin.clone()]);
    assert!(store.get_users(&[]).await.unwrap().is_empty());
    assert!(store.get_users(&[p.mallory.pk + 1000]).await.unwrap().is_empty());
    assert_eq!(store.count_users().await.unwrap(), 6);
}

/// Each filter narrows the list; values within a filter match any, filters combine with AND.
pub async fn list_users_filters(store: &dyn Store) {
    let p = people(store).await;
    let all = find(store, UserFilter::default()).await;
    assert_eq!(all.count, 6);
    assert_eq!(
        all.items,
        vec![p.alice.clone(), p.bob.clone(), p.carol.clone(), p.dave.clone(), p.erin.clone(), p.mallory.clone()]
    );

    let f = |build: fn(&mut UserFilter)| {
        let mut filter = UserFilter::default();
        build(&mut filter);
        filter
    };
    let ids = UserFilter { ids: vec![p.bob.pk, p.dave.pk, p.mallory.pk + 1000], ..Default::default() };
    assert_eq!(found(store, ids).await, ["bob", "dave"]);
    assert_eq!(
        found(store, f(|f| f.usernames = vec!["ALICE".into(), "carol".into(), "nobody".into()])).await,
        ["alice", "Carol"]
    );
    assert_eq!(found(store, f(|f| f.emails = vec!["BOB@ACME.TEST".into(), "carol@globex.test".into()])).await, ["bob", "Carol"]);
    assert_eq!(found(store, f(|f| f.first_names = vec!["Robert".into(), "Erin".into()])).await, ["bob", "erin"]);
    assert!(found(store, f(|f| f.first_names = vec!["robert".into()])).await.is_empty(), "first names match exactly");
    assert_eq!(found(store, f(|f| f.last_names = vec!["Smith".into()])).await, ["bob", "Carol", "erin"]);
    assert_eq!(found(store, f(|f| f.is_active = Some(false))).await, ["Carol", "mallory"]);
    assert_eq!(found(store, f(|f| f.is_active = Some(true))).await, ["alice", "bob", "dave", "erin"]);
    assert_eq!(found(store, f(|f| f.is_staff = Some(true))).await, ["alice", "dave"]);
    assert_eq!(found(store, f(|f| f.is_superuser = Some(true))).await, ["alice"]);
    assert_eq!(found(store, f(|f| f.is_superuser = Some(false))).await.len(), 5);
    assert_eq!(found(store, UserFilter { orgs: vec![p.globex], ..Default::default() }).await, ["Carol", "erin"]);
    assert_eq!(found(store, UserFilter { orgs: vec![p.acme, p.globex], ..Default::default() }).await.len(), 6);
    assert!(found(store, UserFilter { orgs: vec![p.globex + 1000], ..Default::default() }).await.is_empty());
    assert!(found(store, f(|f| f.groups = vec![4242])).await.is_empty(), "no one is in an unknown group");

    let combined =
        UserFilter { last_names: vec!["Smith".into()], orgs: vec![p.globex], is_active: Some(true), ..Default::default() };
    assert_eq!(found(store, combined).await, ["erin"]);
    let combined = UserFilter { ids: vec![p.alice.pk, p.bob.pk], is_staff: Some(true), ..Default::default() };
    assert_eq!(found(store, combined).await, ["alice"]);
    let nothing = UserFilter { usernames: vec!["alice".into()], orgs: vec![p.globex], ..Default::default() };
    let page = find(store, nothing).await;
    assert_eq!((page.count, page.items.len()), (0, 0));
}

/// Search: 3+ characters match any substring (any case) of username, names or email; shorter terms match prefixes.
pub async fn list_users_search(store: &dyn Store) {
    let p = people(store).await;
    assert_eq!(search(store, "lid").await, ["alice"], "substring of a last name");
    assert_eq!(search(store, "SMI").await, ["bob", "Carol", "erin"], "case-insensitive");
    assert_eq!(search(store, "ober").await, ["bob"], "substring of a first name");
    assert_eq!(search(store, "allor").await, ["mallory"], "substring of a username");
    assert_eq!(search(store, "globex").await, ["Carol", "erin"], "substring of an email");
    assert_eq!(search(store, "acme.test").await, ["alice", "bob", "dave", "mallory"]);
    assert_eq!(search(store, "e_x").await, ["dave"], "underscore is literal");
    assert_eq!(search(store, "  lid  ").await, ["alice"], "the term is trimmed");
    assert!(search(store, "zzz").await.is_empty());
    assert!(search(store, "a%c").await.is_empty(), "percent is literal");

    assert_eq!(search(store, "al").await, ["alice"], "short terms match prefixes only (not m-al-lory)");
    assert_eq!(search(store, "AL").await, ["alice"]);
    assert_eq!(search(store, "sm").await, ["bob", "Carol", "erin"], "prefix of a last name");
    assert_eq!(search(store, "ro").await, ["bob"], "prefix of a first name");
    assert_eq!(search(store, "e").await, ["erin"]);
    assert!(search(store, "ll").await.is_empty(), "a short infix is not a prefix");
    assert!(search(store, "d_").await.is_empty(), "underscore is literal in prefixes too");
    assert!(search(store, "%").await.is_empty(), "percent is literal in prefixes too");

    assert_eq!(search(store, "").await.len(), 6, "an empty term does not filter");
    assert_eq!(search(store, "   ").await.len(), 6, "a blank term does not filter");

    let combined = UserFilter { search: Some("smi".into()), orgs: vec![p.globex], ..Default::default() };
    assert_eq!(found(store, combined).await, ["Carol", "erin"]);
    let combined = UserFilter { search: Some("s".into()), is_active: Some(true), ..Default::default() };
    assert_eq!(found(store, combined).await, ["bob", "erin"]);

    // Paged in key order either way, with the exact count, past the end too.
    let window = |descending: bool, offset: i64, limit: i64| UserQuery {
        filter: UserFilter { search: Some("acme.test".into()), ..Default::default() },
        ordering: vec![(UserOrder::Id, descending)],
        offset,
        limit,
        skip_groups: false,
        after: None,
    };
    let mut keys = [p.alice.pk, p.bob.pk, p.dave.pk, p.mallory.pk];
    keys.sort_unstable();
    let page = store.list_users(&window(true, 1, 2)).await.unwrap();
    assert_eq!((page.count, page.items.iter().map(|u| u.pk).collect::<Vec<_>>()), (4, vec![keys[2], keys[1]]));
    let page = store.list_users(&window(false, 3, 5)).await.unwrap();
    assert_eq!((page.count, page.items.iter().map(|u| u.pk).collect::<Vec<_>>()), (4, vec![keys[3]]));
    let past = store.list_users(&window(false, 10, 2)).await.unwrap();
    assert_eq!((past.count, past.items.len()), (4, 0));
}

/// Search sees renames and deletions.
pub async fn list_users_search_follows_updates(store: &dyn Store) {
    let p = people(store).await;
    let changes = UserChanges { last_name: Some("Taylor".into()), username: Some("bobby".into()), ..Default::default() };
    store.update_user(&ctx(), p.bob.pk, changes).await.unwrap();
    assert_eq!(search(store, "smi").await, ["Carol", "erin"]);
    assert_eq!(search(store, "tay").await, ["bobby"]);
    assert_eq!(search(store, "ta").await, ["bobby"]);
    assert_eq!(search(store, "obb").await, ["bobby"]);

    let changes = UserChanges { email: Some("erin@initech.test".into()), ..Default::default() };
    store.update_user(&ctx(), p.erin.pk, changes).await.unwrap();
    assert_eq!(search(store, "globex").await, ["Carol"]);
    assert_eq!(search(store, "initech").await, ["erin"]);

    store.delete_user(&ctx(), p.carol.pk).await.unwrap();
    assert!(search(store, "globex").await.is_empty());
    assert_eq!(search(store, "smi").await, ["erin"]);
    assert!(search(store, "ca").await.is_empty());
}

/// Ordering by each column, ascending and descending, with ties broken by ascending key.
pub async fn list_users_ordering(store: &dyn Store) {
    use UserOrder::{DateJoined, Email, FirstName, Id, LastLogin, LastName, Username};
    let p = people(store).await;
    let by_key = ["alice", "bob", "Carol", "dave", "erin", "mallory"];
    let rev = |v: &[&str]| v.iter().rev().map(|s| s.to_string()).collect::<Vec<_>>();

    assert_eq!(ordered(store, &[]).await, by_key, "default order is by key");
    assert_eq!(ordered(store, &[(Id, false)]).await, by_key);
    assert_eq!(ordered(store, &[(Id, true)]).await, rev(&by_key));

    // Usernames sort case-insensitively: Carol between bob and dave.
    assert_eq!(ordered(store, &[(Username, false)]).await, by_key);
    assert_eq!(ordered(store, &[(Username, true)]).await, rev(&by_key));

    let by_email = ["alice", "bob", "Carol", "dave", "erin", "mallory"];
    assert_eq!(ordered(store, &[(Email, false)]).await, by_email);
    assert_eq!(ordered(store, &[(Email, true)]).await, rev(&by_email));

    let by_first = ["alice", "Carol", "dave", "erin", "mallory", "bob"];
    assert_eq!(ordered(store, &[(FirstName, false)]).await, by_first);
    assert_eq!(ordered(store, &[(FirstName, true)]).await, rev(&by_first));

    // Three Smiths tie: the key breaks the tie, ascending, whichever way the column sorts.
    assert_eq!(ordered(store, &[(LastName, false)]).await, ["mallory", "dave", "alice", "bob", "Carol", "erin"]);
    assert_eq!(ordered(store, &[(LastName, true)]).await, ["bob", "Carol", "erin", "alice", "dave", "mallory"]);
    // A second key orders within the tie.
    assert_eq!(
        ordered(store, &[(LastName, false), (FirstName, true)]).await,
        ["mallory", "dave", "alice", "bob", "erin", "Carol"]
    );
    assert_eq!(ordered(store, &[(LastName, true), (Id, true)]).await, ["erin", "Carol", "bob", "alice", "dave", "mallory"]);

    assert_eq!(ordered(store, &[(DateJoined, false)]).await, by_key, "joined in creation order");
    assert_eq!(ordered(store, &[(DateJoined, true)]).await, rev(&by_key));

    // Every user gets a distinct login time (NULL placement differs between databases, so none is left NULL).
    let base = OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap();
    for (user, minutes) in [(&p.alice, 5), (&p.bob, 1), (&p.carol, 3), (&p.dave, 2), (&p.erin, 6), (&p.mallory, 4)] {
        store.set_last_login(user.pk, base + Duration::minutes(minutes)).await.unwrap();
    }
    let by_login = ["bob", "dave", "Carol", "mallory", "alice", "erin"];
    assert_eq!(ordered(store, &[(LastLogin, false)]).await, by_login);
    assert_eq!(ordered(store, &[(LastLogin, true)]).await, rev(&by_login));
}

/// Offset and limit cut the ordered list; the count is the filter's total whatever the page.
pub async fn list_users_paging(store: &dyn Store) {
    people(store).await;
    let page = |offset: i64, limit: i64, filter: UserFilter| {
        let ordering = vec![(UserOrder::Username, false)];
        let query = UserQuery { filter, ordering, offset, limit, skip_groups: false, after: None };
        async move { store.list_users(&query).await.unwrap() }
    };
    let p = page(0, 2, UserFilter::default()).await;
    assert_eq!((p.count, names(&p.items)), (6, vec!["alice", "bob"]));
    let p = page(2, 2, UserFilter::default()).await;
    assert_eq!((p.count, names(&p.items)), (6, vec!["Carol", "dave"]));
    let p = page(4, 2, UserFilter::default()).await;
    assert_eq!((p.count, names(&p.items)), (6, vec!["erin", "mallory"]));
    let p = page(5, 10, UserFilter::default()).await;
    assert_eq!((p.count, names(&p.items)), (6, vec!["mallory"]));
    let p = page(6, 10, UserFilter::default()).await;
    assert_eq!((p.count, p.items.len()), (6, 0));
    let p = page(100, 10, UserFilter::default()).await;
    assert_eq!((p.count, p.items.len()), (6, 0));
    let p = page(0, 0, UserFilter::default()).await;
    assert_eq!((p.count, p.items.len()), (6, 0));

    let smiths = || UserFilter { last_names: vec!["Smith".into()], ..Default::default() };
    let p = page(1, 1, smiths()).await;
    assert_eq!((p.count, names(&p.items)), (3, vec!["Carol"]));
    let p = page(0, 100, smiths()).await;
    assert_eq!((p.count, names(&p.items)), (3, vec!["bob", "Carol", "erin"]));
    let searched = UserFilter { search: Some("acme".into()), ..Default::default() };
    let p = page(1, 2, searched).await;
    assert_eq!((p.count, names(&p.items)), (4, vec!["bob", "dave"]));
}

/// Search is case-insensitive beyond ASCII, and query-syntax characters are plain text, never errors.
pub async fn list_users_search_unicode_and_syntax(store: &dyn Store) {
    let org = make_org(store, "acme").await.pk;
    let new = NewUser { first_name: "Élodie".into(), last_name: "Ångström".into(), ..super::new_user(org, "Émile") };
    make_user(store, new).await;
    make_user(store, super::new_user(org, "alice")).await;
    make_user(store, NewUser { first_name: "?x".into(), last_name: "*Star[1]".into(), ..super::new_user(org, "sym") }).await;

    assert_eq!(search(store, "*s").await, ["sym"], "an asterisk is literal in a short search");
    assert_eq!(search(store, "*").await, ["sym"]);
    assert_eq!(search(store, "?x").await, ["sym"], "a question mark is literal");
    assert_eq!(search(store, "?").await, ["sym"]);
    assert!(search(store, "[").await.is_empty(), "a bracket is literal");
    assert!(search(store, "]").await.is_empty());
    assert_eq!(search(store, "r[1]").await, ["sym"], "brackets are literal in a long search");
    assert_eq!(search(store, "ÉMI").await, ["Émile"], "substring of a username, any case");
    assert_eq!(search(store, "émi").await, ["Émile"]);
    assert_eq!(search(store, "ÉLO").await, ["Émile"], "substring of a first name, any case");
    assert_eq!(search(store, "ångs").await, ["Émile"], "substring of a last name, any case");
    assert_eq!(search(store, "ém").await, ["Émile"], "prefix of a username, any case");
    assert_eq!(search(store, "él").await, ["Émile"], "prefix of a first name, any case");
    assert_eq!(search(store, "ÅN").await, ["Émile"], "prefix of a last name, any case");

    for term in [
        "\"",
        "a\"",
        "ali\"ce",
        "\"ali\"",
        "ali*",
        "(ali)",
        "ali OR bob",
        "NEAR(ali bob)",
        "username:ali",
        "-ali",
        "^ali",
        "'",
        "\\",
        "a'b",
    ] {
        let query =
            UserQuery { filter: UserFilter { search: Some(term.into()), ..Default::default() }, limit: 10, ..Default::default() };
        let page = store.list_users(&query).await.unwrap_or_else(|e| panic!("search {term:?} failed: {e}"));
        assert!(page.items.is_empty(), "search {term:?} is literal text, found {:?}", names(&page.items));
    }
    // Arbitrary terms over the characters query languages give meaning to: none is an error.
    let alphabet: Vec<char> = "\"'*?[]()^-+:.,;%_\\/ NEARORANDNOTaéÅ字😀0".chars().collect();
    let mut rng = castellan_core::engine::synthetic::Rng(42);
    for _ in 0..300 {
        let len = 1 + rng.below(8) as usize;
        let term: String = (0..len).map(|_| alphabet[rng.below(alphabet.len() as u64) as usize]).collect();
        let query = UserQuery {
            filter: UserFilter { search: Some(term.clone()), ..Default::default() },
            limit: 10,
            ..Default::default()
        };
        store.list_users(&query).await.unwrap_or_else(|e| panic!("search {term:?} failed: {e}"));
    }
}

/// Unfiltered and per-organisation counts stay exact through creates and deletes (they come from counters).
pub async fn list_users_counts_follow_writes(store: &dyn Store) {
    let p = people(store).await;
    let count = |orgs: Vec<i64>| {
        let query = UserQuery { filter: UserFilter { orgs, ..Default::default() }, limit: 0, ..Default::default() };
        async move { store.list_users(&query).await.unwrap().count }
    };
    assert_eq!(count(vec![]).await, 6);
    assert_eq!(count(vec![p.acme]).await, 4);
    assert_eq!(count(vec![p.globex]).await, 2);
    assert_eq!(count(vec![p.acme, p.globex]).await, 6);
    store.delete_user(&crate::WriteCtx::default(), p.bob.pk).await.unwrap();
    store.delete_user(&crate::WriteCtx::default(), p.erin.pk).await.unwrap();
    assert_eq!(count(vec![]).await, 4);
    assert_eq!(count(vec![p.acme]).await, 3);
    assert_eq!(count(vec![p.globex]).await, 1);
    assert_eq!(count(vec![9999]).await, 0);
}

/// Keyset pages (a cursor at a row, read forwards or backwards) walk every ordering exactly as offset pages do:
/// mixed directions, ties broken by pk, and users who never logged in (null keys) included.
pub async fn list_users_keyset_pages(store: &dyn Store) {
    use UserOrder::*;
    let p = people(store).await;
    let base = OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap();
    for (user, minutes) in [(&p.alice, 5), (&p.bob, 1), (&p.dave, 1)] {
        store.set_last_login(user.pk, base + Duration::minutes(minutes)).await.unwrap();
    }
    let orderings: [&[(UserOrder, bool)]; 8] = [
        &[],
        &[(Id, true)],
        &[(Username, false)],
        &[(Email, true)],
        &[(LastLogin, false)],
        &[(LastLogin, true)],
        &[(LastName, false), (FirstName, true)],
        &[(LastLogin, true), (Username, false), (Id, true)],
    ];
    for ordering in orderings {
        let query =
            |after: Option<UserCursor>, limit: i64| UserQuery { ordering: ordering.to_vec(), limit, after, ..Default::default() };
        let all = store.list_users(&query(None, 100)).await.unwrap().items;
        let pks = |users: &[User]| users.iter().map(|u| u.pk).collect::<Vec<_>>();
        let mut forwards = Vec::new();
        let mut cursor = None;
        loop {
            let page = store.list_users(&query(cursor, 2)).await.unwrap();
            assert_eq!(page.count, all.len() as i64, "{ordering:?}: the count is the filter's total");
            let Some(last) = page.items.last() else { break };
            cursor = Some(UserCursor::at(last, ordering, false));
            forwards.extend(pks(&page.items));
        }
        assert_eq!(forwards, pks(&all), "{ordering:?} forwards");
        let mut backwards = Vec::new();
        let mut cursor = Some(UserCursor::at(all.last().unwrap(), ordering, true));
        backwards.push(all.last().unwrap().pk);
        loop {
            let page = store.list_users(&query(cursor, 2)).await.unwrap();
            let Some(first) = page.items.first() else { break };
            cursor = Some(UserCursor::at(first, ordering, true));
            backwards.splice(0..0, pks(&page.items));
        }
        assert_eq!(backwards, pks(&all), "{ordering:?} backwards");
    }
}

/// Pages far into a list (found by their keys first, then read) hold the same rows in the same order as the
/// whole list does at that place, for any ordering and filter.
pub async fn deep_offsets_page_like_the_whole_list(store: &dyn Store) {
    use UserOrder::*;
    let org = make_org(store, "deep").await.pk;
    for i in 0..1_060 {
        // Usernames and emails in an order unlike the keys', and ties on first name.
        let mut user = super::new_user(org, &format!("d{:04}", (i * 389) % 1_060));
        user.first_name = ["Ann", "Bo", "Cy"][i % 3].to_string();
        user.email = format!("{:04}@deep.test", (i * 7) % 1_060);
        user.is_active = i % 5 != 0;
        make_user(store, user).await;
    }
    let orderings: [&[(UserOrder, bool)]; 4] =
        [&[], &[(Email, true)], &[(FirstName, false), (Username, true)], &[(LastLogin, true), (Id, true)]];
    for ordering in orderings {
        for filter in [UserFilter::default(), UserFilter { is_active: Some(true), ..Default::default() }] {
            let query = |offset: i64, limit: i64| UserQuery {
                filter: filter.clone(),
                ordering: ordering.to_vec(),
                offset,
                limit,
                ..Default::default()
            };
            // The whole list in one page read the usual way: the truth deep pages are held to.
            let whole = store.list_users(&query(0, 2_000)).await.unwrap();
            let all: Vec<i64> = whole.items.iter().map(|u| u.pk).collect();
            assert_eq!(all.len() as i64, whole.count, "{ordering:?}");
            for offset in [1_000, 1_010, 1_055] {
                let page = store.list_users(&query(offset, 7)).await.unwrap();
                let expected: Vec<i64> = all.iter().skip(offset as usize).take(7).copied().collect();
                assert_eq!(page.items.iter().map(|u| u.pk).collect::<Vec<_>>(), expected, "{ordering:?} at {offset}");
                assert!(page.items.iter().all(|u| !u.username.is_empty()), "whole rows are read");
            }
        }
    }
}

/// Deep pages of the whole list stay exact while users are created, renamed and deleted between them, for orderings
/// by one key or several (stores may keep positions of the list to seek from; those must follow every write).
pub async fn deep_pages_stay_exact_through_writes(store: &dyn Store) {
    use UserOrder::*;
    let org = make_org(store, "deep").await.pk;
    let mut users = Vec::new();
    for i in 0..2_300 {
        let mut user = super::new_user(org, &format!("f{:05}", (i * 7_919) % 2_300));
        user.first_name = ["Ann", "Bo", "Cy", "Di"][i % 4].to_string();
        user.last_name = format!("L{:03}", i % 500);
        users.push(make_user(store, user).await.pk);
    }
    let orderings: [&[(UserOrder, bool)]; 11] = [
        &[],
        &[(Id, true)],
        &[(Username, false)],
        &[(Username, true)],
        &[(Email, false)],
        &[(FirstName, false)],
        &[(LastName, true)],
        &[(DateJoined, true)],
        &[(LastName, false), (FirstName, true)],
        &[(FirstName, true), (Id, true)],
        &[(FirstName, false), (LastName, true), (Username, false)],
    ];
    let query = |ordering: &[(UserOrder, bool)], offset: i64, limit: i64| UserQuery {
        ordering: ordering.to_vec(),
        offset,
        limit,
        ..Default::default()
    };
    for round in 0..4 {
        for ordering in orderings {
            let whole = store.list_users(&query(ordering, 0, 5_000)).await.unwrap();
            let all: Vec<i64> = whole.items.iter().map(|u| u.pk).collect();
            for offset in [1_000, 1_999, 2_000, 2_250] {
                let page = store.list_users(&query(ordering, offset, 20)).await.unwrap();
                let expected: Vec<i64> = all.iter().skip(offset as usize).take(20).copied().collect();
                assert_eq!(page.count, whole.count, "{ordering:?} round {round}");
                let got: Vec<i64> = page.items.iter().map(|u| u.pk).collect();
                assert_eq!(got, expected, "{ordering:?} at {offset}, round {round}");
            }
        }
        // Let positions kept from the first pages settle, then move rows around them.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let by_name = store.list_users(&query(&[(Username, false)], 0, 5_000)).await.unwrap();
        for (i, user) in by_name.items.iter().enumerate().filter(|(i, _)| i % 997 == 999 % 997).take(3) {
            store.delete_user(&ctx(), user.pk).await.unwrap();
            users.retain(|pk| *pk != user.pk);
            let mut renamed = super::new_user(org, &format!("a{round}{i:05}"));
            renamed.first_name = "Zed".into();
            make_user(store, renamed).await;
        }
        for pk in users.iter().step_by(301) {
            let changes = UserChanges {
                username: Some(format!("r{round}-{pk}")),
                email: Some(format!("{round}{pk}@moved.test")),
                last_name: Some(format!("M{round}")),
                ..Default::default()
            };
            store.update_user(&ctx(), *pk, changes).await.unwrap();
        }
    }
}

/// Short searches (1 or 2 characters) match prefixes of the username, email, first and last name in any case: the
/// count holds each match once however many of its fields match, and pages hold the matches in order, whether
/// the matches are many (read in key order) or few among many users (looked up by their keys).
pub async fn short_searches_count_each_match_once(store: &dyn Store) {
    use UserOrder::*;
    let org = make_org(store, "short").await.pk;
    for i in 0..2_100 {
        let (name, first) = match i % 7 {
            0 => (format!("sa{i:04}"), "Sam"),
            1 => (format!("x{i:04}"), "sally"),
            2 => (format!("SA{i:04}x"), "Bo"),
            _ => (format!("u{i:04}"), "Cy"),
        };
        let mut user = super::new_user(org, &name);
        user.first_name = first.into();
        user.last_name = if i == 1_234 { "Qz".into() } else { "L".into() };
        user.email = if i % 5 == 0 { format!("sa{i}@short.test") } else { format!("m{i}@short.test") };
        make_user(store, user).await;
    }
    // One column with many matches and two with few, overlapping it and each other.
    for i in 0..210 {
        let mut user = super::new_user(org, &if i < 200 { format!("zo{i:03}") } else { format!("k{i:03}") });
        user.email = if i % 10 == 0 { format!("zo{i}@short.test") } else { format!("k{i}@short.test") };
        user.last_name = if i >= 200 || i % 40 == 0 { "Zorro".into() } else { "L".into() };
        make_user(store, user).await;
    }
    let everyone = store.list_users(&UserQuery { limit: 5_000, ..Default::default() }).await.unwrap().items;
    let terms =
        [("sa", vec![]), ("Sa", vec![(Username, true)]), ("q", vec![(Id, true)]), ("s", vec![(Email, false)]), ("ZO", vec![])];
    for (term, ordering) in terms {
        let starts = |field: &str| field.to_lowercase().starts_with(&term.to_lowercase());
        let mut expected: Vec<&User> = everyone
            .iter()
            .filter(|u| starts(&u.username) || starts(&u.email) || starts(&u.first_name) || starts(&u.last_name))
            .collect();
        let sorted =
            store.list_users(&UserQuery { ordering: ordering.clone(), limit: 5_000, ..Default::default() }).await.unwrap().items;
        let place: std::collections::HashMap<i64, usize> = sorted.iter().enumerate().map(|(i, u)| (u.pk, i)).collect();
        expected.sort_by_key(|u| place[&u.pk]);
        let expected: Vec<i64> = expected.iter().map(|u| u.pk).collect();
        let filter = UserFilter { search: Some(term.into()), ..Default::default() };
        let mut got = Vec::new();
        for offset in (0..expected.len() as i64 + 40).step_by(40) {
            let query = UserQuery { filter: filter.clone(), ordering: ordering.clone(), offset, limit: 40, ..Default::default() };
            let page = store.list_users(&query).await.unwrap();
            assert_eq!(page.count, expected.len() as i64, "{term}");
            got.extend(page.items.iter().map(|u| u.pk));
        }
        assert_eq!(got, expected, "{term} {ordering:?}");
    }
}
