//! Shared state handed to every handler.

use std::sync::Arc;

use castellan_store::Store;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::auth::credentials::CredentialCache;
use crate::auth::throttle::LoginThrottle;
use crate::config::ServerConfig;
use crate::directory::DirectoryView;
use crate::engine::EngineView;
use crate::follow::LogFollower;
use crate::hashing::HashPool;

/// How often passed expiries are recorded.
const EXPIRY_TICK: std::time::Duration = std::time::Duration::from_secs(1);

/// Writes an `expire` change when a membership, grant or role assignment expires (API.md §11); checks compare the
/// clock themselves, so this is for the record and for followers of the log. Each tick also follows the log, so
/// writes of other replicas reach this one's index and directory.
fn spawn_expiry_timer(store: Arc<dyn Store>, follower: Arc<LogFollower>) {
    let follower = Arc::downgrade(&follower);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EXPIRY_TICK);
        loop {
            tick.tick().await;
            let Some(follower) = follower.upgrade() else { return };
            if let Err(e) = store.record_expirations(time::OffsetDateTime::now_utc()).await {
                tracing::error!("cannot record expirations: {e}");
            }
            follower.follow_or_log().await;
        }
    });
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Everything a request may need; one shared allocation, so a clone (several per request: the router, each layer and
/// extractor with state) is one reference count, not one per field.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of [`AppState`].
pub struct Shared {
    /// Persistence.
    pub store: Arc<dyn Store>,
    /// Settings.
    pub config: Arc<ServerConfig>,
    /// Credential hashing key and the hash → principal cache.
    pub credentials: Arc<CredentialCache>,
    /// Failed-login bookkeeping.
    pub throttle: Arc<LoginThrottle>,
    /// Runs argon2 work off the async workers, bounded.
    pub hashing: Arc<HashPool>,
    /// The group tree and memberships in memory, following the change log.
    pub directory: Arc<DirectoryView>,
    /// The authorization engine's index.
    pub engine: Arc<EngineView>,
    /// The BE/FE permission catalog.
    pub catalog: Arc<crate::catalog::CatalogView>,
    /// Keeps `directory` and `engine` current with the change log.
    pub follower: Arc<LogFollower>,
    /// Renders `/metrics`.
    pub metrics: Option<PrometheusHandle>,
    /// Check, login and dry-run figures for `/metrics`.
    pub telemetry: crate::telemetry::Telemetry,
    /// Serialises this process's planned writes per target.
    pub targets: crate::write::Targets,
}

impl AppState {
    /// Builds the state, loading (or creating) the credential key from the store.
    pub async fn new(
        store: Arc<dyn Store>,
        config: ServerConfig,
        metrics: Option<PrometheusHandle>,
    ) -> Result<Self, castellan_store::StoreError> {
        let key = store.server_key(&crate::auth::credentials::random_bytes::<32>()).await?;
        let credentials = Arc::new(CredentialCache::new(key));
        crate::catalog::publish(store.as_ref()).await?;
        let follower = Arc::new(LogFollower::start(store.clone(), credentials.clone()).await?);
        spawn_expiry_timer(store.clone(), follower.clone());
        Ok(Self(Arc::new(Shared {
            directory: follower.directory().clone(),
            engine: follower.engine().clone(),
            catalog: follower.catalog().clone(),
            follower,
            hashing: Arc::new(HashPool::new(cores(), config.login_wait_budget)),
            credentials,
            throttle: Arc::new(LoginThrottle::default()),
            config: Arc::new(config),
            store,
            metrics,
            telemetry: crate::telemetry::Telemetry::new(),
            targets: crate::write::Targets::default(),
        })))
    }
}
