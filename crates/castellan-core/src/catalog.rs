//! The Omnitron permission catalog (API.md §7) in memory: BE permission namespaces and BE permissions (method + path),
//! the FE permission tree, FE permission groups, and catalog/channel groups, with who holds what. Route checks and
//! forward-auth are answered from here, with no database call.
//!
//! A user holds a BE permission when it is assigned to the user, when its namespace is, or when an FE permission
//! linking it is held; an FE permission is held when it is assigned to the user or to an FE permission group the
//! user is in. Superusers hold everything.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::change::{CatalogEntry, CatalogLink, CatalogRecord, Change};
use crate::engine::{Impact, ImpactEntry};
use crate::routes::{Route, RouteSet};

/// A BE permission namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    /// Primary key.
    pub pk: i64,
    /// Unique name (the module id for the server's own routes).
    pub name: String,
    /// Published by the server for its own routes.
    pub builtin: bool,
    /// µs since the epoch.
    pub created: i64,
    /// µs since the epoch.
    pub modified: i64,
}

/// A BE permission: a method and a path expression within a namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BePermission {
    /// Primary key.
    pub pk: i64,
    /// `{namespace}-{action}-{path}` unless given.
    pub name: String,
    /// Its namespace.
    pub namespace: i64,
    /// Lower-case HTTP method.
    pub action: String,
    /// A regular expression matched from the path's start, without the leading slash.
    pub path: String,
    /// Published by the server for one of its own routes.
    pub builtin: bool,
    /// A published route the server no longer serves.
    pub stale: bool,
    /// µs since the epoch.
    pub created: i64,
    /// µs since the epoch.
    pub modified: i64,
}

/// A node of the FE permission tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FePermission {
    /// Primary key.
    pub pk: i64,
    /// Display name.
    pub name: String,
    /// Slug, unique among its siblings.
    pub slug: String,
    /// Parent node; `None` for a root.
    pub parent: Option<i64>,
    /// Shipped by the server for its own admin UI.
    pub builtin: bool,
    /// µs since the epoch.
    pub created: i64,
    /// µs since the epoch.
    pub modified: i64,
}

/// A group of FE permissions handed to users together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeGroup {
    /// Primary key.
    pub pk: i64,
    /// Name.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// µs since the epoch.
    pub created: i64,
    /// µs since the epoch.
    pub modified: i64,
}

/// Whether an object group lists catalogs or channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectGroupKind {
    /// A catalog group: `catalogs.access` on each catalog.
    Catalogs,
    /// A channel group: `channels.access` on each channel.
    Channels,
}

impl ObjectGroupKind {
    /// The module (and object model) the group's items belong to.
    pub fn module(self) -> &'static str {
        match self {
            ObjectGroupKind::Catalogs => "catalogs",
            ObjectGroupKind::Channels => "channels",
        }
    }

    /// Reads `catalogs` or `channels`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "catalogs" => Some(ObjectGroupKind::Catalogs),
            "channels" => Some(ObjectGroupKind::Channels),
            _ => None,
        }
    }
}

/// A catalog or channel group: the members of `group` hold `access` on each listed item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectGroup {
    /// Primary key.
    pub pk: i64,
    /// Catalogs or channels.
    pub kind: ObjectGroupKind,
    /// The directory group whose members hold the access.
    pub group: i64,
    /// Catalog or channel ids, ascending.
    pub items: Vec<i64>,
    /// µs since the epoch.
    pub created: i64,
    /// µs since the epoch.
    pub modified: i64,
}

/// One link: (left, right).
type Pair = (i64, i64);

/// The six link tables of the catalog, each (left, right).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkTable {
    /// (namespace, user).
    NamespaceUsers,
    /// (BE permission, user).
    BeUsers,
    /// (FE permission, user).
    FeUsers,
    /// (FE permission, BE permission).
    FeBe,
    /// (FE permission group, user).
    FeGroupUsers,
    /// (FE permission group, FE permission).
    FeGroupFe,
}

impl LinkTable {
    /// The table holding `link`s of an `entry`, and whether the entry is its right side (an FE permission's
    /// groups: groups are the left side of their table, whichever side names the link). `None` for a link the
    /// entry does not have.
    pub fn of(entry: CatalogEntry, link: CatalogLink) -> Option<(LinkTable, bool)> {
        Some(match (entry, link) {
            (CatalogEntry::BeNamespace, CatalogLink::Users) => (LinkTable::NamespaceUsers, false),
            (CatalogEntry::BePermission, CatalogLink::Users) => (LinkTable::BeUsers, false),
            (CatalogEntry::FePermission, CatalogLink::Users) => (LinkTable::FeUsers, false),
            (CatalogEntry::FePermission, CatalogLink::BePermissions) => (LinkTable::FeBe, false),
            (CatalogEntry::FePermission, CatalogLink::FeGroups) => (LinkTable::FeGroupFe, true),
            (CatalogEntry::FeGroup, CatalogLink::Users) => (LinkTable::FeGroupUsers, false),
            (CatalogEntry::FeGroup, CatalogLink::FePermissions) => (LinkTable::FeGroupFe, false),
            _ => return None,
        })
    }

