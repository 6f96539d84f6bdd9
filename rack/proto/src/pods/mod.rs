//! KVM pods without IO: libvirt XML ([`xml`]) and resource accounting. A pod's capacity is what
//! its host has times the overcommit ratios; what is used is every VM on the host (Kiln's and the
//! others) plus what Kiln has promised to VMs the host has not reported yet.

pub mod xml;

use region_api_types::{PodDiscovery, PodResource, PodStoragePool};

/// A VM Kiln has asked for that the last discovery does not show yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reserved {
    /// Its domain name.
    pub name: String,
    pub cores: i64,
    pub memory_mib: i64,
    /// (pool, bytes) of each disk.
    pub disks: Vec<(String, i64)>,
}

/// What a pod has and has left.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Capacity {
    pub cores: PodResource,
    pub memory_mib: PodResource,
    pub pools: Vec<PodStoragePool>,
}

fn resource(total: i64, ratio: f64, used: i64) -> PodResource {
    // Saturating float → int: a host's numbers are far from the limits.
    let limit = (total as f64 * ratio).floor() as i64;
    PodResource {
        total,
        limit,
        used,
        free: (limit - used).max(0),
    }
}

/// The pod's capacity from its last discovery, the ratios, and what is reserved.
pub fn capacity(
    d: &PodDiscovery,
    cpu_ratio: f64,
    memory_ratio: f64,
    default_pool: Option<&str>,
    reserved: &[Reserved],
) -> Capacity {
    let pending: Vec<&Reserved> = reserved
        .iter()
        .filter(|r| !d.vms.iter().any(|v| v.name == r.name))
        .collect();
    let cores_used =
        d.vms.iter().map(|v| v.cores).sum::<i64>() + pending.iter().map(|r| r.cores).sum::<i64>();
    let mem_used = d.vms.iter().map(|v| v.memory_mib).sum::<i64>()
        + pending.iter().map(|r| r.memory_mib).sum::<i64>();
    let default = default_pool_name(d, default_pool);
    let pools = d
        .pools
        .iter()
        .map(|p| {
            let promised: i64 = pending
                .iter()
                .flat_map(|r| r.disks.iter())
                .filter(|(pool, _)| *pool == p.name)
                .map(|(_, b)| *b)
                .sum();
            let committed = p.committed_bytes + promised;
            let available = (p.available_bytes - promised).max(0);
            PodStoragePool {
                name: p.name.clone(),
                pool_type: p.pool_type.clone(),
                path: p.path.clone(),
                active: p.active,
                capacity_bytes: p.capacity_bytes,
                allocation_bytes: p.allocation_bytes,
                available_bytes: p.available_bytes,
                committed_bytes: committed,
                free_bytes: available.min((p.capacity_bytes - committed).max(0)),
                default: default.as_deref() == Some(p.name.as_str()),
            }
        })
        .collect();
    Capacity {
        cores: resource(d.cores, cpu_ratio, cores_used),
        memory_mib: resource(d.memory_mib, memory_ratio, mem_used),
        pools,
    }
}

/// The pool disks go to when they name none: the pod's default if the host has it, else the
/// host's first active pool.
pub fn default_pool_name(d: &PodDiscovery, configured: Option<&str>) -> Option<String> {
    match configured {
        Some(c) if !c.is_empty() => Some(c.to_string()),
        _ => d.pools.iter().find(|p| p.active).map(|p| p.name.clone()),
    }
}

fn gib(b: i64) -> String {
    let g = b as f64 / f64::from(1u32 << 30);
    if (g - g.round()).abs() < 0.05 {
        format!("{:.0} GiB", g.round())
    } else {
        format!("{g:.1} GiB")
    }
}

