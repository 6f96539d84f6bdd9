//! Power control: one module per driver behind [`PowerDriver`], an explicit registry ([`build`]),
//! and the executor the rack runs jobs with ([`execute`]): retries, and "act, wait, query,
//! compare" live here, outside the drivers (MAAS's loop). [`serve`] takes jobs from the region,
//! runs them with a concurrency limit and one job at a time per BMC, and reports the outcome.
//!
//! Settings schemas and the pure protocol parts are in `rack_proto::power`.

pub mod ipmi;
pub mod redfish;
pub mod virsh;
pub mod webhook;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use region_api_types::{self as api, BootDevice, PowerAction, PowerState};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

/// Why a driver call failed, in words an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    /// Retrying cannot help: bad settings, a missing tool or library, an unsupported request.
    #[error("{0}")]
    Fatal(String),
    /// Authentication, connection or action failures: worth another try.
    #[error("{0}")]
    Retryable(String),
}

/// Result of a driver call.
pub type DriverResult<T> = std::result::Result<T, DriverError>;

/// Switching power.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    On,
    Off,
}

/// A power driver bound to one BMC.
pub trait PowerDriver: Send + Sync {
    /// Serialisation key: jobs with the same key never run at the same time.
    fn bmc_key(&self) -> String;
    /// Sets the device the machine boots from next (once).
    fn set_boot_device(&self, dev: BootDevice) -> BoxFuture<'_, DriverResult<()>>;
    /// Asks the BMC to switch power. Does not wait for the state to change.
    fn switch(&self, to: Switch) -> BoxFuture<'_, DriverResult<()>>;
    /// Reads the power state.
    fn query(&self) -> BoxFuture<'_, DriverResult<PowerState>>;
}

/// The registry: a driver for `power_type` with `params` (secrets included).
pub fn build(power_type: &str, params: &Map<String, Value>) -> DriverResult<Box<dyn PowerDriver>> {
    let p = region_api_types::power_params::Params::new(power_type, params);
    let bad = |e: region_api_types::power_params::ParamError| DriverError::Fatal(e.message);
    Ok(match power_type {
        "ipmi" => Box::new(ipmi::Ipmi::new(&p).map_err(bad)?),
        "redfish" => Box::new(redfish::Redfish::new(&p)?),
        "virsh" => Box::new(virsh::Virsh::new(&p).map_err(bad)?),
        "webhook" => Box::new(webhook::Webhook::new(&p)?),
        "manual" => {
            return Err(DriverError::Fatal(
                "power type manual: the operator powers this machine by hand".into(),
            ))
        }
        other => return Err(DriverError::Fatal(format!("'{other}' is not a power type"))),
    })
}

/// Timings of the executor.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Attempts per driver call (retryable errors only).
    pub attempts: u32,
    /// Pause after the first failed attempt; doubles each time.
    pub backoff: Duration,
    /// How long to wait for the state to follow an action.
    pub settle: Duration,
    /// Pause between queries while waiting.
    pub poll: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            attempts: 3,
            backoff: Duration::from_secs(1),
            settle: Duration::from_secs(60),
            poll: Duration::from_secs(1),
        }
    }
}

async fn retry<T, F>(policy: &Policy, what: &str, mut f: F) -> DriverResult<T>
where
    F: FnMut() -> BoxFuture<'static, DriverResult<T>>,
{
    let mut pause = policy.backoff;
    let mut attempt = 1;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(DriverError::Retryable(m)) if attempt < policy.attempts => {
                tracing::debug!("{what}: {m}; trying again in {pause:?}");
                tokio::time::sleep(pause).await;
                pause *= 2;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Runs one job on `driver`: sets the boot device if asked, acts, then queries until the state
/// matches (a cycle is off, wait, on, wait). Returns what happened, in words.
pub async fn execute(
    driver: Arc<dyn PowerDriver>,
    action: PowerAction,
    boot: Option<BootDevice>,
    policy: &Policy,
) -> api::RackPowerResult {
    match execute_inner(driver, action, boot, policy).await {
        Ok((state, message)) => api::RackPowerResult {
            ok: true,
            power_state: state,
            message,
            fatal: false,
        },
        Err(e) => api::RackPowerResult {
            ok: false,
            power_state: PowerState::Error,
            fatal: matches!(e, DriverError::Fatal(_)),
            message: e.to_string(),
        },
    }
}

async fn execute_inner(
    d: Arc<dyn PowerDriver>,
    action: PowerAction,
    boot: Option<BootDevice>,
    policy: &Policy,
) -> DriverResult<(PowerState, String)> {
    let query = {
        let d = d.clone();
        move || -> BoxFuture<'static, DriverResult<PowerState>> {
            let d = d.clone();
            Box::pin(async move { d.query().await })
        }
    };
    let mut said = Vec::new();
    if let Some(dev) = boot {
        let d2 = d.clone();
        retry(policy, "set boot device", move || {
            let d = d2.clone();
            Box::pin(async move { d.set_boot_device(dev).await })
        })
        .await?;
        said.push(format!("next boot from {}", dev.as_str()));
    }
    let before = retry(policy, "query", query.clone()).await?;
    let steps: &[Switch] = match (action, before) {
        (PowerAction::Query, _) => &[],
        (PowerAction::On, _) => &[Switch::On],
        (PowerAction::Off, _) => &[Switch::Off],
        (PowerAction::Cycle, PowerState::Off) => &[Switch::On],
        (PowerAction::Cycle, _) => &[Switch::Off, Switch::On],
    };
    let mut state = before;
    for &step in steps {
        let want = match step {
            Switch::On => PowerState::On,
            Switch::Off => PowerState::Off,
        };
        if state == want {
            continue;
        }
        let d2 = d.clone();
        retry(policy, "switch", move || {
            let d = d2.clone();
            Box::pin(async move { d.switch(step).await })
        })
        .await?;
        let deadline = tokio::time::Instant::now() + policy.settle;
        loop {
            state = retry(policy, "query", query.clone()).await?;
            if state == want {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(DriverError::Retryable(format!(
                    "asked to power {}, but the BMC still reports {state} after {} s",
                    want,
                    policy.settle.as_secs()
                )));
            }
            tokio::time::sleep(policy.poll).await;
        }
    }
    said.insert(
        0,
        match action {
            PowerAction::Query => format!("power is {state}"),
            _ if before == state => format!("power is {state} (it was already)"),
            _ => format!("power {before} → {state}"),
        },
    );
    Ok((state, said.join("; ")))
}

/// Settings of the job loop.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Jobs running at once on this rack.
    pub concurrency: usize,
    pub policy: Policy,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            concurrency: 32,
            policy: Policy::default(),
        }
    }
}

