//! The HTTP client behind the client commands: `KILN_URL` + `KILN_TOKEN`, JSON in and out, API
//! errors shown as their message.

use anyhow::{anyhow, Context};
use clap::{Args, Subcommand};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Flags every client command shares, around its own subcommand.
#[derive(Debug, Args)]
pub struct ClientArgs<C: Subcommand> {
    /// Region URL.
    #[arg(
        long,
        env = "KILN_URL",
        default_value = "http://127.0.0.1:5240",
        global = true
    )]
    pub url: String,
    /// API token (`kiln admin create-token USER`).
    #[arg(long, env = "KILN_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: C,
}

/// A client of one region.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    pub fn new(url: &str, token: Option<String>) -> anyhow::Result<Client> {
        let mut b =
            reqwest::Client::builder().user_agent(concat!("kiln-cli/", env!("CARGO_PKG_VERSION")));
        if let Some((path, pem)) = trusted_ca()? {
            let cert = reqwest::Certificate::from_pem(pem.as_bytes())
                .with_context(|| format!("{} is not a PEM certificate", path.display()))?;
            b = b.add_root_certificate(cert);
        }
        let http = b.build()?;
        Ok(Client {
            base: url.trim_end_matches('/').to_string(),
            token,
            http,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut rb = self.http.request(method, self.url(path));
        if let Some(t) = &self.token {
            rb = rb.bearer_auth(t);
        }
        rb
    }

    /// Sends and decodes JSON, turning API errors into their message.
    pub async fn send<T: DeserializeOwned>(
        &self,
        rb: reqwest::RequestBuilder,
    ) -> anyhow::Result<T> {
        let resp = match rb.send().await {
            Ok(r) => r,
            Err(e) if cert_reason(&e).to_lowercase().contains("certificate") => {
                return Err(anyhow!(
                "the region at {} has a certificate this client does not trust ({}): set KILN_CA \
                     to the region's CA certificate (on the region host: <data dir>/tls/ca.pem, \
                     which `kiln` reads by itself)",
                self.base,
                cert_reason(&e)
            ))
            }
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!(
                    "cannot reach the region at {} (is it running? is KILN_URL right?)",
                    self.base
                )))
            }
        };
        let status = resp.status();
        let bytes = resp.bytes().await?;
        if !status.is_success() {
            return Err(api_error(status, &bytes));
        }
        let body: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
        serde_json::from_slice(body)
            .with_context(|| format!("unexpected answer from the region ({status})"))
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(self.request(Method::GET, path)).await
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<T> {
        self.send(self.request(Method::POST, path).json(body)).await
    }

    pub async fn put<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<T> {
        self.send(self.request(Method::PUT, path).json(body)).await
    }

    pub async fn patch<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<T> {
        self.send(self.request(Method::PATCH, path).json(body))
            .await
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<()> {
        self.send::<serde_json::Value>(self.request(Method::DELETE, path))
            .await
            .map(|_| ())
    }
}

/// The CA certificate the client trusts besides the public roots: `KILN_CA` (a PEM file), else
/// the region's own on this host (`$KILN_DATA_DIR/tls/ca.pem`, `/var/lib/kiln/tls/ca.pem`).
fn trusted_ca() -> anyhow::Result<Option<(std::path::PathBuf, String)>> {
    if let Some(p) = std::env::var_os("KILN_CA").filter(|v| !v.is_empty()) {
        let p = std::path::PathBuf::from(p);
        let pem = std::fs::read_to_string(&p)
            .with_context(|| format!("cannot read KILN_CA {}", p.display()))?;
        return Ok(Some((p, pem)));
    }
    let dir = std::env::var_os("KILN_DATA_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| crate::Config::default().data_dir);
    let p = crate::tls::ca_file(&dir);
    Ok(std::fs::read_to_string(&p).ok().map(|pem| (p, pem)))
}

/// The innermost cause of a TLS failure, in a few words.
fn cert_reason(e: &reqwest::Error) -> String {
    let mut src: &dyn std::error::Error = e;
    while let Some(s) = src.source() {
        src = s;
    }
    src.to_string()
}

/// An error answer as one line an operator can act on.
pub fn api_error(status: StatusCode, body: &[u8]) -> anyhow::Error {
    match serde_json::from_slice::<region_api_types::ErrorBody>(body) {
        Ok(e) => match e.field {
            Some(f) => anyhow!(
                "{} ({}, field {f}): {}",
                status.as_u16(),
                e.error,
                e.message
            ),
            None => anyhow!("{} ({}): {}", status.as_u16(), e.error, e.message),
        },
        Err(_) => anyhow!("{status}: {}", String::from_utf8_lossy(body).trim()),
    }
}

/// Percent-encodes a path segment (CIDRs contain '/').
pub fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
