//! The `castellan` binary: serve the API, migrate the store, create superusers.

use std::io::BufRead;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use castellan_core::model::NewUser;
use castellan_core::password::{self, PasswordPolicy};
use castellan_server::serve::{ConnectionLimits, default_max_connections};
use castellan_server::{AppState, ServerConfig, bootstrap};
use castellan_store::{OrgStore, PermissionStore, SqliteStore, Store, WriteCtx};
use clap::{Args, Parser, Subcommand};

/// mimalloc: glibc's allocator spent ~15% of a user-listing load in malloc/free and its arena locks (perf, 16 clients).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Castellan: users, groups, roles and permissions in one binary.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (migrates the store first).
    Serve {
        /// Address to listen on.
        #[arg(long, env = "CASTELLAN_LISTEN", default_value = "127.0.0.1:8080")]
        listen: String,
        /// Public origin used for CSRF checks, cookies and `next` links (e.g. https://iam.example.com).
        #[arg(long, env = "CASTELLAN_PUBLIC_URL")]
        public_url: Option<url::Url>,
        #[command(flatten)]
        limits: Limits,
        #[command(flatten)]
        storage: Storage,
    },
    /// Bring the store's schema up to date.
    Migrate {
        #[command(flatten)]
        storage: Storage,
    },
    /// Write the benchmark dataset D (1M users, 111,110 groups five levels deep, 10M memberships, 50 modules, 1M objects
    /// with parents, 1M object grants; `--scale` shrinks it), deterministically, then time loading it into the engine.
    Dataset {
        /// Fraction of D's users, objects and object grants to write.
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        #[command(flatten)]
        storage: Storage,
    },
    /// Create a superuser (password from CASTELLAN_SUPERUSER_PASSWORD or the first line of standard input).
    Createsuperuser {
        /// Login name.
        #[arg(long)]
        username: String,
        /// Email address.
        #[arg(long)]
        email: String,
        #[command(flatten)]
        storage: Storage,
    },
}

/// Session lifetimes, the body limit, the proxies whose forwarding headers are believed, and connection bounds.
#[derive(Args)]
struct Limits {
    /// A session's absolute lifetime, in seconds.
    #[arg(long, env = "CASTELLAN_SESSION_TTL", default_value_t = 12 * 3600, value_parser = clap::value_parser!(u64).range(1..))]
    session_ttl: u64,
    /// A session's lifetime without use, in seconds.
    #[arg(long, env = "CASTELLAN_SESSION_IDLE", default_value_t = 2 * 3600, value_parser = clap::value_parser!(u64).range(1..))]
    session_idle: u64,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "CASTELLAN_BODY_LIMIT", default_value_t = 1024 * 1024, value_parser = clap::value_parser!(u64).range(1024..))]
    body_limit: u64,
    /// Proxies (addresses or CIDR networks, comma-separated) whose X-Forwarded-For / Forwarded headers are believed.
    #[arg(long, env = "CASTELLAN_TRUSTED_PROXIES", value_delimiter = ',', value_parser = castellan_server::config::parse_trusted_proxy)]
    trusted_proxies: Vec<ipnet::IpNet>,
    /// Longest wait for a request's headers, in seconds; also closes kept-alive connections idle for as long.
    #[arg(long, env = "CASTELLAN_HEADER_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    header_timeout: u64,
    /// Longest time to receive a request's body, in seconds.
    #[arg(long, env = "CASTELLAN_BODY_TIMEOUT", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    body_timeout: u64,
    /// Most users a dry run previews; a write affecting more answers 400.
    #[arg(long, env = "CASTELLAN_PREVIEW_MAX_USERS", default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    preview_max_users: u64,
    /// `/readyz` fails while the in-memory index is more than this many revisions behind the store.
    #[arg(long, env = "CASTELLAN_READY_MAX_LAG", default_value_t = 1_000)]
    ready_max_lag: u64,
    /// Most connections open at once (default: the descriptor limit less 64).
    #[arg(long, env = "CASTELLAN_MAX_CONNECTIONS", value_parser = clap::value_parser!(u64).range(1..))]
    max_connections: Option<u64>,
}

impl Limits {
    /// The server configuration with these limits and `public_url`.
    fn config(self, public_url: Option<url::Url>) -> ServerConfig {
        ServerConfig {
            public_url,
            session_ttl: std::time::Duration::from_secs(self.session_ttl),
            session_idle: std::time::Duration::from_secs(self.session_idle),
            body_limit: usize::try_from(self.body_limit).unwrap_or(usize::MAX),
            trusted_proxies: self.trusted_proxies,
            ready_max_lag: self.ready_max_lag,
            preview_max_users: usize::try_from(self.preview_max_users).unwrap_or(usize::MAX),
            connections: ConnectionLimits {
                header_timeout: std::time::Duration::from_secs(self.header_timeout),
                body_timeout: std::time::Duration::from_secs(self.body_timeout),
                max_connections: self.max_connections.map_or_else(default_max_connections, |n| {
                    usize::try_from(n).unwrap_or(usize::MAX).min(default_max_connections())
                }),
                ..ConnectionLimits::default()
            },
            ..ServerConfig::default()
        }
    }
}

#[derive(Args)]
struct Storage {
    /// Directory holding the SQLite database (castellan.db).
    #[arg(long, env = "CASTELLAN_DATA_DIR", default_value = "./castellan-data")]
    data_dir: PathBuf,
    /// Database URL (`sqlite://...`); overrides --data-dir.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
}

type AnyError = Box<dyn std::error::Error + Send + Sync>;

