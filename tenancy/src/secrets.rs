//! Key material: the master key that seals stored secrets, secret keys that
//! never print, and generators for new access and secret keys.
//!
//! All randomness comes from the OS (`getrandom`), never from the
//! [`strata_common::Clock`], whose generator is seeded in tests and not
//! cryptographic.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use strata_metadata::SealedSecretRecord;
use subtle::ConstantTimeEq;

/// Prefix of every access key, so keys are recognisable in configs and logs.
pub const ACCESS_KEY_PREFIX: &str = "STRA";
/// Random characters after [`ACCESS_KEY_PREFIX`].
const ACCESS_KEY_RANDOM_LEN: usize = 16;
/// Length of a generated secret key (about 238 bits of entropy).
pub const SECRET_KEY_LEN: usize = 40;
/// RFC 4648 base32: 32 symbols, so 5 random bits map without bias.
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const ALPHANUMERIC: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const NONCE_LEN: usize = 12;

/// Errors handling key material. None of them carries secret bytes.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("the OS random generator failed: {0}")]
    Random(String),
    #[error("invalid master key: {0}")]
    InvalidMasterKey(String),
    #[error("master key file {path}: {source}")]
    MasterKeyFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("sealed secret for access key {access_key} is not valid hex of the right length")]
    MalformedSealed { access_key: String },
    /// Wrong master key, or a sealed secret altered or moved between keys.
    #[error("sealed secret for access key {access_key} does not open with this master key")]
    Unseal { access_key: String },
    #[error("cannot seal secret for access key {access_key}")]
    Seal { access_key: String },
    /// The stored keys were sealed with another master key (a node started
    /// on metadata another node created, without that node's key file).
    #[error(
        "the master key does not open the secret keys stored in this metadata (admin key {access_key} was sealed with another one): give this node the master key file of the node that created them (auth.master_key_file)"
    )]
    ForeignMasterKey { access_key: String },
}

fn fill_random(buf: &mut [u8]) -> Result<(), SecretsError> {
    getrandom::fill(buf).map_err(|e| SecretsError::Random(e.to_string()))
}

/// The 32-byte key that seals every stored secret key. Debug never shows it.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// A fresh random key.
    pub fn generate() -> Result<Self, SecretsError> {
        let mut key = [0u8; 32];
        fill_random(&mut key)?;
        Ok(Self(key))
    }

    /// Parses 64 hex digits (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<Self, SecretsError> {
        let mut key = [0u8; 32];
        // Only lengths go into the message: the text is key material.
        hex::decode_to_slice(text.trim(), &mut key).map_err(|_| {
            SecretsError::InvalidMasterKey(format!(
                "expected 64 hex digits, got {} characters that are not",
                text.trim().len()
            ))
        })?;
        Ok(Self(key))
    }

    /// The key as 64 lowercase hex digits, for writing the key file.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Reads the key from `path`, or creates it there (mode 0600) if the file
    /// does not exist. The flag is true when the key was created.
    ///
    /// A file readable by group or others is logged as a warning rather than
    /// refused: Kubernetes mounts secrets 0644 by default, and there the pod
    /// boundary, not the mode, guards the file.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), SecretsError> {
        let io = |source| SecretsError::MasterKeyFile {
            path: path.to_path_buf(),
            source,
        };
        let created = match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(mut file) => {
                let key = Self::generate()?;
                file.write_all(format!("{}\n", key.to_hex()).as_bytes())
                    .map_err(io)?;
                file.sync_all().map_err(io)?;
                tracing::info!(path = %path.display(), "created master key file");
                return Ok((key, true));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
            Err(e) => return Err(io(e)),
        };
        let mode = std::fs::metadata(path).map_err(io)?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{:o}", mode & 0o777),
                "master key file is readable by group or others; chmod 600 it"
            );
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        Ok((Self::from_hex(&text)?, created))
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(&Key::from(self.0))
    }

    /// Encrypts `secret` with a fresh random nonce. The access key is bound
    /// as associated data, so a sealed secret copied onto another key's
    /// record fails to open instead of granting that key this secret.
    pub fn seal(
        &self,
        secret: &SecretKey,
        access_key: &str,
    ) -> Result<SealedSecretRecord, SecretsError> {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce)?;
        let payload = Payload {
            msg: secret.expose().as_bytes(),
            aad: access_key.as_bytes(),
        };
        let ciphertext = self
            .cipher()
            .encrypt(&Nonce::from(nonce), payload)
            .map_err(|_| SecretsError::Seal {
                access_key: access_key.to_string(),
            })?;
        Ok(SealedSecretRecord {
            nonce_hex: hex::encode(nonce),
            ciphertext_hex: hex::encode(ciphertext),
        })
    }

    /// Decrypts a secret sealed by [`MasterKey::seal`] for `access_key`.
    pub fn open(
        &self,
        sealed: &SealedSecretRecord,
        access_key: &str,
    ) -> Result<SecretKey, SecretsError> {
        let malformed = || SecretsError::MalformedSealed {
            access_key: access_key.to_string(),
        };
        let unseal = || SecretsError::Unseal {
            access_key: access_key.to_string(),
        };
        let mut nonce = [0u8; NONCE_LEN];
        hex::decode_to_slice(&sealed.nonce_hex, &mut nonce).map_err(|_| malformed())?;
        let ciphertext = hex::decode(&sealed.ciphertext_hex).map_err(|_| malformed())?;
        let payload = Payload {
            msg: &ciphertext,
            aad: access_key.as_bytes(),
        };
        let plain = self
            .cipher()
            .decrypt(&Nonce::from(nonce), payload)
            .map_err(|_| unseal())?;
        String::from_utf8(plain)
            .map(SecretKey::new)
            .map_err(|_| unseal())
    }
}

