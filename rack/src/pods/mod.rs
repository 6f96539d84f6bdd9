//! KVM pods, rack side: a driver per host type behind [`PodHost`] (libvirt: [`virsh`]), and the
//! loop that takes pod jobs from the region (discover, compose, decompose), runs them, and
//! reports each with what the host looks like afterwards, so the region's capacity is reconciled
//! with the host on every job.
//!
//! XML and accounting are pure, in `rack_proto::pods`.

pub mod virsh;

use std::sync::Arc;
use std::time::Duration;

use region_api_types::{self as api, PodDiscovery, PodJobKind, VmSpec};
use tokio_util::sync::CancellationToken;

/// Why a host call failed, in words an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HostError(pub String);

pub type HostResult<T> = std::result::Result<T, HostError>;

/// A VM host. Calls block (libvirt's are synchronous): run them on a blocking thread.
pub trait PodHost: Send + Sync {
    /// Cores, memory, storage pools, networks and every VM on the host.
    fn discover(&self) -> HostResult<PodDiscovery>;
    /// Makes the VM's volumes and defines it (not started). Leaves nothing behind on failure.
    fn compose(&self, vm: &VmSpec) -> HostResult<String>;
    /// Destroys the VM Kiln composed for `vm.system_id`: domain, NVRAM and volumes. A VM that is
    /// already gone is not an error.
    fn decompose(&self, vm: &VmSpec) -> HostResult<String>;
}

/// The driver for a job's host.
pub fn build(job: &api::RackPodJob) -> Box<dyn PodHost> {
    // `virsh` is the only pod type; the region refuses others.
    Box::new(virsh::VirshHost::new(&job.power_address, &job.power_pass))
}

/// Runs one job; blocking.
pub fn run(host: &dyn PodHost, job: &api::RackPodJob) -> api::RackPodResult {
    let outcome = match (job.kind, &job.vm) {
        (PodJobKind::Discover, _) => Ok(String::new()),
        (PodJobKind::Compose, Some(vm)) => host.compose(vm),
        (PodJobKind::Decompose, Some(vm)) => host.decompose(vm),
        (kind, None) => Err(HostError(format!("a {} job without its VM", kind.as_str()))),
    };
    // Whatever happened, the region gets the host as it is now.
    let discovery = host.discover();
    match (outcome, discovery) {
        (Ok(m), Ok(d)) => api::RackPodResult {
            ok: true,
            message: if m.is_empty() {
                format!(
                    "{} cores, {} MiB, {} storage pool(s), {} VM(s)",
                    d.cores,
                    d.memory_mib,
                    d.pools.len(),
                    d.vms.len()
                )
            } else {
                m
            },
            discovery: Some(d),
        },
        (Ok(m), Err(e)) if job.kind != PodJobKind::Discover => api::RackPodResult {
            ok: true,
            message: format!("{m} (reading the host back failed: {e})"),
            discovery: None,
        },
        (Ok(_), Err(e)) => api::RackPodResult {
            ok: false,
            message: e.0,
            discovery: None,
        },
        (Err(e), d) => api::RackPodResult {
            ok: false,
            message: e.0,
            discovery: d.ok(),
        },
    }
}

/// Takes pod jobs from the region (long poll) and runs them until `cancel` fires. Jobs of one
/// pod run one at a time, in order.
pub async fn serve(
    client: crate::region::RegionClient,
    cancel: CancellationToken,
) -> crate::Result<()> {
    let locks: Arc<
        std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    > = Arc::default();
    let mut failures = 0u32;
    loop {
        let fetched = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            r = client.pod_jobs(25, 16) => r,
        };
        let jobs = match fetched {
            Ok(j) => {
                failures = 0;
                j
            }
            Err(e) => {
                failures = (failures + 1).min(5);
                tracing::warn!("pod jobs: {e}");
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_secs(1 << failures)) => {}
                }
                continue;
            }
        };
        for job in jobs {
            let client = client.clone();
            let lock = {
                let mut m = locks.lock().unwrap_or_else(|p| p.into_inner());
                if m.len() > 256 {
                    m.retain(|_, l| Arc::strong_count(l) > 1);
                }
                m.entry(job.pod_id.clone()).or_default().clone()
            };
            let machine = job
                .vm
                .as_ref()
                .map(|v| v.system_id.clone())
                .unwrap_or_default();
            let span =
                tracing::info_span!("pod", pod = %job.pod_id, job = %job.id, machine.id = %machine);
            tokio::spawn(tracing::Instrument::instrument(
                async move {
                    let _one = lock.lock().await;
                    let j = job.clone();
                    let result = tokio::task::spawn_blocking(move || run(&*build(&j), &j))
                        .await
                        .unwrap_or_else(|e| api::RackPodResult {
                            ok: false,
                            message: format!("the pod job crashed: {e}"),
                            discovery: None,
                        });
                    tracing::info!(
                        "pod {} {}: {}{}",
                        job.pod_id,
                        job.kind.as_str(),
                        if result.ok { "" } else { "failed: " },
                        result.message
                    );
                    for attempt in 0..30u32 {
                        match client.pod_result(&job.id, &result).await {
                            Ok(()) => break,
                            Err(e) => {
                                tracing::warn!("pod result for job {}: {e}", job.id);
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