impl Storage {
    /// The SQLite store (bulk loading needs the concrete backend).
    async fn open_sqlite(&self) -> Result<SqliteStore, AnyError> {
        let store = match &self.database_url {
            Some(url) if url.starts_with("sqlite:") => SqliteStore::open_url(url).await?,
            Some(_) => return Err("the dataset command needs a SQLite store".into()),
            None => {
                std::fs::create_dir_all(&self.data_dir)?;
                SqliteStore::open(&self.data_dir.join("castellan.db")).await?
            }
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn open(&self) -> Result<Arc<dyn Store>, AnyError> {
        let store = match &self.database_url {
            Some(url) if url.starts_with("sqlite:") => SqliteStore::open_url(url).await?,
            Some(url) if url.starts_with("postgres") => {
                return Err("the PostgreSQL backend is not available in this build yet; use SQLite".into());
            }
            Some(url) => return Err(format!("unsupported database URL scheme: {url}").into()),
            None => {
                std::fs::create_dir_all(&self.data_dir)?;
                SqliteStore::open(&self.data_dir.join("castellan.db")).await?
            }
        };
        store.migrate().await?;
        Ok(Arc::new(store))
    }
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    if let Err(e) = run(Cli::parse()).await {
        tracing::error!("{e}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<(), AnyError> {
    match cli.command {
        Command::Serve { listen, public_url, limits, storage } => {
            castellan_server::serve::raise_descriptor_limit();
            serve(&listen, limits.config(public_url), &storage).await
        }
        Command::Migrate { storage } => {
            storage.open().await?;
            tracing::info!("store is up to date");
            Ok(())
        }
        Command::Createsuperuser { username, email, storage } => create_superuser(&storage, username, email).await,
        Command::Dataset { scale, storage } => dataset(&storage, scale).await,
    }
}

async fn serve(listen: &str, config: ServerConfig, storage: &Storage) -> Result<(), AnyError> {
    let store = storage.open().await?;
    let password_file = storage.data_dir.join("initial-admin-password");
    if storage.database_url.is_none() {
        std::fs::create_dir_all(&storage.data_dir)?;
    }
    bootstrap::first_start(store.as_ref(), std::env::var("CASTELLAN_ADMIN_PASSWORD").ok(), &password_file).await?;
    let state = AppState::new(store, config, castellan_server::install_metrics()).await?;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(address = %listener.local_addr()?, "castellan listening");
    castellan_server::serve(listener, state, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down; finishing in-flight requests");
}

async fn create_superuser(storage: &Storage, username: String, email: String) -> Result<(), AnyError> {
    let username = castellan_core::validate::normalize_username(&username);
    castellan_core::validate::username(&username)?;
    castellan_core::validate::email(&email)?;
    let password = match std::env::var("CASTELLAN_SUPERUSER_PASSWORD") {
        Ok(p) => p,
        Err(_) => std::io::stdin().lock().lines().next().transpose()?.unwrap_or_default(),
    };
    PasswordPolicy::default().check(&password, &username)?;
    let store = storage.open().await?;
    let org = store.org_by_slug("default").await;
    let org = match org {
        Ok(org) => org,
        Err(_) => store.create_org(&WriteCtx::default(), "Default", "default", "Created on first start.").await?.0,
    };
    let hash = tokio::task::spawn_blocking(move || password::hash(&password)).await??;
    let user = NewUser {
        username,
        password_hash: Some(hash),
        email,
        first_name: String::new(),
        last_name: String::new(),
        description: String::new(),
        is_active: true,
        is_staff: true,
        is_superuser: true,
        org: org.pk,
        groups: Vec::new(),
    };
    let (user, _) = store.create_user(&WriteCtx::default(), user).await?;
    tracing::info!(pk = user.pk, username = %user.username, "superuser created");
    Ok(())
}

/// Resident memory of this process in MiB (Linux), for the dataset report.
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

async fn dataset(storage: &Storage, scale: f64) -> Result<(), AnyError> {
    use castellan_core::engine::synthetic::{Spec, generate};
    if !(scale > 0.0 && scale <= 1.0) {
        return Err("--scale must be in (0, 1]".into());
    }
    let store = storage.open_sqlite().await?;
    let org = match store.org_by_slug("default").await {
        Ok(org) => org,
        Err(_) => store.create_org(&WriteCtx::default(), "Default", "default", "Created on first start.").await?.0,
    };
    let d = Spec::d();
    let spec = Spec {
        users: (d.users as f64 * scale) as u64,
        objects: (d.objects as f64 * scale) as u64,
        object_grants: (d.object_grants as f64 * scale) as u64,
        ..d
    };
    let started = std::time::Instant::now();
    let facts = generate(spec);
    let hash = tokio::task::spawn_blocking(|| password::hash("Dataset1!")).await??;
    let counts = store.import_facts(&facts, org.pk, &hash).await?;
    drop(facts);
    tracing::info!(?counts, seconds = started.elapsed().as_secs_f64(), "dataset written (users' password: Dataset1!)");
    let started = std::time::Instant::now();
    let (facts, revision) = store.engine_facts().await?;
    let index = castellan_core::engine::Index::build(&facts);
    drop(facts);
    let (users, groups, objects, grant_sets) = index.sizes();
    tracing::info!(
        seconds = started.elapsed().as_secs_f64(),
        rss_mib = rss_mib(),
        users,
        groups,
        objects,
        grant_sets,
        revision,
        "engine index loaded from the store"
    );
    Ok(())
}
