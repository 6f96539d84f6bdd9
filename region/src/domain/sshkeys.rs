//! Users' SSH public keys: parsed and checked the way OpenSSH reads an `authorized_keys` line, so
//! a key that would not work is refused with a reason instead of failing at the first login.

use base64::Engine;
use region_api_types as api;
use sha2::{Digest, Sha256};

use super::Caller;
use crate::db::deploy::{self as dbd, SshKeyRow};
use crate::db::{self, fmt_time, random_id, DbConn};
use crate::error::{Error, Result};

/// Key types Kiln accepts (what OpenSSH 9 accepts by default; DSA is gone).
pub const KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// A parsed public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedKey {
    pub key_type: String,
    /// `type base64 [comment]`, single spaces.
    pub line: String,
    pub comment: String,
    /// `SHA256:` + unpadded base64 of the blob's sha256 (as `ssh-keygen -l`).
    pub fingerprint: String,
}

/// Parses one public key line. Errors say what is wrong and what a good key looks like.
pub fn parse_key(input: &str) -> Result<ParsedKey> {
    let field = "key";
    let text = input.trim();
    if text.is_empty() {
        return Err(Error::validation(field, "The key is empty: paste one line of a .pub file, e.g. 'ssh-ed25519 AAAAC3Nza… you@laptop'."));
    }
    if text.contains('\n') || text.contains('\r') {
        return Err(Error::validation(
            field,
            "Give one key per request: the text has several lines.",
        ));
    }
    if text.len() > 16 * 1024 {
        return Err(Error::validation(
            field,
            "The key is longer than 16 KiB; that is no public key.",
        ));
    }
    if text.starts_with("-----BEGIN") {
        return Err(Error::validation(
            field,
            "This is a PEM/private key; give the public key (the .pub file's one line).",
        ));
    }
    let mut parts = text.split_whitespace();
    let key_type = parts.next().unwrap_or_default();
    if !KEY_TYPES.contains(&key_type) {
        return Err(Error::validation(
            field,
            format!(
                "'{}' is not a key type Kiln accepts; use one of {} (a public key line starts with its type).",
                key_type.chars().take(40).collect::<String>(),
                KEY_TYPES.join(", ")
            ),
        ));
    }
    let b64 = parts.next().ok_or_else(|| {
        Error::validation(
            field,
            format!("The {key_type} key has no base64 part after its type."),
        )
    })?;
    let blob = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| Error::validation(field, format!("The {key_type} key's second part is not valid base64; copy the whole line of the .pub file.")))?;
    // The blob starts with the type again, as an SSH string (u32 length, bytes).
    let inner = blob
        .get(..4)
        .map(|l| u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize)
        .and_then(|n| blob.get(4..4 + n));
    if inner != Some(key_type.as_bytes()) {
        return Err(Error::validation(field, format!("The key's data does not hold a {key_type} key (the line's type and its data disagree, or the data is cut).")));
    }
    if blob.len() < 4 + key_type.len() + 16 {
        return Err(Error::validation(
            field,
            format!("The {key_type} key's data is too short to be a key; it was probably cut."),
        ));
    }
    let comment = parts.collect::<Vec<_>>().join(" ");
    let digest = Sha256::digest(&blob);
    let fingerprint = format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
    );
    let line = if comment.is_empty() {
        format!("{key_type} {b64}")
    } else {
        format!("{key_type} {b64} {comment}")
    };
    Ok(ParsedKey {
        key_type: key_type.into(),
        line,
        comment,
        fingerprint,
    })
}

fn to_api(r: SshKeyRow) -> api::SshKey {
    api::SshKey {
        id: r.id,
        key_type: r.key_type,
        key: r.key,
        comment: r.comment,
        fingerprint: r.fingerprint,
        created_at: fmt_time(r.created_at),
    }
}

/// Adds a key for the caller; the same key twice is a 409 naming the first.
pub fn add_key(conn: &mut DbConn, caller: &Caller, key: &str, now: i64) -> Result<api::SshKey> {
    let k = parse_key(key)?;
    if let Some(old) = dbd::key_with_fingerprint(conn, &caller.user_id, &k.fingerprint)? {
        return Err(Error::conflict(
            "duplicate_ssh_key",
            Some("key"),
            format!(
                "You have this key already (id {}, {}).",
                old.id, old.fingerprint
            ),
        ));
    }
    let row = SshKeyRow {
        id: random_id(10),
        user_id: caller.user_id.clone(),
        key_type: k.key_type,
        key: k.line,
        comment: k.comment,
        fingerprint: k.fingerprint,
        created_at: now,
    };
    dbd::insert_key(conn, &row)?;
    db::users::audit(
        conn,
        now,
        &caller.username,
        "sshkey.add",
        &row.id,
        &row.fingerprint,
    )?;
    Ok(to_api(row))
}

pub fn list_keys(conn: &mut DbConn, caller: &Caller) -> Result<Vec<api::SshKey>> {
    Ok(dbd::keys_of(conn, &caller.user_id)?
        .into_iter()
        .map(to_api)
        .collect())
}

pub fn delete_key(conn: &mut DbConn, caller: &Caller, id: &str, now: i64) -> Result<()> {
    if !dbd::delete_key(conn, &caller.user_id, id)? {
        return Err(Error::not_found(format!("SSH key {id} of yours")));
    }
    db::users::audit(conn, now, &caller.username, "sshkey.delete", id, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    // A real ed25519 public key (ssh-keygen -t ed25519), and its fingerprint as ssh-keygen -l prints it.
    const ED: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDSBzytR+ySadoinxdux/UhGL8Oq0zLRd7bY7WpjN5F8 user@host";

    #[test]
    fn parses_and_fingerprints() {
        let k = parse_key(&format!("  {ED}  ")).unwrap();
        assert_eq!(k.key_type, "ssh-ed25519");
        assert_eq!(k.comment, "user@host");
        assert_eq!(
            k.fingerprint,
            "SHA256:/3lIHVKo5osFqUKiQiHGVRw5ZKzTeul+vIIVhV+eLK0"
        );
        assert_eq!(k.line, ED);
    }

    #[test]
    fn refuses_what_would_not_work() {
        for bad in [
            "",
            "ssh-dss AAAAB3NzaC1kc3M= x",
            "ssh-ed25519",
            "ssh-ed25519 !!!notbase64",
            "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIDSBzytR+ySadoinxdux/UhGL8Oq0zLRd7bY7WpjN5F8",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5",
            "-----BEGIN OPENSSH PRIVATE KEY-----",
            "ssh-ed25519 AAAA\nssh-ed25519 BBBB",
        ] {
            assert!(parse_key(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
