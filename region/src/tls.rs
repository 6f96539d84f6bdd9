//! HTTPS on the API port. Which transport the region serves is decided once at start
//! ([`decide`], pure); the region's own CA is made at first start and kept in `<data_dir>/tls/`
//! ([`ensure_ca`]), and a server certificate for this host's names and addresses is signed by it
//! at every start ([`server_certificate`]), so a new address or `--tls-name` needs only a
//! restart. Clients (the CLI, racks) trust the CA, never the leaf: the leaf may change freely.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use crate::config::Tls;
use crate::error::{Error, Result};

/// What the API port speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// Plain HTTP, and why that is allowed.
    Plain { reason: &'static str },
    /// HTTPS with the operator's certificate chain and key (PEM files).
    Own { cert: PathBuf, key: PathBuf },
    /// HTTPS with a certificate signed by the region's own CA.
    Generated,
}

/// The transport for `listen` under the `[tls]` settings. Plain HTTP only when asked for
/// (`mode = "off"`, `--plain-http`) or, in `auto`, when the API listens on loopback only.
pub fn decide(listen: SocketAddr, tls: &Tls) -> Result<Transport> {
    match (&tls.cert_file, &tls.key_file) {
        (Some(_), None) | (None, Some(_)) => {
            return Err(Error::Config(
                "give both --tls-cert and --tls-key (the certificate chain and its key, PEM), or neither"
                    .into(),
            ))
        }
        _ => {}
    }
    match (tls.mode.as_str(), &tls.cert_file, &tls.key_file) {
        ("off", Some(_), _) => Err(Error::Config(
            "--tls-cert was given with plain HTTP (--plain-http or tls.mode = \"off\"): drop one"
                .into(),
        )),
        ("off", None, _) => Ok(Transport::Plain {
            reason: "plain HTTP was asked for",
        }),
        ("auto" | "on", Some(c), Some(k)) => Ok(Transport::Own {
            cert: c.clone(),
            key: k.clone(),
        }),
        ("auto", None, _) if listen.ip().is_loopback() => Ok(Transport::Plain {
            reason: "the API listens on loopback only",
        }),
        ("auto" | "on", None, _) => Ok(Transport::Generated),
        (m, _, _) => Err(Error::Config(format!(
            "tls.mode is '{m}'; use 'auto' (HTTPS unless the API listens on loopback), 'on' or 'off'"
        ))),
    }
}

/// Where the region's CA and its key live.
pub fn ca_paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    let d = data_dir.join("tls");
    (d.join("ca.pem"), d.join("ca.key"))
}

/// The CA a client on this host trusts: `<data_dir>/tls/ca.pem`.
pub fn ca_file(data_dir: &Path) -> PathBuf {
    ca_paths(data_dir).0
}

/// `sha256:<hex>` of a PEM certificate's DER (what `openssl x509 -fingerprint -sha256` prints,
/// lower case without colons): what an enrolling rack pins.
pub fn fingerprint(cert_pem: &str) -> Result<String> {
    let der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .map_err(|e| Error::Config(format!("not a PEM certificate: {e}")))?;
    Ok(format!(
        "sha256:{}",
        hex::encode(Sha256::digest(der.as_ref()))
    ))
}

fn tls_err(what: &str) -> impl Fn(rcgen::Error) -> Error + '_ {
    move |e| Error::Internal(format!("{what}: {e}"))
}

fn ca_params(common_name: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Kiln");
    dn.push(DnType::CommonName, common_name);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = rcgen::date_time_ymd(2026, 1, 1);
    p.not_after = rcgen::date_time_ymd(2046, 1, 1);
    p
}

/// The region's CA (certificate PEM, key PEM), made on first start: ECDSA P-256, valid until
/// 2046, the key 0600 beside it. Regions sharing a database should share it (copy `tls/`).
pub fn ensure_ca(data_dir: &Path) -> Result<(String, String)> {
    let (cert_path, key_path) = ca_paths(data_dir);
    match (
        std::fs::read_to_string(&cert_path),
        std::fs::read_to_string(&key_path),
    ) {
        (Ok(c), Ok(k)) => return Ok((c, k)),
        (Ok(_), Err(e)) => {
            return Err(Error::Config(format!(
                "the region's CA certificate {} is there but its key {} is not ({e}): put the key back, \
                 or remove tls/ to make a new CA (every rack and client must then trust the new one)",
                cert_path.display(),
                key_path.display()
            )))
        }
        // A key without its certificate: a first start stopped in between; nobody trusts it yet.
        (Err(_), Ok(_)) => std::fs::remove_file(&key_path)?,
        (Err(_), Err(_)) => {}
    }
    let dir = data_dir.join("tls");
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::Config(format!("cannot create {}: {e}", dir.display())))?;
    let key = KeyPair::generate().map_err(tls_err("making the CA key"))?;
    let name = format!("Kiln region CA ({})", host_name());
    let cert = ca_params(&name)
        .self_signed(&key)
        .map_err(tls_err("making the CA certificate"))?;
    let key_pem = key.serialize_pem();
    crate::domain::secrets::write_private(&key_path, key_pem.as_bytes())?;
    let cert_pem = cert.pem();
    std::fs::write(&cert_path, &cert_pem)
        .map_err(|e| Error::Config(format!("cannot write {}: {e}", cert_path.display())))?;
    tracing::info!(ca = %cert_path.display(), "made the region's TLS certificate authority");
    Ok((cert_pem, key_pem))
}