/// A secret key. Debug and Display print a placeholder so it cannot leak
/// through logs or error messages; [`SecretKey::expose`] is the one way out.
#[derive(Clone)]
pub struct SecretKey(String);

impl SecretKey {
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself, for signing, sealing or showing it once on issue.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison, so response timing does not reveal how
    /// much of a guessed secret was right.
    pub fn ct_eq(&self, other: &str) -> bool {
        self.0.as_bytes().ct_eq(other.as_bytes()).into()
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl fmt::Display for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A new access key: "STRA" and 16 base32 characters (80 random bits, enough
/// that collisions, which the catalog refuses anyway, do not happen).
pub fn generate_access_key() -> Result<String, SecretsError> {
    let mut bytes = [0u8; ACCESS_KEY_RANDOM_LEN];
    fill_random(&mut bytes)?;
    let mut key = String::with_capacity(ACCESS_KEY_PREFIX.len() + ACCESS_KEY_RANDOM_LEN);
    key.push_str(ACCESS_KEY_PREFIX);
    key.extend(
        bytes
            .iter()
            .map(|b| char::from(BASE32[usize::from(b & 31)])),
    );
    Ok(key)
}

/// A new secret key of [`SECRET_KEY_LEN`] characters from `[A-Za-z0-9]`.
/// Bytes of 248 or more are discarded: 248 is the largest multiple of 62
/// below 256, so the remaining bytes map onto the alphabet without bias.
pub fn generate_secret_key() -> Result<SecretKey, SecretsError> {
    const LIMIT: u8 = 248;
    let mut out = String::with_capacity(SECRET_KEY_LEN);
    let mut bytes = [0u8; 64];
    while out.len() < SECRET_KEY_LEN {
        fill_random(&mut bytes)?;
        for &b in bytes.iter().filter(|&&b| b < LIMIT) {
            if out.len() == SECRET_KEY_LEN {
                break;
            }
            out.push(char::from(ALPHANUMERIC[usize::from(b % 62)]));
        }
    }
    Ok(SecretKey(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip() {
        let master = MasterKey::generate().unwrap();
        let secret = generate_secret_key().unwrap();
        let sealed = master.seal(&secret, "STRAA").unwrap();
        assert!(
            !sealed
                .ciphertext_hex
                .contains(&hex::encode(secret.expose()))
        );
        assert_eq!(
            master.open(&sealed, "STRAA").unwrap().expose(),
            secret.expose()
        );
        // A fresh nonce per seal: sealing twice gives different ciphertexts.
        assert_ne!(master.seal(&secret, "STRAA").unwrap(), sealed);
    }

    #[test]
    fn wrong_key_moved_or_tampered_secrets_fail() {
        let master = MasterKey::generate().unwrap();
        let sealed = master.seal(&SecretKey::new("s3cret"), "STRAA").unwrap();
        let other = MasterKey::generate().unwrap();
        assert!(matches!(
            other.open(&sealed, "STRAA"),
            Err(SecretsError::Unseal { .. })
        ));
        assert!(matches!(
            master.open(&sealed, "STRAB"),
            Err(SecretsError::Unseal { .. })
        ));
        let mut tampered = sealed.clone();
        let mut bytes = hex::decode(&tampered.ciphertext_hex).unwrap();
        bytes[0] ^= 1;
        tampered.ciphertext_hex = hex::encode(bytes);
        assert!(matches!(
            master.open(&tampered, "STRAA"),
            Err(SecretsError::Unseal { .. })
        ));
        let mut bad_hex = sealed;
        bad_hex.nonce_hex = "zz".into();
        assert!(matches!(
            master.open(&bad_hex, "STRAA"),
            Err(SecretsError::MalformedSealed { .. })
        ));
    }

    #[test]
    fn generated_keys_have_alphabet_length_and_differ() {
        let a = generate_access_key().unwrap();
        let b = generate_access_key().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 20);
        let tail = a.strip_prefix(ACCESS_KEY_PREFIX).unwrap();
        assert!(tail.bytes().all(|c| BASE32.contains(&c)), "{a}");
        let s = generate_secret_key().unwrap();
        let t = generate_secret_key().unwrap();
        assert_ne!(s.expose(), t.expose());
        assert_eq!(s.expose().len(), SECRET_KEY_LEN);
        assert!(s.expose().bytes().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn secrets_never_print() {
        let s = SecretKey::new("hunter2");
        assert_eq!(format!("{s:?}"), "SecretKey(..)");
        assert_eq!(format!("{s}"), "[redacted]");
        assert!(s.ct_eq("hunter2") && !s.ct_eq("hunter3") && !s.ct_eq("hunter"));
        let m = MasterKey::generate().unwrap();
        assert_eq!(format!("{m:?}"), "MasterKey(..)");
    }

    #[test]
    fn master_key_hex_and_file() {
        let m = MasterKey::generate().unwrap();
        assert_eq!(MasterKey::from_hex(&m.to_hex()).unwrap().0, m.0);
        assert!(MasterKey::from_hex("abc").is_err());
        let err = MasterKey::from_hex(&"g".repeat(64))
            .unwrap_err()
            .to_string();
        assert!(!err.contains("ggg"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let (created, was_created) = MasterKey::load_or_create(&path).unwrap();
        assert!(was_created);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (loaded, was_created) = MasterKey::load_or_create(&path).unwrap();
        assert!(!was_created);
        assert_eq!(loaded.0, created.0);
        std::fs::write(&path, "not a key").unwrap();
        assert!(MasterKey::load_or_create(&path).is_err());
    }
}
