//! First-start setup: the default tenant and an admin key for the operator.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use strata_metadata::{AccessKeyRecord, CatalogError};

use super::{Credentials, IssuedKey};
use crate::error::TenancyError;
use crate::roles::Role;
use crate::secrets::{SecretKey, SecretsError, generate_access_key, generate_secret_key};

/// The tenant created on first start.
pub const DEFAULT_TENANT: &str = "default";
/// The plan of [`DEFAULT_TENANT`].
pub const DEFAULT_PLAN: &str = "default";

impl Credentials {
    /// Creates the [`DEFAULT_TENANT`] if it is missing and, if no unrevoked
    /// admin key exists, an admin key for it, written to `credentials_file`
    /// (mode 0600) and returned. Later starts find both and return `None`.
    ///
    /// Counting only unrevoked admin keys makes a restart the way back in
    /// after every admin key was revoked; the new secret lands only on the
    /// server's disk. Two nodes starting on an empty store at once may each
    /// create one admin key; both are valid.
    ///
    /// Callers log the file's path, never the returned secret.
    pub async fn bootstrap(
        &self,
        credentials_file: &Path,
    ) -> Result<Option<IssuedKey>, TenancyError> {
        let catalog = &self.inner.catalog;
        match catalog
            .create_tenant(DEFAULT_TENANT, DEFAULT_PLAN, self.now_ms())
            .await
        {
            Ok(_) | Err(CatalogError::TenantAlreadyExists { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let keys = catalog.list_access_keys(None).await?;
        let admin = keys
            .iter()
            .find(|k| k.role == Role::Admin.as_str() && k.revoked_ms.is_none());
        if let Some(admin) = admin {
            // Metadata shared with other nodes (etcd) may have been sealed
            // with another node's master key: say so now, not as every
            // request failing to authenticate.
            if self
                .inner
                .master
                .open(&admin.sealed_secret, &admin.access_key)
                .is_err()
            {
                return Err(SecretsError::ForeignMasterKey {
                    access_key: admin.access_key.clone(),
                }
                .into());
            }
            return Ok(None);
        }
        let issued = IssuedKey {
            access_key: generate_access_key()?,
            secret_key: generate_secret_key()?,
            tenant: DEFAULT_TENANT.to_string(),
            role: Role::Admin,
        };
        set_aside_unknown_credentials(credentials_file, &keys, self.now_ms())?;
        // The file first: if storing the key then fails, the next start
        // simply writes a new file. The other order could store a key whose
        // secret nobody ever saw, and the next start would not replace it.
        write_credentials_file(credentials_file, &issued)?;
        let now = self.now_ms();
        let record = AccessKeyRecord {
            access_key: issued.access_key.clone(),
            tenant: issued.tenant.clone(),
            role: issued.role.as_str().to_string(),
            sealed_secret: self
                .inner
                .master
                .seal(&issued.secret_key, &issued.access_key)?,
            description: "bootstrap admin key".to_string(),
            created_ms: now,
            updated_ms: now,
            revoked_ms: None,
        };
        catalog.create_access_key(&record).await?;
        self.cache_record(&record, issued.secret_key.clone(), now);
        tracing::info!(
            access_key = issued.access_key,
            path = %credentials_file.display(),
            "created bootstrap admin key"
        );
        Ok(Some(issued))
    }
}

/// Reads the access and secret key back from a credentials file's text
/// (the `key=value` lines [`write_credentials_file`] writes, which is also
/// what `strata key create` prints). `None` if either line is missing.
pub fn parse_credentials(text: &str) -> Option<(String, SecretKey)> {
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name)?.trim_start().strip_prefix('='))
            .map(|v| v.trim().to_string())
    };
    Some((value("access_key")?, SecretKey::new(value("secret_key")?)))
}

/// Renames a credentials file aside (to `<file>.replaced-<ms>`) when the
/// key it holds is not in the store at all: not revoked, but lost with the
/// metadata (a restored or repaired store). Its secret may be the only copy
/// of a credential an operator still needs to recognise; a revoked key's
/// file is simply replaced.
fn set_aside_unknown_credentials(
    path: &Path,
    keys: &[AccessKeyRecord],
    now_ms: i64,
) -> Result<(), TenancyError> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let Some((access_key, _)) = parse_credentials(&text) else {
        return Ok(());
    };
    if keys.iter().any(|k| k.access_key == access_key) {
        return Ok(());
    }
    let mut aside = path.as_os_str().to_owned();
    aside.push(format!(".replaced-{now_ms}"));
    let mut n = 0;
    while Path::new(&aside).exists() {
        n += 1;
        aside = path.as_os_str().to_owned();
        aside.push(format!(".replaced-{now_ms}-{n}"));
    }
    std::fs::rename(path, &aside).map_err(|source| TenancyError::CredentialsFile {
        path: path.to_path_buf(),
        source,
    })?;
    tracing::warn!(
        access_key,
        kept_as = %Path::new(&aside).display(),
        "the credentials file names an admin key the metadata store does not have (lost with \
         restored or repaired metadata, or a start that failed before storing it); kept the file \
         aside and creating a new bootstrap admin key"
    );
    Ok(())
}

/// Writes `key=value` lines readable only by the owner. An existing file is
/// narrowed to 0600 before the secret goes in, since `mode` applies only
/// when a file is created.
fn write_credentials_file(path: &Path, issued: &IssuedKey) -> Result<(), TenancyError> {
    let io = |source| TenancyError::CredentialsFile {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(io)?;
    let text = format!(
        "access_key={}\nsecret_key={}\ntenant={}\nrole={}\n",
        issued.access_key,
        issued.secret_key.expose(),
        issued.tenant,
        issued.role
    );
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)
}

#[cfg(test)]
mod parse_tests {
    use super::*;

    #[test]
    fn parses_what_is_written_and_refuses_partial_files() {
        let (ak, sk) =
            parse_credentials("access_key=AK1\nsecret_key = s3cr3t\ntenant=t\n").unwrap();
        assert_eq!((ak.as_str(), sk.expose()), ("AK1", "s3cr3t"));
        assert!(parse_credentials("access_key=AK1\n").is_none());
        assert!(parse_credentials("").is_none());
    }
}