/// The names a generated server certificate covers: `localhost`, loopback, this host's name, the
/// listen address unless it is a wildcard, the host's interface addresses, and `extra`
/// (`--tls-name`, for names and addresses clients reach the region by that the host cannot know).
pub fn server_names(
    host: &str,
    listen: SocketAddr,
    interfaces: &[IpAddr],
    extra: &[String],
) -> Vec<String> {
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    if !host.is_empty() {
        names.push(host.to_string());
    }
    if !listen.ip().is_unspecified() {
        names.push(listen.ip().to_string());
    }
    names.extend(interfaces.iter().map(IpAddr::to_string));
    names.extend(extra.iter().map(|s| s.trim().to_string()));
    let mut seen = std::collections::BTreeSet::new();
    names.retain(|n| !n.is_empty() && seen.insert(n.clone()));
    names
}

/// A server certificate (chain PEM: leaf then CA, key PEM) for `names`, signed by the CA,
/// valid for 397 days from now.
pub fn server_certificate(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    names: &[String],
) -> Result<(String, String)> {
    let ca_key = KeyPair::from_pem(ca_key_pem).map_err(tls_err("reading the CA key"))?;
    let ca_params = CertificateParams::from_ca_cert_pem(ca_cert_pem)
        .map_err(tls_err("reading the CA certificate"))?;
    let ca = ca_params
        .self_signed(&ca_key)
        .map_err(tls_err("loading the CA"))?;
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Kiln");
    dn.push(
        DnType::CommonName,
        names.get(3).map(String::as_str).unwrap_or("localhost"),
    );
    p.distinguished_name = dn;
    p.subject_alt_names = names
        .iter()
        .map(|n| match n.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => n
                .as_str()
                .try_into()
                .map(SanType::DnsName)
                .map_err(tls_err("a name for the certificate")),
        })
        .collect::<Result<_>>()?;
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let now = time_now();
    p.not_before = now - rcgen_days(1);
    p.not_after = now + rcgen_days(397);
    let key = KeyPair::generate().map_err(tls_err("making the server key"))?;
    let cert = p
        .signed_by(&key, &ca, &ca_key)
        .map_err(tls_err("signing the server certificate"))?;
    Ok((
        format!("{}{}", cert.pem(), ca_cert_pem),
        key.serialize_pem(),
    ))
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

fn rcgen_days(n: i64) -> time::Duration {
    time::Duration::days(n)
}

/// rustls' server configuration from a certificate chain and key, both PEM.
pub fn server_config(chain_pem: &str, key_pem: &str) -> Result<rustls::ServerConfig> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::Config(format!("the TLS certificate chain is not PEM: {e}")))?;
    if chain.is_empty() {
        return Err(Error::Config(
            "the TLS certificate file holds no certificate".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| Error::Config(format!("the TLS key is not a PEM private key: {e}")))?;
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Internal(format!("TLS versions: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| {
            Error::Config(format!(
                "the TLS certificate and key do not go together: {e}"
            ))
        })
}

/// What a client on the region's own host trusts to reach it (all-in-one's rack): the region's
/// CA, or the operator's certificate chain; None for plain HTTP.
pub fn trust_for_local(cfg: &crate::Config) -> Result<Option<String>> {
    let read = |p: &Path| {
        std::fs::read_to_string(p)
            .map_err(|e| Error::Config(format!("cannot read {}: {e}", p.display())))
    };
    match decide(cfg.listen, &cfg.tls)? {
        Transport::Plain { .. } => Ok(None),
        Transport::Own { cert, .. } => read(&cert).map(Some),
        Transport::Generated => read(&ca_file(&cfg.data_dir)).map(Some),
    }
}

/// The fingerprint (hex, no prefix) an enrolment token carries: the region CA's when the region
/// serves HTTPS from it (the CA is made if this runs before the first start); None otherwise.
pub fn enrolment_pin(cfg: &crate::Config) -> Result<Option<String>> {
    if let Ok(ca) = std::fs::read_to_string(ca_file(&cfg.data_dir)) {
        if !matches!(decide(cfg.listen, &cfg.tls)?, Transport::Own { .. }) {
            return Ok(Some(
                fingerprint(&ca)?.trim_start_matches("sha256:").to_string(),
            ));
        }
    }
    match decide(cfg.listen, &cfg.tls)? {
        Transport::Generated => {
            let (ca, _) = ensure_ca(&cfg.data_dir)?;
            Ok(Some(
                fingerprint(&ca)?.trim_start_matches("sha256:").to_string(),
            ))
        }
        _ => Ok(None),
    }
}

/// The host's interface addresses (for the generated certificate's names).
pub fn interface_addresses() -> Vec<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for a in addrs {
        let Some(s) = a.address else { continue };
        if let Some(v4) = s.as_sockaddr_in() {
            out.push(IpAddr::V4(v4.ip()));
        } else if let Some(v6) = s.as_sockaddr_in6() {
            let ip = v6.ip();
            // Link-local addresses need a zone in URLs: no client reaches the region by one.
            if (ip.segments()[0] & 0xffc0) != 0xfe80 {
                out.push(IpAddr::V6(ip));
            }
        }
    }
    out
}

