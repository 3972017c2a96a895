//! Server settings that are not storage: origin, session lifetimes, limits.

use std::time::Duration;

/// How the HTTP side behaves.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// `CASTELLAN_PUBLIC_URL`: the origin for CSRF checks, cookies and `next` links (default: from `Host`).
    pub public_url: Option<url::Url>,
    /// A session's absolute lifetime.
    pub session_ttl: Duration,
    /// A session's lifetime without use.
    pub session_idle: Duration,
    /// Largest accepted request body (avatars have their own limit).
    pub body_limit: usize,
    /// Longest expected wait for a hashing thread that a login queues for; beyond it logins answer 429.
    pub login_wait_budget: Duration,
    /// `CASTELLAN_TRUSTED_PROXIES`: peers whose `X-Forwarded-For`/`Forwarded` is believed (for throttling, audit
    /// addresses and forward-auth); from anyone else those headers are ignored.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Most users a dry run previews; a write affecting more answers 400 naming `dry_run`.
    pub preview_max_users: usize,
    /// `/readyz` fails while the index is more than this many revisions behind the store.
    pub ready_max_lag: u64,
    /// Header and body timeouts and the cap on open connections.
    pub connections: crate::serve::ConnectionLimits,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            public_url: None,
            session_ttl: Duration::from_secs(12 * 3600),
            session_idle: Duration::from_secs(2 * 3600),
            body_limit: 1024 * 1024,
            login_wait_budget: Duration::from_secs(2),
            trusted_proxies: Vec::new(),
            preview_max_users: 100_000,
            ready_max_lag: 1_000,
            connections: crate::serve::ConnectionLimits::default(),
        }
    }
}

/// Whether `ip` is one of the trusted `proxies`, whose forwarding headers are believed.
pub fn is_trusted_proxy(proxies: &[ipnet::IpNet], ip: &std::net::IpAddr) -> bool {
    proxies.iter().any(|net| net.contains(ip))
}

/// Reads one trusted proxy: a network in CIDR notation (`10.0.0.0/8`) or a single address.
pub fn parse_trusted_proxy(text: &str) -> Result<ipnet::IpNet, String> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{text:?} is neither an address nor a network in CIDR notation"))
}
