//! Webhook power (MAAS's driver of the same name): `POST` the on or off URL, `GET` the query URL
//! and match its body against the on and off regexes. An optional bearer token is sent with each.

use std::time::Duration;

use futures_util::future::BoxFuture;
use region_api_types::power_params::Params;
use region_api_types::{BootDevice, PowerState};

use super::{DriverError, DriverResult, PowerDriver, Switch};

const TIMEOUT: Duration = Duration::from_secs(10);

pub struct Webhook {
    on: String,
    off: String,
    query: String,
    on_re: regex::Regex,
    off_re: regex::Regex,
    token: String,
    http: reqwest::Client,
}

impl Webhook {
    pub fn new(p: &Params<'_>) -> DriverResult<Webhook> {
        let fatal = |e: region_api_types::power_params::ParamError| DriverError::Fatal(e.message);
        let re = |name: &str| {
            regex::Regex::new(&p.str(name)).map_err(|e| {
                DriverError::Fatal(format!("power parameter '{name}' is not a regex: {e}"))
            })
        };
        let url = |name: &str| -> DriverResult<String> {
            let u = p.required(name).map_err(fatal)?;
            reqwest::Url::parse(&u).map_err(|e| {
                DriverError::Fatal(format!("power parameter '{name}' is not a URL: {e}"))
            })?;
            Ok(u)
        };
        Ok(Webhook {
            on: url("power_on_uri")?,
            off: url("power_off_uri")?,
            query: url("power_query_uri")?,
            on_re: re("power_on_regex")?,
            off_re: re("power_off_regex")?,
            token: p.str("power_token"),
            http: reqwest::Client::builder()
                .timeout(TIMEOUT)
                .danger_accept_invalid_certs(!p.bool("power_verify_tls"))
                .build()
                .map_err(|e| DriverError::Fatal(format!("HTTP client: {e}")))?,
        })
    }

    async fn call(&self, method: reqwest::Method, url: &str) -> DriverResult<String> {
        let mut rb = self.http.request(method, url);
        if !self.token.is_empty() {
            rb = rb.bearer_auth(&self.token);
        }
        let resp = rb.send().await.map_err(|e| {
            if e.is_timeout() {
                DriverError::Retryable(format!("no answer from {url} in {} s", TIMEOUT.as_secs()))
            } else {
                DriverError::Retryable(format!("cannot reach {url}: {e}"))
            }
        })?;
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        if status.is_success() {
            return Ok(body);
        }
        let short: String = body.chars().take(200).collect();
        Err(match status.as_u16() {
            401 | 403 => {
                DriverError::Retryable(format!("{url} refused the token: {status} {short}"))
            }
            400..=499 => DriverError::Fatal(format!("{url}: {status} {short}")),
            _ => DriverError::Retryable(format!("{url}: {status} {short}")),
        })
    }
}

impl PowerDriver for Webhook {
    fn bmc_key(&self) -> String {
        format!("webhook:{}", self.query)
    }

    fn set_boot_device(&self, _dev: BootDevice) -> BoxFuture<'_, DriverResult<()>> {
        // Webhooks have no boot device call (as in MAAS): the machine must PXE boot first.
        Box::pin(async { Ok(()) })
    }

    fn switch(&self, to: Switch) -> BoxFuture<'_, DriverResult<()>> {
        Box::pin(async move {
            let url = match to {
                Switch::On => &self.on,
                Switch::Off => &self.off,
            };
            self.call(reqwest::Method::POST, url).await?;
            Ok(())
        })
    }

    fn query(&self) -> BoxFuture<'_, DriverResult<PowerState>> {
        Box::pin(async move {
            let body = self.call(reqwest::Method::GET, &self.query).await?;
            if self.on_re.is_match(&body) {
                Ok(PowerState::On)
            } else if self.off_re.is_match(&body) {
                Ok(PowerState::Off)
            } else {
                let short: String = body.chars().take(120).collect();
                Err(DriverError::Retryable(format!(
                    "{} answered '{short}', which matches neither power_on_regex nor power_off_regex",
                    self.query
                )))
            }
        })
    }
}
