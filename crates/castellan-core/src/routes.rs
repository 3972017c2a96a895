//! Routes as gateways see them (API.md §7, §10): the one normalisation of a request path, and the compiled set of BE
//! permission paths that a normalised path is matched against.
//!
//! BE permission paths are regular expressions written without the leading slash and matched from the path's start,
//! as Django's `re_path` does (`api/v1/products/$`). The set indexes each expression by its literal prefix, segment
//! by segment, so matching a path runs only the expressions whose prefix the path starts with: the cost per request
//! follows the path's depth, not the number of permissions.

use std::borrow::Cow;
use std::collections::HashMap;

use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};

/// Largest compiled size of one BE permission path (bytes of the compiled program).
const PATTERN_SIZE_LIMIT: usize = 1 << 20;

/// Why a path was refused rather than matched: it would mean different things to different servers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PathRefused(pub &'static str);

/// The path a gateway decision is about: the query and fragment dropped, percent-escapes decoded once, `//` and `.`
/// segments removed, `..` resolved, and no leading slash. Refused, because an upstream may read them differently:
/// an encoded `/`, `\`, NUL or dot segment (`%2e%2e`), a `%` left after decoding (double encoding), control
/// characters, a `..` above the root, and segments ending in a dot (some servers drop trailing dots, so `admin.`
/// could reach `admin`).
pub fn normalize_path(raw: &str) -> Result<String, PathRefused> {
    let path = raw.split(['?', '#']).next().unwrap_or("");
    let lower = path.to_ascii_lowercase();
    if ["%2f", "%5c", "%00"].iter().any(|encoded| lower.contains(encoded)) {
        return Err(PathRefused("The path encodes a slash, a backslash or NUL."));
    }
    let mut segments: Vec<Cow<'_, str>> = Vec::new();
    let mut trailing_slash = path.ends_with('/');
    for raw_segment in path.split('/') {
        let segment = percent_decode(raw_segment)?;
        if segment.contains('%') {
            return Err(PathRefused("The path is encoded more than once."));
        }
        if segment.chars().any(|c| c.is_control() || c == '\\') {
            return Err(PathRefused("The path holds a control character or a backslash."));
        }
        // Servers disagree on whether `%2e%2e` climbs: refuse rather than guess.
        if (segment == "." || segment == "..") && segment != raw_segment {
            return Err(PathRefused("The path encodes a dot segment."));
        }
        match segment.as_ref() {
            "" => {}
            "." => trailing_slash = true,
            ".." => {
                if segments.pop().is_none() {
                    return Err(PathRefused("The path climbs above its root."));
                }
                trailing_slash = true;
            }
            s if s.ends_with('.') => return Err(PathRefused("A path segment ends in a dot.")),
            _ => {
                segments.push(segment);
                trailing_slash = false;
            }
        }
    }
    trailing_slash |= path.ends_with('/');
    let mut out = segments.join("/");
    if trailing_slash && !out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// `path` with its %-escapes decoded; borrowed when it has none (most paths), so a decision allocates little.
fn percent_decode(path: &str) -> Result<Cow<'_, str>, PathRefused> {
    if !path.contains('%') {
        return Ok(Cow::Borrowed(path));
    }
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            let byte = hex.and_then(|h| u8::from_str_radix(h, 16).ok()).ok_or(PathRefused("The path has a broken %-escape."))?;
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map(Cow::Owned).map_err(|_| PathRefused("The path is not UTF-8 once decoded."))
}

/// Compiles one BE permission path as it is matched: anchored at the path's start. An error names what is wrong.
pub fn compile_path(pattern: &str) -> Result<Regex, String> {
    RegexBuilder::new(&anchored(pattern)).size_limit(PATTERN_SIZE_LIMIT).build().map_err(|e| match e {
        regex::Error::CompiledTooBig(_) => "The regular expression is too large.".to_string(),
        other => format!("Not a valid regular expression: {}", first_line(&other.to_string())),
    })
}

fn first_line(text: &str) -> String {
    text.lines().rfind(|l| !l.trim().is_empty()).unwrap_or(text).trim().to_string()
}

fn anchored(pattern: &str) -> String {
    format!("^(?:{pattern})")
}

/// The literal text every match of `pattern` starts with, cut back to its last `/`: the segments the set indexes
/// the pattern under. Conservative: any alternation, escape or group ends the prefix, and a quantified last
/// character is dropped.
pub fn literal_prefix(pattern: &str) -> &str {
    let pattern = pattern.strip_prefix('^').unwrap_or(pattern);
    if pattern.contains('|') {
        return "";
    }
    let mut end = pattern.len();
    for (i, c) in pattern.char_indices() {
        if ".^$*+?()[]{}\\".contains(c) {
            end = if "?*{".contains(c) { pattern[..i].char_indices().last().map_or(0, |(j, _)| j) } else { i };
            break;
        }
    }
    let literal = &pattern[..end];
    literal.rfind('/').map_or("", |slash| &literal[..=slash])
}

