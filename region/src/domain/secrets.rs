//! Secrets at rest: BMC passwords and webhook tokens are sealed with ChaCha20-Poly1305 under a key
//! the region owns (a 32-byte file, `secret.key` in the data directory by default, mode 0600,
//! created on first start). Regions sharing one PostgreSQL database must share the key file.
//!
//! A sealed value is `kiln1:<nonce hex>:<ciphertext hex>`; the machine's id is the associated data,
//! so a sealed value copied to another machine's row does not open.

use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;
use serde_json::{Map, Value};

use crate::error::{Error, Result};

const PREFIX: &str = "kiln1:";

/// The region's sealing key.
#[derive(Clone)]
pub struct SecretBox {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    pub fn from_key(key: &[u8; 32]) -> SecretBox {
        SecretBox {
            cipher: ChaCha20Poly1305::new(Key::from_slice(key)),
        }
    }

    /// Reads the key file, creating it (mode 0600) when it does not exist.
    pub fn load_or_create(path: &Path) -> Result<SecretBox> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                    Error::Config(format!(
                        "secret key file {} holds {} bytes; it must hold exactly 32",
                        path.display(),
                        bytes.len()
                    ))
                })?;
                Ok(SecretBox::from_key(&key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut key);
                write_private(path, &key)?;
                tracing::info!("created the secret key {}", path.display());
                Ok(SecretBox::from_key(&key))
            }
            Err(e) => Err(Error::Config(format!(
                "cannot read secret key file {}: {e}",
                path.display()
            ))),
        }
    }

    /// Seals `secrets` for machine `system_id`; "" when there are none.
    pub fn seal(&self, system_id: &str, secrets: &Map<String, Value>) -> Result<String> {
        if secrets.is_empty() {
            return Ok(String::new());
        }
        let plain = serde_json::to_vec(secrets).map_err(|e| Error::Internal(e.to_string()))?;
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: system_id.as_bytes(),
                },
            )
            .map_err(|_| Error::Internal("sealing a secret failed".into()))?;
        Ok(format!(
            "{PREFIX}{}:{}",
            hex::encode(nonce),
            hex::encode(sealed)
        ))
    }

    /// Opens what [`SecretBox::seal`] made for `system_id`.
    pub fn open(&self, system_id: &str, sealed: &str) -> Result<Map<String, Value>> {
        if sealed.is_empty() {
            return Ok(Map::new());
        }
        let bad = || {
            Error::Internal(format!(
                "the power secrets of machine {system_id} do not open with this region's secret key \
                 (a different key file, or a damaged row): set the machine's power parameters again"
            ))
        };
        let rest = sealed.strip_prefix(PREFIX).ok_or_else(bad)?;
        let (n, c) = rest.split_once(':').ok_or_else(bad)?;
        let nonce = hex::decode(n)
            .ok()
            .filter(|n| n.len() == 12)
            .ok_or_else(bad)?;
        let ct = hex::decode(c).map_err(|_| bad())?;
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &ct,
                    aad: system_id.as_bytes(),
                },
            )
            .map_err(|_| bad())?;
        serde_json::from_slice(&plain).map_err(|_| bad())
    }
}

pub(crate) fn write_private(path: &Path, key: &[u8]) -> Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    o.mode(0o600);
    let mut f = o.open(path).map_err(|e| {
        Error::Config(format!(
            "cannot create secret key file {}: {e}",
            path.display()
        ))
    })?;
    f.write_all(key)?;
    f.sync_all()?;
    Ok(())
}

/// Splits power parameters into (public, secret) by the drivers' schemas.
pub fn split(params: &Map<String, Value>) -> (Map<String, Value>, Map<String, Value>) {
    let secret = region_api_types::power_params::secret_fields();
    let mut public = Map::new();
    let mut hidden = Map::new();
    for (k, v) in params {
        if secret.iter().any(|s| s == k) {
            hidden.insert(k.clone(), v.clone());
        } else {
            public.insert(k.clone(), v.clone());
        }
    }
    (public, hidden)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn seal_and_open_are_bound_to_the_key_and_the_machine() {
        let b = SecretBox::from_key(&[7; 32]);
        let m = json!({"power_pass": "s3cret"}).as_object().unwrap().clone();
        let s = b.seal("abc123", &m).unwrap();
        assert!(s.starts_with("kiln1:") && !s.contains("s3cret"));
        assert_eq!(b.open("abc123", &s).unwrap(), m);
        assert!(b.open("other1", &s).is_err(), "bound to the machine");
        assert!(
            SecretBox::from_key(&[8; 32]).open("abc123", &s).is_err(),
            "bound to the key"
        );
        assert_ne!(s, b.seal("abc123", &m).unwrap(), "fresh nonce each time");
        assert_eq!(b.seal("abc123", &Map::new()).unwrap(), "");
        assert!(b.open("abc123", "").unwrap().is_empty());
        assert!(b.open("abc123", "garbage").is_err());
    }

    #[test]
    fn key_file_is_created_private_and_reused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("secret.key");
        let a = SecretBox::load_or_create(&p).unwrap();
        let sealed = a
            .seal("m1", json!({"power_pass": "x"}).as_object().unwrap())
            .unwrap();
        let b = SecretBox::load_or_create(&p).unwrap();
        assert_eq!(b.open("m1", &sealed).unwrap()["power_pass"], "x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        std::fs::write(&p, b"short").unwrap();
        assert!(SecretBox::load_or_create(&p).is_err());
    }

    #[test]
    fn split_by_schema() {
        let m = json!({"power_address": "h", "power_pass": "p", "power_token": "t"});
        let (p, s) = split(m.as_object().unwrap());
        assert_eq!(p.keys().collect::<Vec<_>>(), ["power_address"]);
        assert_eq!(s.len(), 2);
    }
}
