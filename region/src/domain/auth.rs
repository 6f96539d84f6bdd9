//! Passwords (argon2id) and API tokens (random, stored as sha256).

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Prefix of every Kiln API token, so leaked tokens are recognisable by secret scanners.
pub const TOKEN_PREFIX: &str = "kiln_";

pub fn hash_password(password: &str) -> Result<String> {
    if password.len() < 8 {
        return Err(Error::validation(
            "password",
            "The password is too short: use at least 8 characters.",
        ));
    }
    if password.len() > 1024 {
        return Err(Error::validation(
            "password",
            "The password is too long: use at most 1024 bytes.",
        ));
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal(format!("password hashing failed: {e}")))
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A new token secret: `kiln_` + 43 base62 characters (256 bits).
pub fn new_token() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rngs::OsRng;
    let body: String = (0..43)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{TOKEN_PREFIX}{body}")
}

/// What the database stores for a token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The part of a token that may be shown to tell tokens apart.
pub fn token_display_prefix(token: &str) -> String {
    token.chars().take(TOKEN_PREFIX.len() + 6).collect()
}

/// The CSRF token of a UI session: derived from the session's secret (which only the browser holding
/// the HttpOnly cookie has), so it needs no storage and dies with the session. Every form carries it;
/// every state-changing request authenticated by the cookie must send it back.
pub fn csrf_token(session_secret: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"kiln-ui-csrf\0");
    h.update(session_secret.as_bytes());
    hex::encode(h.finalize())[..32].to_string()
}

/// Compares two tokens in time independent of where they differ.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong horse", &h));
        assert!(!verify_password("x", "not a hash"));
        assert!(hash_password("short").is_err());
    }

    #[test]
    fn tokens_are_unique_and_hashed() {
        let a = new_token();
        let b = new_token();
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 43);
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), token_hash(&b));
        assert_eq!(token_display_prefix(&a).len(), 11);
    }

    #[test]
    fn csrf_tokens_are_per_session_and_compared_whole() {
        let a = csrf_token("kiln_session_one");
        assert_eq!(a, csrf_token("kiln_session_one"));
        assert_ne!(a, csrf_token("kiln_session_two"));
        assert_eq!(a.len(), 32);
        assert!(same_token(&a, &a.clone()));
        assert!(!same_token(&a, &a[..31]));
        assert!(!same_token(&a, &csrf_token("x")));
    }
}