/// One BE permission as the route set holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The BE permission's primary key.
    pub pk: i64,
    /// Lower-case HTTP method.
    pub method: String,
    /// The path expression.
    pub path: String,
}

/// Nodes with more routes than this run one set of their tails first, to skip the tails that cannot match.
const SET_ABOVE: usize = 16;

/// Routes whose literal prefix ends at one trie node: each route's method and the index of its tail (the expression
/// after the prefix, matched against the rest of the path).
#[derive(Debug, Default)]
struct Node {
    children: HashMap<String, Node>,
    members: Vec<(usize, usize)>,
    /// For a crowded node, every member's tail in one set (member `i` is pattern `i`).
    set: Option<RegexSet>,
}

/// Every BE permission path, compiled into one structure that finds the permissions matching a method and path.
///
/// A trie over the literal prefixes, segment by segment, leads to the routes a path can match; there only the tails
/// are run. Tails are compiled once however many routes share them (`$`, `(?P<pk>[^/.]+)/$`...): Omnitron-shaped
/// catalogs have thousands of routes and a handful of distinct tails, so the compiled programs stay few and warm.
#[derive(Debug, Default)]
pub struct RouteSet {
    routes: Vec<Route>,
    tails: Vec<Regex>,
    root: Node,
}

/// The part of `pattern` after its literal prefix, when matching it against the rest of a path is the same as
/// matching the whole: not when it holds a `^` outside a class (it could match at the start of the rest, never
/// after the prefix).
fn tail_of(pattern: &str) -> Option<(&str, &str)> {
    let stripped = pattern.strip_prefix('^').unwrap_or(pattern);
    let prefix = literal_prefix(pattern);
    let tail = &stripped[prefix.len()..];
    (!anchors_inside(tail)).then_some((prefix, tail))
}

/// Whether `pattern` holds a `^` that is not escaped and not inside a character class.
fn anchors_inside(pattern: &str) -> bool {
    let (mut class, mut escaped) = (0usize, false);
    for c in pattern.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '[' => class += 1,
            ']' => class = class.saturating_sub(1),
            '^' if class == 0 => return true,
            _ => {}
        }
    }
    false
}

impl RouteSet {
    /// Compiles `routes`; a route whose expression does not compile is left out (its permission matches nothing),
    /// which only happens to rows written around the API's validation.
    pub fn build(routes: Vec<Route>) -> RouteSet {
        let mut set = RouteSet::default();
        let mut interned: HashMap<String, usize> = HashMap::new();
        for route in routes {
            let (prefix, tail) = tail_of(&route.path).unwrap_or(("", &route.path));
            let tail_id = match interned.get(tail) {
                Some(&id) => id,
                None => {
                    let Ok(regex) = compile_path(tail) else { continue };
                    set.tails.push(regex);
                    interned.insert(tail.to_string(), set.tails.len() - 1);
                    set.tails.len() - 1
                }
            };
            let mut node = &mut set.root;
            for segment in prefix.split_terminator('/') {
                node = node.children.entry(segment.to_string()).or_default();
            }
            node.members.push((set.routes.len(), tail_id));
            set.routes.push(route);
        }
        compile_crowded(&mut set.root, &set.tails);
        set
    }

    /// How many routes the set holds.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether the set holds no route.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Calls `found` with the pk of each BE permission matching `method` (any case) and the normalised `path`, until
    /// it answers `true`; answers whether it did. Allocates nothing on nodes of at most [`SET_ABOVE`] routes.
    pub fn any_match(&self, method: &str, path: &str, mut found: impl FnMut(i64) -> bool) -> bool {
        let mut node = &self.root;
        let mut rest = path;
        loop {
            let mut visit = |(route, tail): (usize, usize)| {
                let route = &self.routes[route];
                route.method.eq_ignore_ascii_case(method) && self.tails[tail].is_match(rest) && found(route.pk)
            };
            let hit = match &node.set {
                Some(set) => set.matches(rest).iter().any(|i| visit(node.members[i])),
                None => node.members.iter().any(|&member| visit(member)),
            };
            if hit {
                return true;
            }
            let Some((segment, after)) = rest.split_once('/') else { return false };
            let Some(child) = node.children.get(segment) else { return false };
            node = child;
            rest = after;
        }
    }

    /// The pks of every BE permission matching `method` and `path`, ascending.
    pub fn matches(&self, method: &str, path: &str) -> Vec<i64> {
        let mut pks = Vec::new();
        self.any_match(method, path, |pk| {
            pks.push(pk);
            false
        });
        pks.sort_unstable();
        pks
    }
}