    /// The pair linking entry `pk` to `id` in this table, with the entry on the side `of` said.
    pub fn pair(entry_on_right: bool, pk: i64, id: i64) -> Pair {
        if entry_on_right { (id, pk) } else { (pk, id) }
    }
}

/// Every catalog row as the store holds it: records, then links as (left, right) pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatalogRows {
    /// Namespaces.
    pub namespaces: Vec<Namespace>,
    /// BE permissions.
    pub be: Vec<BePermission>,
    /// FE permissions.
    pub fe: Vec<FePermission>,
    /// FE permission groups.
    pub fe_groups: Vec<FeGroup>,
    /// Catalog and channel groups.
    pub object_groups: Vec<ObjectGroup>,
    /// (namespace, user).
    pub namespace_users: Vec<(i64, i64)>,
    /// (BE permission, user).
    pub be_users: Vec<(i64, i64)>,
    /// (FE permission, user).
    pub fe_users: Vec<(i64, i64)>,
    /// (FE permission, BE permission).
    pub fe_be: Vec<(i64, i64)>,
    /// (FE permission group, user).
    pub fe_group_users: Vec<(i64, i64)>,
    /// (FE permission group, FE permission).
    pub fe_group_fe: Vec<(i64, i64)>,
}

/// A many-to-many link table, readable from both sides, each side ascending.
#[derive(Debug, Clone, Default)]
pub struct Links {
    right_of: HashMap<i64, BTreeSet<i64>>,
    left_of: HashMap<i64, BTreeSet<i64>>,
}

static EMPTY: BTreeSet<i64> = BTreeSet::new();

impl Links {
    fn from_pairs(pairs: &[(i64, i64)]) -> Links {
        let mut links = Links::default();
        for &(left, right) in pairs {
            links.right_of.entry(left).or_default().insert(right);
            links.left_of.entry(right).or_default().insert(left);
        }
        links
    }

    /// The right-hand keys linked to `left` (a namespace's users, an FE permission's BE permissions...).
    pub fn of(&self, left: i64) -> &BTreeSet<i64> {
        self.right_of.get(&left).unwrap_or(&EMPTY)
    }

    /// The left-hand keys linked to `right` (a user's namespaces, a BE permission's FE permissions...).
    pub fn by(&self, right: i64) -> &BTreeSet<i64> {
        self.left_of.get(&right).unwrap_or(&EMPTY)
    }

    /// Whether `left` and `right` are linked.
    pub fn contains(&self, left: i64, right: i64) -> bool {
        self.of(left).contains(&right)
    }

    fn insert(&mut self, left: i64, right: i64) {
        self.right_of.entry(left).or_default().insert(right);
        self.left_of.entry(right).or_default().insert(left);
    }

    fn remove(&mut self, left: i64, right: i64) {
        self.right_of.get_mut(&left).map(|r| r.remove(&right));
        self.left_of.get_mut(&right).map(|l| l.remove(&left));
    }

    /// Every link as (left, right).
    fn pairs(&self) -> Vec<(i64, i64)> {
        self.right_of.iter().flat_map(|(&l, rights)| rights.iter().map(move |&r| (l, r))).collect()
    }
}

/// The catalog in memory, with its compiled routes.
#[derive(Debug, Default, Clone)]
pub struct Catalog {
    /// Namespaces by pk.
    pub namespaces: BTreeMap<i64, Namespace>,
    /// BE permissions by pk.
    pub be: BTreeMap<i64, BePermission>,
    /// FE permissions by pk.
    pub fe: BTreeMap<i64, FePermission>,
    /// FE permission groups by pk.
    pub fe_groups: BTreeMap<i64, FeGroup>,
    /// Catalog and channel groups by pk.
    pub object_groups: BTreeMap<i64, ObjectGroup>,
    /// Namespace → users.
    pub namespace_users: Links,
    /// BE permission → users.
    pub be_users: Links,
    /// FE permission → users.
    pub fe_users: Links,
    /// FE permission → BE permissions.
    pub fe_be: Links,
    /// FE permission group → users.
    pub fe_group_users: Links,
    /// FE permission group → FE permissions.
    pub fe_group_fe: Links,
    routes: Arc<RouteSet>,
}

/// A route decision: allowed or not, and the BE permission that allowed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteDecision {
    /// Whether the user may call the route.
    pub allowed: bool,
    /// The lowest-keyed BE permission the user holds that matches, if any.
    pub be_permission: Option<i64>,
}

/// How deep the FE tree may be; a deeper chain (only possible in rows written around the API) is cut.
const FE_DEPTH_MAX: usize = 64;

