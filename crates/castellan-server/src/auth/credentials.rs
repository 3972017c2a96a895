//! Session and token secrets: 256-bit random values, known to the server only as HMAC-SHA-256 hashes.
//!
//! Every request verifies one, so a keyed hash (not argon2) is the right tool; hashes map to principals in a
//! small in-memory cache that writes to a user invalidate.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use castellan_core::model::User;
use castellan_core::permission::ModulePermissions;
use castellan_store::Credential;
use hmac::{KeyInit, Mac};
use parking_lot::RwLock;
use rand::RngCore;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// How long a cached credential is trusted before the store is asked again.
const CACHE_TTL: Duration = Duration::from_secs(30);
/// Cache entries beyond which the cache is cleared rather than grown.
const CACHE_MAX: usize = 100_000;

/// A credential resolved to its user.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The session or token (shared: a cache hit copies no strings).
    pub credential: Arc<Credential>,
    /// Its owner.
    pub user: Arc<User>,
    /// A token's scopes (`None`: all of its owner's holdings).
    pub scopes: Option<Arc<ModulePermissions>>,
}

impl Resolved {
    /// A credential read from the store, with its owner.
    pub fn new(credential: Credential, user: User) -> Self {
        let scopes = match &credential {
            Credential::Token(t) => t.permissions.clone().map(Arc::new),
            Credential::Session(_) => None,
        };
        Self { credential: Arc::new(credential), user: Arc::new(user), scopes }
    }
}

/// The credential key and the hash → principal cache.
pub struct CredentialCache {
    key: Vec<u8>,
    entries: RwLock<HashMap<[u8; 32], (Resolved, Instant)>>,
    /// Bumped by every invalidation: a resolution read before one must not be cached after it, or a credential
    /// revoked while a request was resolving it would live on in the cache.
    generation: AtomicU64,
}

/// `N` bytes from the operating system's generator.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    rand::rng().fill_bytes(&mut out);
    out
}

/// A fresh secret with a readable prefix (`cs_` sessions, `ct_` API tokens).
pub fn new_secret(prefix: &str) -> String {
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(random_bytes::<32>()))
}

impl CredentialCache {
    /// A cache hashing under `key`.
    pub fn new(key: Vec<u8>) -> Self {
        Self { key, entries: RwLock::new(HashMap::new()), generation: AtomicU64::new(0) }
    }

    /// The keyed hash of a secret.
    pub fn hash(&self, secret: &str) -> [u8; 32] {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC accepts keys of any length");
        mac.update(secret.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// A cached resolution younger than the TTL.
    pub fn get(&self, hash: &[u8; 32]) -> Option<Resolved> {
        let entries = self.entries.read();
        let (resolved, at) = entries.get(hash)?;
        (at.elapsed() < CACHE_TTL).then(|| resolved.clone())
    }

    /// The current generation; read it before looking a credential up in the store, and hand it to [`Self::put`].
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Remembers a resolution read at `generation`, unless an invalidation has happened since.
    pub fn put(&self, hash: [u8; 32], resolved: Resolved, generation: u64) {
        let mut entries = self.entries.write();
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if entries.len() >= CACHE_MAX {
            entries.clear();
        }
        entries.insert(hash, (resolved, Instant::now()));
    }

    /// Forgets every cached credential of `user` (after any change to the user or its credentials).
    pub fn invalidate_user(&self, user: i64) {
        let mut entries = self.entries.write();
        entries.retain(|_, (r, _)| r.user.pk != user);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_and_hashes_keyed() {
        let a = new_secret("ct_");
        assert!(a.starts_with("ct_") && a.len() > 40);
        assert_ne!(a, new_secret("ct_"));
        let c1 = CredentialCache::new(b"k1".to_vec());
        let c2 = CredentialCache::new(b"k2".to_vec());
        assert_eq!(c1.hash(&a), c1.hash(&a));
        assert_ne!(c1.hash(&a), c2.hash(&a));
    }
}