fn compile_crowded(node: &mut Node, tails: &[Regex]) {
    if node.members.len() > SET_ABOVE {
        let patterns = node.members.iter().map(|&(_, tail)| tails[tail].as_str());
        node.set = RegexSetBuilder::new(patterns).size_limit(PATTERN_SIZE_LIMIT * 16).build().ok();
    }
    for child in node.children.values_mut() {
        compile_crowded(child, tails);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(pk: i64, method: &str, path: &str) -> Route {
        Route { pk, method: method.into(), path: path.into() }
    }

    #[test]
    fn paths_normalise_in_one_way() {
        let ok = |raw: &str| normalize_path(raw).unwrap();
        assert_eq!(ok("/api/v1/products/"), "api/v1/products/");
        assert_eq!(ok("api/v1/products/"), "api/v1/products/");
        assert_eq!(ok("//api///v1/products/?x=1#f"), "api/v1/products/");
        assert_eq!(ok("/api/./v1/products"), "api/v1/products");
        assert_eq!(ok("/api/v1/%70roducts/"), "api/v1/products/");
        assert_eq!(ok("/api/v1/../admin"), "api/admin");
        assert_eq!(ok("/api/v1/x/.."), "api/v1/");
        assert_eq!(ok("/"), "");
        for refused in [
            "/api/v1%2Fadmin",
            "/api/v1%2fadmin",
            "/api\\v1",
            "/api/v1/%252e%252e/admin",
            "/api/v1/%2e%2e/admin",
            "/api/v1/%2E/admin",
            "/api/v1/.%2e/admin",
            "/../etc",
            "/api/v1/admin./",
            "/api/v1/...",
            "/api/%00",
            "/api/%zz",
            "/api/%ff",
            "/api/\tv1",
        ] {
            assert!(normalize_path(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn literal_prefixes_stop_before_anything_that_may_vary() {
        assert_eq!(literal_prefix("api/v1/products/$"), "api/v1/products/");
        assert_eq!(literal_prefix("^api/v1/products/(?P<pk>[^/.]+)/$"), "api/v1/products/");
        assert_eq!(literal_prefix("api/v1/products/?$"), "api/v1/");
        assert_eq!(literal_prefix("api/v1/product.*"), "api/v1/");
        assert_eq!(literal_prefix("api/v1/a|b/"), "");
        assert_eq!(literal_prefix(".*"), "");
        assert_eq!(literal_prefix("api/v1/x{2}/"), "api/v1/");
    }

    #[test]
    fn a_set_finds_the_matching_permissions_and_only_them() {
        let set = RouteSet::build(vec![
            route(1, "get", "api/v1/products/$"),
            route(2, "post", "api/v1/products/$"),
            route(3, "get", "api/v1/products/(?P<pk>[^/.]+)/$"),
            route(4, "get", ".*"),
            route(5, "get", "api/v1/(users|groups)/$"),
            route(6, "get", "api/v1/broken(/$"),
        ]);
        assert_eq!(set.len(), 5);
        // A `^` after the prefix never matches there; run as a whole, it still does not.
        let caret = RouteSet::build(vec![route(1, "get", "api/^x"), route(2, "get", "^api/x")]);
        assert_eq!(caret.matches("get", "api/x"), vec![2]);
        assert_eq!(set.matches("GET", "api/v1/products/"), vec![1, 4]);
        assert_eq!(set.matches("post", "api/v1/products/"), vec![2]);
        assert_eq!(set.matches("get", "api/v1/products/42/"), vec![3, 4]);
        assert_eq!(set.matches("get", "api/v1/products/42/x/"), vec![4]);
        assert_eq!(set.matches("get", "api/v1/groups/"), vec![4, 5]);
        assert_eq!(set.matches("delete", "api/v1/products/"), Vec::<i64>::new());
        // Matched from the start: a prefix elsewhere in the path is not a match.
        assert_eq!(set.matches("post", "x/api/v1/products/"), Vec::<i64>::new());
    }

    #[test]
    fn crowded_nodes_and_shared_tails_match_as_single_routes_do() {
        let mut routes: Vec<Route> = (0..40).map(|i| route(i, "get", &format!("api/v1/x{i}/?$"))).collect();
        routes.extend((0..40).map(|i| route(100 + i, "get", &format!("api/v1/items/{i}/(?P<pk>[^/.]+)/$"))));
        let set = RouteSet::build(routes);
        assert_eq!(set.matches("get", "api/v1/x7"), vec![7]);
        assert_eq!(set.matches("get", "api/v1/x7/"), vec![7]);
        assert_eq!(set.matches("get", "api/v1/items/3/abc/"), vec![103]);
        assert_eq!(set.matches("get", "api/v1/items/3/a.c/"), Vec::<i64>::new());
        assert_eq!(set.tails.len(), 41, "one tail shared by the 40 item routes");
    }

    #[test]
    fn an_invalid_expression_is_named() {
        assert!(compile_path("api/v1/(").unwrap_err().starts_with("Not a valid regular expression"));
        assert!(compile_path("api/v1/products/$").is_ok());
    }
}