impl Catalog {
    /// Builds the catalog from the store's rows, reusing `previous`'s compiled routes when no BE permission's method
    /// or path changed (compiling thousands of expressions is the expensive part).
    pub fn build(rows: CatalogRows, previous: Option<&Catalog>) -> Catalog {
        let routes: Vec<Route> =
            rows.be.iter().map(|b| Route { pk: b.pk, method: b.action.clone(), path: b.path.clone() }).collect();
        let same_routes = previous.is_some_and(|p| {
            p.be.len() == rows.be.len()
                && rows.be.iter().all(|b| p.be.get(&b.pk).is_some_and(|old| old.action == b.action && old.path == b.path))
        });
        let routes = match previous {
            Some(p) if same_routes => p.routes.clone(),
            _ => Arc::new(RouteSet::build(routes)),
        };
        Catalog {
            namespaces: rows.namespaces.into_iter().map(|n| (n.pk, n)).collect(),
            be: rows.be.into_iter().map(|b| (b.pk, b)).collect(),
            fe: rows.fe.into_iter().map(|f| (f.pk, f)).collect(),
            fe_groups: rows.fe_groups.into_iter().map(|g| (g.pk, g)).collect(),
            object_groups: rows.object_groups.into_iter().map(|g| (g.pk, g)).collect(),
            namespace_users: Links::from_pairs(&rows.namespace_users),
            be_users: Links::from_pairs(&rows.be_users),
            fe_users: Links::from_pairs(&rows.fe_users),
            fe_be: Links::from_pairs(&rows.fe_be),
            fe_group_users: Links::from_pairs(&rows.fe_group_users),
            fe_group_fe: Links::from_pairs(&rows.fe_group_fe),
            routes,
        }
    }

    fn links_mut(&mut self, table: LinkTable) -> &mut Links {
        match table {
            LinkTable::NamespaceUsers => &mut self.namespace_users,
            LinkTable::BeUsers => &mut self.be_users,
            LinkTable::FeUsers => &mut self.fe_users,
            LinkTable::FeBe => &mut self.fe_be,
            LinkTable::FeGroupUsers => &mut self.fe_group_users,
            LinkTable::FeGroupFe => &mut self.fe_group_fe,
        }
    }

    /// Whether the catalog holds entry `pk` of kind `entry`.
    pub fn has(&self, entry: CatalogEntry, pk: i64) -> bool {
        match entry {
            CatalogEntry::BeNamespace => self.namespaces.contains_key(&pk),
            CatalogEntry::BePermission => self.be.contains_key(&pk),
            CatalogEntry::FePermission => self.fe.contains_key(&pk),
            CatalogEntry::FeGroup => self.fe_groups.contains_key(&pk),
            CatalogEntry::CatalogGroup => self.object_groups.get(&pk).is_some_and(|g| g.kind == ObjectGroupKind::Catalogs),
            CatalogEntry::ChannelGroup => self.object_groups.get(&pk).is_some_and(|g| g.kind == ObjectGroupKind::Channels),
        }
    }

    /// The compiled routes.
    pub fn routes(&self) -> &RouteSet {
        &self.routes
    }

    /// Follows a logged link change in place, at `at` (µs since the epoch): links are the catalog's frequent
    /// writes, and their cost stays that of the keys they name. `false` for any other change (the caller reads the
    /// catalog again).
    pub fn follow_link(&mut self, change: &Change, at: i64) -> bool {
        let (entry, pk, link, ids, add) = match change {
            Change::CatalogLinked { entry, pk, link, added } => (*entry, *pk, *link, added, true),
            Change::CatalogUnlinked { entry, pk, link, removed } => (*entry, *pk, *link, removed, false),
            _ => return false,
        };
        let Some((table, reversed)) = LinkTable::of(entry, link) else { return false };
        let links = self.links_mut(table);
        for &id in ids {
            let (left, right) = LinkTable::pair(reversed, pk, id);
            if add { links.insert(left, right) } else { links.remove(left, right) }
        }
        match entry {
            CatalogEntry::BeNamespace => self.namespaces.get_mut(&pk).map(|n| n.modified = at),
            CatalogEntry::BePermission => self.be.get_mut(&pk).map(|b| b.modified = at),
            CatalogEntry::FePermission => self.fe.get_mut(&pk).map(|f| f.modified = at),
            CatalogEntry::FeGroup => self.fe_groups.get_mut(&pk).map(|g| g.modified = at),
            CatalogEntry::CatalogGroup | CatalogEntry::ChannelGroup => None,
        };
        true
    }

    /// Whether `user` holds FE permission `fe`, directly or through an FE permission group.
    pub fn holds_fe(&self, user: i64, fe: i64) -> bool {
        self.fe_users.contains(fe, user) || self.fe_group_fe.by(fe).iter().any(|g| self.fe_group_users.contains(*g, user))
    }