/// The rustls configuration for `transport` (None: plain HTTP), and a line for the log.
pub fn prepare(
    transport: &Transport,
    data_dir: &Path,
    listen: SocketAddr,
    extra_names: &[String],
) -> Result<Option<(rustls::ServerConfig, String)>> {
    match transport {
        Transport::Plain { .. } => Ok(None),
        Transport::Own { cert, key } => {
            let read = |p: &Path| {
                std::fs::read_to_string(p)
                    .map_err(|e| Error::Config(format!("cannot read {}: {e}", p.display())))
            };
            let cfg = server_config(&read(cert)?, &read(key)?)?;
            Ok(Some((cfg, format!("certificate {}", cert.display()))))
        }
        Transport::Generated => {
            let (ca, ca_key) = ensure_ca(data_dir)?;
            let names = server_names(&host_name(), listen, &interface_addresses(), extra_names);
            let (chain, key) = server_certificate(&ca, &ca_key, &names)?;
            let cfg = server_config(&chain, &key)?;
            Ok(Some((
                cfg,
                format!(
                    "CA {} ({}), names {}",
                    ca_file(data_dir).display(),
                    fingerprint(&ca)?,
                    names.join(", ")
                ),
            )))
        }
    }
}

/// This host's name (`/proc/sys/kernel/hostname`), for the CA's name and the certificate's.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls(mode: &str, cert: Option<&str>, key: Option<&str>) -> Tls {
        Tls {
            mode: mode.into(),
            cert_file: cert.map(PathBuf::from),
            key_file: key.map(PathBuf::from),
            names: vec![],
        }
    }

    #[test]
    fn https_unless_loopback_or_asked() {
        let any: SocketAddr = "0.0.0.0:5240".parse().unwrap();
        let lo: SocketAddr = "127.0.0.1:5240".parse().unwrap();
        assert_eq!(
            decide(any, &tls("auto", None, None)).unwrap(),
            Transport::Generated
        );
        assert!(matches!(
            decide(lo, &tls("auto", None, None)).unwrap(),
            Transport::Plain { .. }
        ));
        assert_eq!(
            decide(lo, &tls("on", None, None)).unwrap(),
            Transport::Generated
        );
        assert!(matches!(
            decide(any, &tls("off", None, None)).unwrap(),
            Transport::Plain { .. }
        ));
        assert!(matches!(
            decide(lo, &tls("auto", Some("c"), Some("k"))).unwrap(),
            Transport::Own { .. }
        ));
        for bad in [
            tls("auto", Some("c"), None),
            tls("auto", None, Some("k")),
            tls("off", Some("c"), Some("k")),
            tls("maybe", None, None),
        ] {
            assert!(decide(any, &bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_cover_loopback_host_listen_interfaces_and_extra_once() {
        let n = server_names(
            "region1",
            "10.0.0.5:5240".parse().unwrap(),
            &["10.0.0.5".parse().unwrap(), "192.168.1.2".parse().unwrap()],
            &["region.example.org".into(), " ".into()],
        );
        assert_eq!(
            n,
            [
                "localhost",
                "127.0.0.1",
                "::1",
                "region1",
                "10.0.0.5",
                "192.168.1.2",
                "region.example.org"
            ]
        );
        let wild = server_names("h", "0.0.0.0:5240".parse().unwrap(), &[], &[]);
        assert!(!wild.contains(&"0.0.0.0".to_string()), "{wild:?}");
    }

    #[test]
    fn the_ca_is_made_once_and_signs_a_server_certificate_rustls_accepts() {
        let d = tempfile::tempdir().unwrap();
        let (ca, key) = ensure_ca(d.path()).unwrap();
        let again = ensure_ca(d.path()).unwrap();
        assert_eq!(again.0, ca, "a second start keeps the CA");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(ca_paths(d.path()).1)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let fp = fingerprint(&ca).unwrap();
        assert!(fp.starts_with("sha256:") && fp.len() == 7 + 64, "{fp}");
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let (chain, leaf_key) = server_certificate(&ca, &key, &names).unwrap();
        assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 2);
        server_config(&chain, &leaf_key).unwrap();
        // A key that is not the certificate's is refused in words.
        let (_, other_key) = server_certificate(&ca, &key, &names).unwrap();
        let e = server_config(&chain, &other_key).unwrap_err().to_string();
        assert!(e.contains("do not go together"), "{e}");
    }
}
