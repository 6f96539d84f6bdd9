//! Redfish: `ComputerSystem.Reset`, `PowerState` and the one-time boot override, over HTTPS (or
//! HTTP when the address says so) with basic authentication. Whether the BMC's certificate is
//! checked is per BMC (`power_verify_tls`; BMCs mostly have self-signed ones, as MAAS assumes).

use std::time::Duration;

use futures_util::future::BoxFuture;
use rack_proto::power::redfish as doc;
use region_api_types::power_params::Params;
use region_api_types::{BootDevice, PowerState};
use serde_json::Value;

use super::{DriverError, DriverResult, PowerDriver, Switch};

const TIMEOUT: Duration = Duration::from_secs(10);

pub struct Redfish {
    base: String,
    user: String,
    pass: String,
    node_id: String,
    uefi: Option<bool>,
    http: reqwest::Client,
    system: tokio::sync::OnceCell<String>,
}

impl Redfish {
    pub fn new(p: &Params<'_>) -> DriverResult<Redfish> {
        let address = p
            .required("power_address")
            .map_err(|e| DriverError::Fatal(e.message))?;
        let base = doc::base_url(&address).map_err(DriverError::Fatal)?;
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .danger_accept_invalid_certs(!p.bool("power_verify_tls"))
            .build()
            .map_err(|e| DriverError::Fatal(format!("HTTP client: {e}")))?;
        Ok(Redfish {
            base,
            user: p.str("power_user"),
            pass: p.str("power_pass"),
            node_id: p.str("node_id"),
            uefi: match p.str("power_boot_type").as_str() {
                "efi" => Some(true),
                "legacy" => Some(false),
                _ => None,
            },
            http,
            system: tokio::sync::OnceCell::new(),
        })
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let rb = self.http.request(method, format!("{}{path}", self.base));
        if self.user.is_empty() {
            rb
        } else {
            rb.basic_auth(&self.user, Some(&self.pass))
        }
    }

    async fn send(&self, rb: reqwest::RequestBuilder, what: &str) -> DriverResult<Value> {
        let resp = rb.send().await.map_err(|e| {
            if e.is_timeout() {
                DriverError::Retryable(format!(
                    "no answer from {} in {} s",
                    self.base,
                    TIMEOUT.as_secs()
                ))
            } else {
                DriverError::Retryable(format!("cannot reach {}: {}", self.base, root_cause(&e)))
            }
        })?;
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        let json: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(json);
        }
        let said = doc::error_text(&json).unwrap_or_else(|| body.chars().take(200).collect());
        Err(match status.as_u16() {
            401 => DriverError::Retryable(format!(
                "wrong user or password for user {} at {}",
                self.user, self.base
            )),
            403 => DriverError::Fatal(format!(
                "user {} may not {what} at {}: {said}",
                self.user, self.base
            )),
            404 | 400 | 405 => {
                DriverError::Fatal(format!("{what} at {}: {status}: {said}", self.base))
            }
            _ => DriverError::Retryable(format!("{what} at {}: {status}: {said}", self.base)),
        })
    }

    async fn system_path(&self) -> DriverResult<String> {
        self.system
            .get_or_try_init(|| async {
                let c = self
                    .send(
                        self.req(reqwest::Method::GET, "/redfish/v1/Systems"),
                        "list systems",
                    )
                    .await?;
                doc::system_path(&self.node_id, &c)
                    .map_err(|m| DriverError::Fatal(format!("{m} at {}", self.base)))
            })
            .await
            .cloned()
    }

    async fn system(&self) -> DriverResult<(String, Value)> {
        let path = self.system_path().await?;
        let v = self
            .send(self.req(reqwest::Method::GET, &path), "read the system")
            .await?;
        Ok((path, v))
    }
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cur = e;
    while let Some(s) = cur.source() {
        cur = s;
    }
    cur.to_string()
}

impl PowerDriver for Redfish {
    fn bmc_key(&self) -> String {
        format!("redfish:{}", self.base)
    }

    fn set_boot_device(&self, dev: BootDevice) -> BoxFuture<'_, DriverResult<()>> {
        Box::pin(async move {
            let path = self.system_path().await?;
            let body = doc::boot_override(dev, self.uefi);
            self.send(
                self.req(reqwest::Method::PATCH, &path).json(&body),
                "set the boot device",
            )
            .await?;
            Ok(())
        })
    }

    fn switch(&self, to: Switch) -> BoxFuture<'_, DriverResult<()>> {
        Box::pin(async move {
            let (path, sys) = self.system().await?;
            let want = match to {
                Switch::On => doc::ON,
                Switch::Off => doc::OFF_HARD,
            };
            let reset = doc::reset_type(want, &doc::allowed_resets(&sys));
            let target = doc::reset_target(&sys, &path);
            self.send(
                self.req(reqwest::Method::POST, &target)
                    .json(&serde_json::json!({ "ResetType": reset })),
                &format!("reset ({reset})"),
            )
            .await?;
            Ok(())
        })
    }

    fn query(&self) -> BoxFuture<'_, DriverResult<PowerState>> {
        Box::pin(async move {
            let (_, sys) = self.system().await?;
            match doc::power_state(&sys) {
                PowerState::Unknown => Err(DriverError::Retryable(format!(
                    "{} reports no PowerState",
                    self.base
                ))),
                s => Ok(s),
            }
        })
    }
}