    /// Whether `user` holds BE permission `be`: directly, through its namespace, or through an FE permission.
    pub fn holds_be(&self, user: i64, be: i64) -> bool {
        self.be_users.contains(be, user)
            || self.be.get(&be).is_some_and(|b| self.namespace_users.contains(b.namespace, user))
            || self.fe_be.by(be).iter().any(|fe| self.holds_fe(user, *fe))
    }

    /// Whether `user` holds every BE permission of namespace `ns` (assigned the namespace, or each of them).
    pub fn holds_namespace(&self, user: i64, ns: i64) -> bool {
        self.namespace_users.contains(ns, user)
            || self.be.values().filter(|b| b.namespace == ns).all(|b| self.holds_be(user, b.pk))
    }

    /// May `user` (a superuser when `superuser`) call `method` on the normalised `path`?
    pub fn route(&self, user: i64, superuser: bool, method: &str, path: &str) -> RouteDecision {
        // Every match is visited so that the answer names the lowest key, whatever the trie's order.
        let mut lowest: Option<i64> = None;
        self.routes.any_match(method, path, |pk| {
            if lowest.is_none_or(|l| pk < l) && (superuser || self.holds_be(user, pk)) {
                lowest = Some(pk);
            }
            false
        });
        RouteDecision { allowed: superuser || lowest.is_some(), be_permission: lowest }
    }

    /// The BE permissions `user` holds, ascending.
    pub fn held_be(&self, user: i64, superuser: bool) -> Vec<&BePermission> {
        self.be.values().filter(|b| superuser || self.holds_be(user, b.pk)).collect()
    }

    /// The FE permissions `user` holds, ascending.
    pub fn held_fe(&self, user: i64, superuser: bool) -> Vec<&FePermission> {
        self.fe.values().filter(|f| superuser || self.holds_fe(user, f.pk)).collect()
    }

    /// The ancestors of FE permission `pk` from the root down, then `pk` itself.
    pub fn fe_chain(&self, pk: i64) -> Vec<&FePermission> {
        let mut chain = Vec::new();
        let mut next = self.fe.get(&pk);
        while let Some(node) = next {
            if chain.len() == FE_DEPTH_MAX {
                break;
            }
            chain.push(node);
            next = node.parent.and_then(|p| self.fe.get(&p));
        }
        chain.reverse();
        chain
    }

    /// Depth of an FE permission (a root is 0).
    pub fn fe_depth(&self, pk: i64) -> usize {
        self.fe_chain(pk).len().saturating_sub(1)
    }

    /// An FE permission's path: the slugs from its root down to it, joined with `.`, leaving out the shipped root
    /// (`is_superuser`, whose own path is empty, as in seed 000).
    pub fn fe_path(&self, pk: i64) -> String {
        let chain = self.fe_chain(pk);
        let below_shipped_root = chain.first().is_some_and(|root| root.builtin);
        chain.iter().skip(usize::from(below_shipped_root)).map(|f| f.slug.as_str()).collect::<Vec<_>>().join(".")
    }

    /// The path of an FE permission's parent (`None` for a root).
    pub fn fe_namespace_path(&self, pk: i64) -> Option<String> {
        self.fe.get(&pk)?.parent.map(|p| self.fe_path(p))
    }

    /// Whether `ancestor` is `pk` or above it.
    pub fn fe_is_within(&self, pk: i64, ancestor: i64) -> bool {
        self.fe_chain(pk).iter().any(|f| f.pk == ancestor)
    }

    /// The children of an FE permission (roots for `None`), ascending.
    pub fn fe_children(&self, parent: Option<i64>) -> impl Iterator<Item = &FePermission> {
        self.fe.values().filter(move |f| f.parent == parent)
    }
}

/// What a catalog change would make users gain and lose: BE permissions (`be_permission` on `be_permissions/{pk}`) and
/// FE permissions (`fe_permission` on `fe_permissions/{pk}`). Catalog and channel groups are object grants: the
/// authorization index previews those.
impl Catalog {
    /// The rows the catalog was built from.
    pub fn rows(&self) -> CatalogRows {
        CatalogRows {
            namespaces: self.namespaces.values().cloned().collect(),
            be: self.be.values().cloned().collect(),
            fe: self.fe.values().cloned().collect(),
            fe_groups: self.fe_groups.values().cloned().collect(),
            object_groups: self.object_groups.values().cloned().collect(),
            namespace_users: self.namespace_users.pairs(),
            be_users: self.be_users.pairs(),
            fe_users: self.fe_users.pairs(),
            fe_be: self.fe_be.pairs(),
            fe_group_users: self.fe_group_users.pairs(),
            fe_group_fe: self.fe_group_fe.pairs(),
        }
    }

