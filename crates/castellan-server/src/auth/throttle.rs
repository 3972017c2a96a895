//! Login throttling (API.md §10, §11): per account and client network, per account across networks, per address.
//!
//! Failures are counted whether or not the account exists, so answers never reveal which usernames are real.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Failures of one account from one network before it locks.
const ACCOUNT_FAILURES: usize = 5;
/// Window in which account failures count.
const ACCOUNT_WINDOW: Duration = Duration::from_secs(15 * 60);
/// First lock; each further lock doubles it.
const FIRST_LOCK: Duration = Duration::from_secs(30);
/// Longest lock.
const MAX_LOCK: Duration = Duration::from_secs(15 * 60);
/// Failures of one account across all networks within the window before it locks.
const GLOBAL_ACCOUNT_FAILURES: usize = 100;
/// Failures from one address per minute that are still answered; one more locks it (§10: "more than 100").
const ADDRESS_FAILURES: usize = 100;
/// Window for address failures.
const ADDRESS_WINDOW: Duration = Duration::from_secs(60);
/// Entries beyond which stale ones are swept.
const SWEEP_AT: usize = 50_000;

#[derive(Default)]
struct Counter {
    failures: Vec<Instant>,
    locked_until: Option<Instant>,
    locks: u32,
}

impl Counter {
    fn retry_after(&self, now: Instant) -> Option<Duration> {
        self.locked_until.filter(|until| *until > now).map(|until| until - now)
    }

    /// Records a failure; locks when `limit` failures fall within `window`.
    fn fail(&mut self, now: Instant, window: Duration, limit: usize, escalate: bool) {
        self.failures.retain(|t| now.duration_since(*t) < window);
        self.failures.push(now);
        if self.failures.len() >= limit {
            let lock = if escalate { FIRST_LOCK.saturating_mul(1 << self.locks.min(10)).min(MAX_LOCK) } else { window };
            self.locked_until = Some(now + lock);
            self.locks += 1;
            self.failures.clear();
        }
    }

    fn stale(&self, now: Instant) -> bool {
        self.retry_after(now).is_none() && self.failures.iter().all(|t| now.duration_since(*t) >= ACCOUNT_WINDOW)
    }
}

#[derive(Default)]
struct Tables {
    account_network: HashMap<(String, String), Counter>,
    account: HashMap<String, Counter>,
    address: HashMap<IpAddr, Counter>,
}

/// The throttle's bookkeeping, shared by all requests.
#[derive(Default)]
pub struct LoginThrottle {
    tables: Mutex<Tables>,
}

/// The client network a failure is counted against: /24 for IPv4, /64 for IPv6.
pub fn network_of(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// Usernames are compared by their normalised, case-folded key, so throttles are too.
fn normalise(username: &str) -> String {
    castellan_core::validate::username_key(username.trim())
}

impl LoginThrottle {
    /// How long this login must wait, if it is throttled.
    pub fn retry_after(&self, username: &str, ip: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        let t = self.tables.lock();
        let user = normalise(username);
        [
            t.address.get(&ip).and_then(|c| c.retry_after(now)),
            t.account_network.get(&(user.clone(), network_of(ip))).and_then(|c| c.retry_after(now)),
            t.account.get(&user).and_then(|c| c.retry_after(now)),
        ]
        .into_iter()
        .flatten()
        .max()
    }

    /// Counts a failed login.
    pub fn failure(&self, username: &str, ip: IpAddr) {
        let now = Instant::now();
        let mut t = self.tables.lock();
        if t.account_network.len() + t.address.len() > SWEEP_AT {
            t.account_network.retain(|_, c| !c.stale(now));
            t.account.retain(|_, c| !c.stale(now));
            t.address.retain(|_, c| !c.stale(now));
        }
        let user = normalise(username);
        t.account_network.entry((user.clone(), network_of(ip))).or_default().fail(now, ACCOUNT_WINDOW, ACCOUNT_FAILURES, true);
        t.account.entry(user).or_default().fail(now, ACCOUNT_WINDOW, GLOBAL_ACCOUNT_FAILURES, true);
        t.address.entry(ip).or_default().fail(now, ADDRESS_WINDOW, ADDRESS_FAILURES + 1, false);
    }

    /// A successful login resets the account's counters from that network.
    pub fn success(&self, username: &str, ip: IpAddr) {
        let mut t = self.tables.lock();
        t.account_network.remove(&(normalise(username), network_of(ip)));
    }

    /// Clears every throttle of an account (the `unlock` endpoint).
    pub fn unlock(&self, username: &str) {
        let user = normalise(username);
        let mut t = self.tables.lock();
        t.account_network.retain(|(u, _), _| *u != user);
        t.account.remove(&user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn locks_after_five_and_only_that_account() {
        let t = LoginThrottle::default();
        for _ in 0..4 {
            t.failure("Alice", ip("10.0.0.1"));
        }
        assert!(t.retry_after("alice", ip("10.0.0.1")).is_none());
        t.failure("alice", ip("10.0.0.2"));
        let wait = t.retry_after("ALICE", ip("10.0.0.9")).unwrap();
        assert!(wait <= FIRST_LOCK && wait > Duration::from_secs(25));
        assert!(t.retry_after("bob", ip("10.0.0.1")).is_none());
        assert!(t.retry_after("alice", ip("10.0.1.1")).is_none(), "other networks are not locked");
        t.unlock("alice");
        assert!(t.retry_after("alice", ip("10.0.0.1")).is_none());
    }

    #[test]
    fn lock_doubles() {
        let mut c = Counter::default();
        let now = Instant::now();
        for _ in 0..5 {
            c.fail(now, ACCOUNT_WINDOW, 5, true);
        }
        assert_eq!(c.retry_after(now), Some(FIRST_LOCK));
        for _ in 0..5 {
            c.fail(now, ACCOUNT_WINDOW, 5, true);
        }
        assert_eq!(c.retry_after(now), Some(FIRST_LOCK * 2));
        c.locks = 20;
        c.fail(now, ACCOUNT_WINDOW, 1, true);
        assert_eq!(c.retry_after(now), Some(MAX_LOCK));
    }

    #[test]
    fn address_locks_after_more_than_the_limit() {
        let t = LoginThrottle::default();
        for i in 0..ADDRESS_FAILURES {
            t.failure(&format!("user{i}"), ip("10.9.9.9"));
        }
        assert!(t.retry_after("anyone", ip("10.9.9.9")).is_none());
        t.failure("one-more", ip("10.9.9.9"));
        assert!(t.retry_after("anyone", ip("10.9.9.9")).is_some());
        assert!(t.retry_after("anyone", ip("10.9.9.10")).is_none());
    }

    #[test]
    fn success_resets_and_networks() {
        let t = LoginThrottle::default();
        for _ in 0..4 {
            t.failure("carol", ip("192.168.1.5"));
        }
        t.success("carol", ip("192.168.1.5"));
        t.failure("carol", ip("192.168.1.5"));
        assert!(t.retry_after("carol", ip("192.168.1.5")).is_none());
        assert_eq!(network_of(ip("2001:db8:1:2:3:4:5:6")), "2001:db8:1:2::/64");
    }
}