/// Per-BMC locks: one job at a time per BMC.
#[derive(Default)]
struct BmcLocks(std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl BmcLocks {
    fn get(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // Drop locks nobody holds or waits for, so the map does not grow with every BMC ever seen.
        if m.len() > 1024 {
            m.retain(|_, l| Arc::strong_count(l) > 1);
        }
        m.entry(key.to_string()).or_default().clone()
    }
}

/// Takes power jobs from the region (long poll) and runs them until `cancel` fires.
pub async fn serve(
    client: crate::region::RegionClient,
    cfg: ServeConfig,
    cancel: CancellationToken,
) -> crate::Result<()> {
    let sem = Arc::new(tokio::sync::Semaphore::new(cfg.concurrency.max(1)));
    let locks = Arc::new(BmcLocks::default());
    let mut failures = 0u32;
    loop {
        // Take jobs only when one can start: the region times a job from when a rack took it.
        if sem.available_permits() == 0 {
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                p = sem.acquire() => drop(p),
            }
        }
        let free = sem.available_permits();
        let fetched = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            r = client.power_jobs(25, free.max(1)) => r,
        };
        let jobs = match fetched {
            Ok(j) => {
                failures = 0;
                j
            }
            Err(e) => {
                failures = (failures + 1).min(5);
                tracing::warn!("power jobs: {e}");
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_secs(1 << failures)) => {}
                }
                continue;
            }
        };
        for job in jobs {
            let (client, sem, locks, policy) = (
                client.clone(),
                sem.clone(),
                locks.clone(),
                cfg.policy.clone(),
            );
            let span = tracing::info_span!("power", machine.id = %job.system_id, job = %job.id);
            tokio::spawn(tracing::Instrument::instrument(
                async move {
                    let result = run_one(&job, &sem, &locks, &policy).await;
                    tracing::info!(machine.id = %job.system_id, "power {} on {}: {}", job.action, job.system_id, result.message);
                    // Keep trying to report: the region is waiting for it.
                    for attempt in 0..30u32 {
                        match client.power_result(&job.id, &result).await {
                            Ok(()) => break,
                            Err(e) => {
                                tracing::warn!(machine.id = %job.system_id, "power result for job {}: {e}", job.id);
                                tokio::time::sleep(Duration::from_secs(
                                    u64::from(attempt.min(5)) + 1,
                                ))
                                .await;
                            }
                        }
                    }
                },
                span,
            ));
        }
    }
}

