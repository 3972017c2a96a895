//! First start on an empty store: organisation `default` and superuser `admin`.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use castellan_core::model::NewUser;
use castellan_core::password;
use castellan_store::{Store, StoreError, WriteCtx};

use crate::auth::credentials::random_bytes;

/// Why the first start could not complete.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The password file could not be written.
    #[error("cannot write {path}: {source}")]
    PasswordFile {
        /// Where.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Hashing failed.
    #[error("{0}")]
    Hash(String),
}

/// A random password that satisfies the default rule.
fn random_password() -> String {
    format!("Ca1!{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<18>()))
}

/// Writes `contents` to a new file only its owner can read, creating its directory (with `--database-url`, the data
/// directory holds nothing else and may not exist yet).
fn write_secret_file(path: &Path, contents: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    writeln!(file, "{contents}")
}

/// Creates org `default` and superuser `admin` when the store has no users; does nothing otherwise.
///
/// The password is `admin_password`, or a random one written to `password_file` (mode 0600); the log names the
/// file, never the password.
pub async fn first_start(store: &dyn Store, admin_password: Option<String>, password_file: &Path) -> Result<(), BootstrapError> {
    if store.count_users().await? > 0 {
        return Ok(());
    }
    let ctx = WriteCtx::default();
    let org = match store.org_by_slug("default").await {
        Ok(org) => org,
        Err(StoreError::NotFound) => store.create_org(&ctx, "Default", "default", "Created on first start.").await?.0,
        Err(e) => return Err(e.into()),
    };
    let generated = admin_password.is_none();
    let password = admin_password.unwrap_or_else(random_password);
    let hash = {
        let password = password.clone();
        tokio::task::spawn_blocking(move || password::hash(&password))
            .await
            .map_err(|e| BootstrapError::Hash(e.to_string()))?
            .map_err(|e| BootstrapError::Hash(e.to_string()))?
    };
    let admin = NewUser {
        username: "admin".into(),
        password_hash: Some(hash),
        email: "admin@localhost.localdomain".into(),
        first_name: String::new(),
        last_name: String::new(),
        description: "Created on first start.".into(),
        is_active: true,
        is_staff: true,
        is_superuser: true,
        org: org.pk,
        groups: Vec::new(),
    };
    store.create_user(&ctx, admin).await?;
    if generated {
        write_secret_file(password_file, &password)
            .map_err(|source| BootstrapError::PasswordFile { path: password_file.display().to_string(), source })?;
        tracing::warn!(file = %password_file.display(), "created superuser 'admin'; its generated password is in this file");
    } else {
        tracing::info!("created superuser 'admin' with the password from CASTELLAN_ADMIN_PASSWORD");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use castellan_store::{SqliteStore, Store, UserStore};

    /// With `--database-url` the data directory may not exist yet: the generated password's file is still written,
    /// readable by its owner only.
    #[tokio::test]
    async fn the_generated_password_is_written_where_the_data_directory_is_yet_to_be() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("castellan.db")).await.unwrap();
        store.migrate().await.unwrap();
        let file = dir.path().join("not-yet").join("initial-admin-password");
        super::first_start(&store, None, &file).await.unwrap();
        let password = std::fs::read_to_string(&file).unwrap();
        assert!(password.trim().len() >= 20, "{password}");
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(store.count_users().await.unwrap(), 1);
    }
}