    /// The impact of `change` on who holds which BE and FE permission, over at most `most` users (`Err` with the
    /// number of users otherwise).
    pub fn impact(&self, change: &Change, most: usize) -> Result<Impact, usize> {
        let Some((entry, pk)) = change.catalog_target() else { return Ok(Impact::default()) };
        let mut rows = self.rows();
        rows.apply(change, 0);
        let after = Catalog::build(rows, Some(self));
        let mut users = self.touched_users(entry, pk);
        users.extend(after.touched_users(entry, pk));
        if users.len() > most {
            return Err(users.len());
        }
        let mut be = self.touched_be(entry, pk);
        be.extend(after.touched_be(entry, pk));
        let mut fe = self.touched_fe(entry, pk);
        fe.extend(after.touched_fe(entry, pk));
        let mut gained: BTreeMap<(&str, i64), Vec<i64>> = BTreeMap::new();
        let mut lost: BTreeMap<(&str, i64), Vec<i64>> = BTreeMap::new();
        let mut affected = BTreeSet::new();
        for &user in &users {
            let mut compare = |kind: &'static str, key: i64, was: bool, is: bool| {
                if was != is {
                    (if is { &mut gained } else { &mut lost }).entry((kind, key)).or_default().push(user);
                    affected.insert(user);
                }
            };
            for &b in &be {
                compare(
                    "be_permission",
                    b,
                    self.be.contains_key(&b) && self.holds_be(user, b),
                    after.be.contains_key(&b) && after.holds_be(user, b),
                );
            }
            for &f in &fe {
                compare(
                    "fe_permission",
                    f,
                    self.fe.contains_key(&f) && self.holds_fe(user, f),
                    after.fe.contains_key(&f) && after.holds_fe(user, f),
                );
            }
        }
        let entries = |side: BTreeMap<(&str, i64), Vec<i64>>| {
            side.into_iter()
                .map(|((kind, key), users)| ImpactEntry {
                    permission: kind.to_string(),
                    object: Some((format!("{kind}s"), key.to_string())),
                    users,
                })
                .collect()
        };
        Ok(Impact { gained: entries(gained), lost: entries(lost), users_affected: affected.len() })
    }

    /// Users whose holdings an entry decides: its holders, and the holders of what gives it.
    fn touched_users(&self, entry: CatalogEntry, pk: i64) -> BTreeSet<i64> {
        let mut users = BTreeSet::new();
        for b in self.touched_be(entry, pk) {
            users.extend(self.be_users.of(b));
            if let Some(ns) = self.be.get(&b).map(|b| b.namespace) {
                users.extend(self.namespace_users.of(ns));
            }
            for f in self.fe_be.by(b) {
                users.extend(self.fe_holders(*f));
            }
        }
        for f in self.touched_fe(entry, pk) {
            users.extend(self.fe_holders(f));
        }
        match entry {
            CatalogEntry::BeNamespace => users.extend(self.namespace_users.of(pk)),
            CatalogEntry::FeGroup => users.extend(self.fe_group_users.of(pk)),
            _ => {}
        }
        users
    }

    fn fe_holders(&self, fe: i64) -> impl Iterator<Item = i64> + '_ {
        let through_groups = self.fe_group_fe.by(fe).iter().flat_map(|g| self.fe_group_users.of(*g).iter());
        self.fe_users.of(fe).iter().chain(through_groups).copied()
    }

    /// BE permissions an entry decides the holding of.
    fn touched_be(&self, entry: CatalogEntry, pk: i64) -> BTreeSet<i64> {
        match entry {
            CatalogEntry::BeNamespace => self.be.values().filter(|b| b.namespace == pk).map(|b| b.pk).collect(),
            CatalogEntry::BePermission => BTreeSet::from([pk]),
            CatalogEntry::FePermission | CatalogEntry::FeGroup => {
                self.touched_fe(entry, pk).iter().flat_map(|f| self.fe_be.of(*f).iter().copied()).collect()
            }
            CatalogEntry::CatalogGroup | CatalogEntry::ChannelGroup => BTreeSet::new(),
        }
    }

    /// FE permissions an entry decides the holding of (an FE permission with the nodes below it, which go when it is
    /// deleted).
    fn touched_fe(&self, entry: CatalogEntry, pk: i64) -> BTreeSet<i64> {
        match entry {
            CatalogEntry::FePermission => self.fe.keys().copied().filter(|f| self.fe_is_within(*f, pk)).chain([pk]).collect(),
            CatalogEntry::FeGroup => self.fe_group_fe.of(pk).clone(),
            _ => BTreeSet::new(),
        }
    }
}