/// Whether a VM of `cores`, `memory_mib` and `disks` (pool, bytes) fits; if not, every shortage
/// in words.
pub fn check_fit(
    c: &Capacity,
    cpu_ratio: f64,
    memory_ratio: f64,
    cores: i64,
    memory_mib: i64,
    disks: &[(String, i64)],
) -> Result<(), String> {
    let mut short = Vec::new();
    if cores > c.cores.free {
        short.push(format!(
            "{cores} cores were asked for but {} are free ({} host cores × overcommit {cpu_ratio} = {}, {} in use)",
            c.cores.free, c.cores.total, c.cores.limit, c.cores.used
        ));
    }
    if memory_mib > c.memory_mib.free {
        short.push(format!(
            "{memory_mib} MiB of memory was asked for but {} MiB is free ({} MiB × overcommit {memory_ratio} = {} MiB, {} MiB in use)",
            c.memory_mib.free, c.memory_mib.total, c.memory_mib.limit, c.memory_mib.used
        ));
    }
    let mut by_pool: Vec<(&str, i64)> = Vec::new();
    for (pool, b) in disks {
        match by_pool.iter_mut().find(|(p, _)| p == pool) {
            Some(e) => e.1 += b,
            None => by_pool.push((pool, *b)),
        }
    }
    for (pool, want) in by_pool {
        match c.pools.iter().find(|p| p.name == pool) {
            None => short.push(format!("the host has no storage pool '{pool}' (it has: {})", {
                let names: Vec<&str> = c.pools.iter().map(|p| p.name.as_str()).collect();
                if names.is_empty() { "none".to_string() } else { names.join(", ") }
            })),
            Some(p) if !p.active => short.push(format!("storage pool '{pool}' is not active on the host")),
            Some(p) if want > p.free_bytes => short.push(format!(
                "{} of disk in pool '{pool}' was asked for but {} is free ({} capacity, {} committed to volumes, {} free on its filesystem)",
                gib(want), gib(p.free_bytes), gib(p.capacity_bytes), gib(p.committed_bytes), gib(p.available_bytes)
            )),
            Some(_) => {}
        }
    }
    if short.is_empty() {
        Ok(())
    } else {
        Err(short.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use region_api_types::{HostPool, HostVm};

    fn host() -> PodDiscovery {
        PodDiscovery {
            architecture: "x86_64".into(),
            cores: 4,
            memory_mib: 8192,
            pools: vec![
                HostPool {
                    name: "default".into(),
                    pool_type: "dir".into(),
                    active: true,
                    capacity_bytes: 100 << 30,
                    allocation_bytes: 60 << 30,
                    available_bytes: 40 << 30,
                    committed_bytes: 20 << 30,
                    ..Default::default()
                },
                HostPool {
                    name: "off".into(),
                    active: false,
                    ..Default::default()
                },
            ],
            vms: vec![HostVm {
                name: "hand".into(),
                cores: 1,
                memory_mib: 1024,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn capacity_counts_foreign_vms_and_pending_reservations_once() {
        let reserved = vec![
            Reserved {
                name: "new".into(),
                cores: 2,
                memory_mib: 2048,
                disks: vec![("default".into(), 10 << 30)],
            },
            // Already on the host: counted through the discovery, not twice.
            Reserved {
                name: "hand".into(),
                cores: 1,
                memory_mib: 1024,
                disks: vec![],
            },
        ];
        let c = capacity(&host(), 2.0, 1.5, None, &reserved);
        assert_eq!(
            c.cores,
            PodResource {
                total: 4,
                limit: 8,
                used: 3,
                free: 5
            }
        );
        assert_eq!(
            c.memory_mib,
            PodResource {
                total: 8192,
                limit: 12288,
                used: 3072,
                free: 9216
            }
        );
        let p = &c.pools[0];
        assert!(p.default);
        assert_eq!(p.committed_bytes, 30 << 30);
        // The filesystem's 40 GiB minus the 10 promised, which is less than 100 − 30.
        assert_eq!(p.free_bytes, 30 << 30);
    }

    #[test]
    fn free_storage_is_bounded_by_committed_volumes() {
        let mut h = host();
        h.pools[0].committed_bytes = 90 << 30;
        let c = capacity(&h, 1.0, 1.0, Some("default"), &[]);
        assert_eq!(c.pools[0].free_bytes, 10 << 30);
    }

    #[test]
    fn over_capacity_is_refused_with_every_shortage_in_words() {
        let c = capacity(&host(), 1.0, 1.0, None, &[]);
        assert!(check_fit(&c, 1.0, 1.0, 3, 7168, &[("default".into(), 20 << 30)]).is_ok());
        let e = check_fit(
            &c,
            1.0,
            1.0,
            4,
            8192,
            &[("default".into(), 25 << 30), ("default".into(), 25 << 30)],
        )
        .unwrap_err();
        assert!(
            e.contains(
                "4 cores were asked for but 3 are free (4 host cores × overcommit 1 = 4, 1 in use)"
            ),
            "{e}"
        );
        assert!(
            e.contains("8192 MiB of memory was asked for but 7168 MiB is free"),
            "{e}"
        );
        assert!(
            e.contains("50 GiB of disk in pool 'default' was asked for but 40 GiB is free"),
            "{e}"
        );
        let e =
            check_fit(&c, 1.0, 1.0, 1, 1, &[("nope".into(), 1), ("off".into(), 1)]).unwrap_err();
        assert!(
            e.contains("no storage pool 'nope' (it has: default, off)"),
            "{e}"
        );
        assert!(e.contains("'off' is not active"), "{e}");
    }

    #[test]
    fn default_pool_is_the_configured_one_or_the_first_active() {
        let h = host();
        assert_eq!(default_pool_name(&h, None).as_deref(), Some("default"));
        assert_eq!(default_pool_name(&h, Some("fast")).as_deref(), Some("fast"));
        assert_eq!(default_pool_name(&PodDiscovery::default(), None), None);
    }
}