async fn run_one(
    job: &api::RackPowerJob,
    sem: &tokio::sync::Semaphore,
    locks: &BmcLocks,
    policy: &Policy,
) -> api::RackPowerResult {
    let driver: Arc<dyn PowerDriver> = match build(&job.power_type, &job.power_parameters) {
        Ok(d) => Arc::from(d),
        Err(e) => {
            return api::RackPowerResult {
                ok: false,
                power_state: PowerState::Error,
                message: e.to_string(),
                fatal: true,
            }
        }
    };
    let Ok(_permit) = sem.acquire().await else {
        return api::RackPowerResult {
            ok: false,
            power_state: PowerState::Error,
            message: "the rack is shutting down".into(),
            fatal: false,
        };
    };
    let lock = locks.get(&driver.bmc_key());
    let _one = lock.lock().await;
    execute(driver, job.action, job.boot_device, policy).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A driver whose BMC is a variable: checks the executor's sequencing, not any protocol
    /// (each real driver is tested against its real peer in `rack/tests/power.rs`).
    struct Scripted {
        state: Mutex<PowerState>,
        calls: Mutex<Vec<String>>,
        fail_first: Mutex<u32>,
        fatal: bool,
    }

    impl Scripted {
        fn new(s: PowerState) -> Arc<Scripted> {
            Arc::new(Scripted {
                state: Mutex::new(s),
                calls: Mutex::new(vec![]),
                fail_first: Mutex::new(0),
                fatal: false,
            })
        }
        fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }
    }

    impl PowerDriver for Scripted {
        fn bmc_key(&self) -> String {
            "x".into()
        }
        fn set_boot_device(&self, dev: BootDevice) -> BoxFuture<'_, DriverResult<()>> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("boot {}", dev.as_str()));
            Box::pin(async { Ok(()) })
        }
        fn switch(&self, to: Switch) -> BoxFuture<'_, DriverResult<()>> {
            self.calls.lock().unwrap().push(format!("{to:?}"));
            let mut f = self.fail_first.lock().unwrap();
            if *f > 0 {
                *f -= 1;
                let e = if self.fatal {
                    DriverError::Fatal("bad".into())
                } else {
                    DriverError::Retryable("flaky".into())
                };
                return Box::pin(async move { Err(e) });
            }
            *self.state.lock().unwrap() = match to {
                Switch::On => PowerState::On,
                Switch::Off => PowerState::Off,
            };
            Box::pin(async { Ok(()) })
        }
        fn query(&self) -> BoxFuture<'_, DriverResult<PowerState>> {
            let s = *self.state.lock().unwrap();
            Box::pin(async move { Ok(s) })
        }
    }

    fn fast() -> Policy {
        Policy {
            attempts: 3,
            backoff: Duration::from_millis(1),
            settle: Duration::from_millis(20),
            poll: Duration::from_millis(1),
        }
    }

    #[tokio::test]
    async fn cycle_of_a_running_machine_is_off_then_on() {
        let d = Scripted::new(PowerState::On);
        let r = execute(
            d.clone(),
            PowerAction::Cycle,
            Some(BootDevice::Pxe),
            &fast(),
        )
        .await;
        assert!(r.ok, "{r:?}");
        assert_eq!(d.calls(), ["boot pxe", "Off", "On"]);
        assert_eq!(r.power_state, PowerState::On);
        assert!(r.message.contains("next boot from pxe"), "{}", r.message);
    }

    #[tokio::test]
    async fn cycle_of_an_off_machine_only_powers_on_and_on_is_idempotent() {
        let d = Scripted::new(PowerState::Off);
        assert!(
            execute(d.clone(), PowerAction::Cycle, None, &fast())
                .await
                .ok
        );
        assert_eq!(d.calls(), ["On"]);
        let r = execute(d.clone(), PowerAction::On, None, &fast()).await;
        assert_eq!(d.calls(), ["On"], "already on: nothing sent");
        assert!(r.message.contains("already"), "{}", r.message);
    }

    #[tokio::test]
    async fn retryable_errors_are_retried_and_fatal_ones_are_not() {
        let d = Scripted::new(PowerState::Off);
        *d.fail_first.lock().unwrap() = 2;
        assert!(execute(d.clone(), PowerAction::On, None, &fast()).await.ok);
        assert_eq!(d.calls(), ["On", "On", "On"]);

        let d = Arc::new(Scripted {
            state: Mutex::new(PowerState::Off),
            calls: Mutex::new(vec![]),
            fail_first: Mutex::new(5),
            fatal: true,
        });
        let r = execute(d.clone(), PowerAction::On, None, &fast()).await;
        assert!(!r.ok && r.fatal, "{r:?}");
        assert_eq!(d.calls(), ["On"], "no retry storm on a fatal error");
    }

    #[tokio::test]
    async fn a_state_that_never_follows_is_a_failure() {
        struct Stuck;
        impl PowerDriver for Stuck {
            fn bmc_key(&self) -> String {
                "s".into()
            }
            fn set_boot_device(&self, _: BootDevice) -> BoxFuture<'_, DriverResult<()>> {
                Box::pin(async { Ok(()) })
            }
            fn switch(&self, _: Switch) -> BoxFuture<'_, DriverResult<()>> {
                Box::pin(async { Ok(()) })
            }
            fn query(&self) -> BoxFuture<'_, DriverResult<PowerState>> {
                Box::pin(async { Ok(PowerState::Off) })
            }
        }
        let r = execute(Arc::new(Stuck), PowerAction::On, None, &fast()).await;
        assert!(!r.ok);
        assert!(r.message.contains("still reports off"), "{}", r.message);
    }

    #[test]
    fn registry_refuses_manual_and_unknown_types_as_fatal() {
        assert!(matches!(
            build("manual", &Map::new()),
            Err(DriverError::Fatal(_))
        ));
        assert!(matches!(
            build("telnet", &Map::new()),
            Err(DriverError::Fatal(_))
        ));
        let e = build("ipmi", &Map::new()).err().unwrap();
        assert!(e.to_string().contains("power_address"), "{e}");
    }
}