impl CatalogRows {
    /// Applies a logged change as the store persisted it, at `at` (µs since the epoch, the dates it sets): catalog
    /// changes, and the deletions of users and groups whose links and object groups go with them.
    pub fn apply(&mut self, change: &Change, at: i64) {
        match change {
            Change::CatalogLinked { entry, pk, link, added } => {
                for &id in added {
                    if let Some((pairs, pair)) = self.links(*entry, *link, *pk, id)
                        && !pairs.contains(&pair)
                    {
                        pairs.push(pair);
                    }
                }
                self.touch(*entry, *pk, at);
            }
            Change::CatalogUnlinked { entry, pk, link, removed } => {
                for &id in removed {
                    if let Some((pairs, pair)) = self.links(*entry, *link, *pk, id) {
                        pairs.retain(|p| *p != pair);
                    }
                }
                self.touch(*entry, *pk, at);
            }
            Change::CatalogCreated { entry, pk, after } => {
                self.create(*entry, *pk, at);
                self.update(*entry, *pk, after, at);
            }
            Change::CatalogUpdated { entry, pk, after, .. } => self.update(*entry, *pk, after, at),
            Change::CatalogDeleted { entry, pk, .. } => self.delete(*entry, *pk),
            Change::UserDeleted { pk, .. } => {
                for pairs in [&mut self.namespace_users, &mut self.be_users, &mut self.fe_users, &mut self.fe_group_users] {
                    pairs.retain(|p| p.1 != *pk);
                }
            }
            Change::GroupDeleted { pk, deleted, .. } => {
                self.object_groups.retain(|g| g.group != *pk && !deleted.contains(&g.group));
            }
            _ => {}
        }
    }

    fn touch(&mut self, entry: CatalogEntry, pk: i64, at: i64) {
        let modified = match entry {
            CatalogEntry::BeNamespace => self.namespaces.iter_mut().find(|n| n.pk == pk).map(|n| &mut n.modified),
            CatalogEntry::BePermission => self.be.iter_mut().find(|b| b.pk == pk).map(|b| &mut b.modified),
            CatalogEntry::FePermission => self.fe.iter_mut().find(|f| f.pk == pk).map(|f| &mut f.modified),
            CatalogEntry::FeGroup => self.fe_groups.iter_mut().find(|g| g.pk == pk).map(|g| &mut g.modified),
            CatalogEntry::CatalogGroup | CatalogEntry::ChannelGroup => {
                self.object_groups.iter_mut().find(|g| g.pk == pk).map(|g| &mut g.modified)
            }
        };
        if let Some(modified) = modified {
            *modified = at;
        }
    }

    /// The pair list of (`entry`, `link`) and the pair linking `pk` to `id` in it.
    fn links(&mut self, entry: CatalogEntry, link: CatalogLink, pk: i64, id: i64) -> Option<(&mut Vec<Pair>, Pair)> {
        let (table, reversed) = LinkTable::of(entry, link)?;
        let pairs = match table {
            LinkTable::NamespaceUsers => &mut self.namespace_users,
            LinkTable::BeUsers => &mut self.be_users,
            LinkTable::FeUsers => &mut self.fe_users,
            LinkTable::FeBe => &mut self.fe_be,
            LinkTable::FeGroupUsers => &mut self.fe_group_users,
            LinkTable::FeGroupFe => &mut self.fe_group_fe,
        };
        Some((pairs, LinkTable::pair(reversed, pk, id)))
    }

    fn create(&mut self, entry: CatalogEntry, pk: i64, at: i64) {
        let (created, modified) = (at, at);
        match entry {
            CatalogEntry::BeNamespace => {
                self.namespaces.push(Namespace { pk, name: String::new(), builtin: false, created, modified })
            }
            CatalogEntry::BePermission => self.be.push(BePermission {
                pk,
                name: String::new(),
                namespace: 0,
                action: String::new(),
                path: String::new(),
                builtin: false,
                stale: false,
                created,
                modified,
            }),
            CatalogEntry::FePermission => self.fe.push(FePermission {
                pk,
                name: String::new(),
                slug: String::new(),
                parent: None,
                builtin: false,
                created,
                modified,
            }),
            CatalogEntry::FeGroup => {
                self.fe_groups.push(FeGroup { pk, name: String::new(), description: None, created, modified })
            }
            CatalogEntry::CatalogGroup | CatalogEntry::ChannelGroup => {
                let kind =
                    if entry == CatalogEntry::CatalogGroup { ObjectGroupKind::Catalogs } else { ObjectGroupKind::Channels };
                self.object_groups.push(ObjectGroup { pk, kind, group: 0, items: Vec::new(), created, modified })
            }
        }
    }

    /// Sets every field `r` names on the entry, and the link lists it names.
    fn update(&mut self, entry: CatalogEntry, pk: i64, r: &CatalogRecord, at: i64) {
        fn set<T: Clone>(field: &mut T, value: &Option<T>) {
            if let Some(v) = value {
                *field = v.clone();
            }
        }
        match entry {
            CatalogEntry::BeNamespace => {
                if let Some(n) = self.namespaces.iter_mut().find(|n| n.pk == pk) {
                    set(&mut n.name, &r.name);
                    set(&mut n.builtin, &r.builtin);
                }
            }
            CatalogEntry::BePermission => {
                if let Some(b) = self.be.iter_mut().find(|b| b.pk == pk) {
                    set(&mut b.name, &r.name);
                    set(&mut b.namespace, &r.namespace);
                    set(&mut b.action, &r.action);
                    set(&mut b.path, &r.path);
                    set(&mut b.stale, &r.stale);
                    set(&mut b.builtin, &r.builtin);
                }
            }
            CatalogEntry::FePermission => {
                if let Some(f) = self.fe.iter_mut().find(|f| f.pk == pk) {
                    set(&mut f.name, &r.name);
                    set(&mut f.slug, &r.slug);
                    set(&mut f.parent, &r.parent);
                    set(&mut f.builtin, &r.builtin);
                }
            }
            CatalogEntry::FeGroup => {
                if let Some(g) = self.fe_groups.iter_mut().find(|g| g.pk == pk) {
                    set(&mut g.name, &r.name);
                    set(&mut g.description, &r.description);
                }
            }
            CatalogEntry::CatalogGroup | CatalogEntry::ChannelGroup => {
                if let Some(g) = self.object_groups.iter_mut().find(|g| g.pk == pk) {
                    set(&mut g.group, &r.group);
                    set(&mut g.items, &r.items);
                    g.items.sort_unstable();
                    g.items.dedup();
                }
            }
        }
        self.touch(entry, pk, at);
        let lists = [
            (CatalogLink::Users, &r.users),
            (CatalogLink::BePermissions, &r.be_permissions),
            (CatalogLink::FePermissions, &r.fe_permissions),
        ];
        for (link, ids) in lists {
            let Some(ids) = ids else { continue };
            if let Some((pairs, _)) = self.links(entry, link, pk, 0) {
                pairs.retain(|p| p.0 != pk);
            }
            for &id in ids {
                if let Some((pairs, pair)) = self.links(entry, link, pk, id) {
                    pairs.push(pair);
                }
            }
        }
    }

    fn delete(&mut self, entry: CatalogEntry, pk: i64) {
        match entry {
            CatalogEntry::BeNamespace => {
                self.namespaces.retain(|n| n.pk != pk);
                self.namespace_users.retain(|p| p.0 != pk);
                let gone: Vec<i64> = self.be.iter().filter(|b| b.namespace == pk).map(|b| b.pk).collect();
                gone.into_iter().for_each(|b| self.delete(CatalogEntry::BePermission, b));
            }
            CatalogEntry::BePermission => {
                self.be.retain(|b| b.pk != pk);
                self.be_users.retain(|p| p.0 != pk);
                self.fe_be.retain(|p| p.1 != pk);
            }
            CatalogEntry::FePermission => {
                let children: Vec<i64> = self.fe.iter().filter(|f| f.parent == Some(pk)).map(|f| f.pk).collect();
                children.into_iter().for_each(|f| self.delete(CatalogEntry::FePermission, f));
                self.fe.retain(|f| f.pk != pk);
                self.fe_users.retain(|p| p.0 != pk);
                self.fe_be.retain(|p| p.0 != pk);
                self.fe_group_fe.retain(|p| p.1 != pk);
            }
            CatalogEntry::FeGroup => {
                self.fe_groups.retain(|g| g.pk != pk);
                self.fe_group_users.retain(|p| p.0 != pk);
                self.fe_group_fe.retain(|p| p.0 != pk);
            }
            CatalogEntry::CatalogGroup | CatalogEntry::ChannelGroup => self.object_groups.retain(|g| g.pk != pk),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn be(pk: i64, namespace: i64, action: &str, path: &str) -> BePermission {
        BePermission {
            pk,
            name: format!("{namespace}-{action}-{path}"),
            namespace,
            action: action.into(),
            path: path.into(),
            builtin: false,
            stale: false,
            created: 0,
            modified: 0,
        }
    }

    fn fe(pk: i64, slug: &str, parent: Option<i64>) -> FePermission {
        FePermission { pk, name: slug.into(), slug: slug.into(), parent, builtin: pk == 1, created: 0, modified: 0 }
    }

    fn catalog(links: impl FnOnce(&mut CatalogRows)) -> Catalog {
        let mut rows = CatalogRows {
            namespaces: vec![Namespace { pk: 1, name: "products".into(), builtin: false, created: 0, modified: 0 }],
            be: vec![be(1, 1, "get", "api/v1/products/$"), be(2, 1, "post", "api/v1/products/$")],
            fe: vec![fe(1, "is_superuser", None), fe(2, "products", Some(1)), fe(3, "add", Some(2))],
            fe_groups: vec![FeGroup { pk: 1, name: "g".into(), description: None, created: 0, modified: 0 }],
            ..CatalogRows::default()
        };
        links(&mut rows);
        Catalog::build(rows, None)
    }

    #[test]
    fn a_route_is_held_through_each_kind_of_assignment_and_only_then() {
        let none = catalog(|_| {});
        assert!(!none.route(7, false, "GET", "api/v1/products/").allowed);
        let ways: [fn(&mut CatalogRows); 4] = [
            |r| r.be_users.push((1, 7)),
            |r| r.namespace_users.push((1, 7)),
            |r| {
                r.fe_be.push((2, 1));
                r.fe_users.push((2, 7));
            },
            |r| {
                r.fe_be.push((2, 1));
                r.fe_group_fe.push((1, 2));
                r.fe_group_users.push((1, 7));
            },
        ];
        for way in ways {
            let c = catalog(way);
            assert_eq!(c.route(7, false, "get", "api/v1/products/"), RouteDecision { allowed: true, be_permission: Some(1) });
            assert!(!c.route(8, false, "get", "api/v1/products/").allowed, "another user gains nothing");
        }
        let direct = catalog(|r| r.be_users.push((1, 7)));
        assert!(!direct.route(7, false, "post", "api/v1/products/").allowed);
        assert!(direct.route(8, true, "delete", "anything/").allowed, "superusers pass");
    }

    #[test]
    fn fe_paths_follow_the_tree() {
        let c = catalog(|_| {});
        assert_eq!((c.fe_depth(1), c.fe_path(1), c.fe_namespace_path(1)), (0, String::new(), None));
        assert_eq!((c.fe_depth(3), c.fe_path(3), c.fe_namespace_path(3)), (2, "products.add".into(), Some("products".into())));
        assert!(c.fe_is_within(3, 1));
        assert!(!c.fe_is_within(1, 3));
    }

    #[test]
    fn a_preview_names_what_each_user_would_gain_and_lose() {
        let c = catalog(|r| {
            r.fe_be.push((2, 1));
            r.fe_group_fe.push((1, 2));
            r.fe_group_users.push((1, 7));
        });
        let add = Change::CatalogLinked { entry: CatalogEntry::BePermission, pk: 2, link: CatalogLink::Users, added: vec![8] };
        let impact = c.impact(&add, 10).unwrap();
        assert_eq!(impact.users_affected, 1);
        assert_eq!(
            impact.gained,
            vec![ImpactEntry {
                permission: "be_permission".into(),
                object: Some(("be_permissions".into(), "2".into())),
                users: vec![8]
            }]
        );
        // Deleting the FE group takes the FE permission and the BE permission it gives from user 7.
        let delete = Change::CatalogDeleted { entry: CatalogEntry::FeGroup, pk: 1, before: Box::default() };
        let impact = c.impact(&delete, 10).unwrap();
        let lost: Vec<(&str, &str)> =
            impact.lost.iter().map(|e| (e.permission.as_str(), e.object.as_ref().unwrap().1.as_str())).collect();
        assert_eq!(lost, vec![("be_permission", "1"), ("fe_permission", "2")]);
        assert!(impact.lost.iter().all(|e| e.users == vec![7]));
        assert_eq!(c.impact(&delete, 0), Err(1), "over the cap");
    }

    #[test]
    fn links_are_followed_in_place_as_a_rebuild_would_read_them() {
        let mut c = catalog(|_| {});
        let changes = [
            Change::CatalogLinked { entry: CatalogEntry::BePermission, pk: 1, link: CatalogLink::Users, added: vec![7, 8] },
            Change::CatalogLinked { entry: CatalogEntry::FePermission, pk: 2, link: CatalogLink::FeGroups, added: vec![1] },
            Change::CatalogLinked { entry: CatalogEntry::FeGroup, pk: 1, link: CatalogLink::Users, added: vec![9] },
            Change::CatalogLinked { entry: CatalogEntry::FePermission, pk: 2, link: CatalogLink::BePermissions, added: vec![2] },
            Change::CatalogUnlinked { entry: CatalogEntry::BePermission, pk: 1, link: CatalogLink::Users, removed: vec![8] },
        ];
        let mut rows = c.rows();
        for change in &changes {
            assert!(c.follow_link(change, 5));
            rows.apply(change, 5);
        }
        let rebuilt = Catalog::build(rows, None);
        for (user, be) in [(7, 1), (8, 1), (9, 2), (9, 1), (7, 2)] {
            assert_eq!(c.holds_be(user, be), rebuilt.holds_be(user, be), "user {user}, be {be}");
        }
        assert!(c.holds_be(9, 2) && c.holds_be(7, 1) && !c.holds_be(8, 1));
        assert_eq!(c.be[&1].modified, 5);
        assert!(!c.follow_link(&Change::CatalogDeleted { entry: CatalogEntry::FeGroup, pk: 1, before: Box::default() }, 5));
    }

    #[test]
    fn routes_are_reused_when_no_path_changed() {
        let first = catalog(|_| {});
        let mut rows = CatalogRows { be: first.be.values().cloned().collect(), ..CatalogRows::default() };
        rows.be_users.push((1, 9));
        let second = Catalog::build(rows.clone(), Some(&first));
        assert!(Arc::ptr_eq(&first.routes, &second.routes));
        rows.be[0].path = "api/v2/products/$".into();
        let third = Catalog::build(rows, Some(&second));
        assert!(!Arc::ptr_eq(&second.routes, &third.routes));
        assert!(third.route(9, false, "get", "api/v2/products/").allowed);
    }
}
