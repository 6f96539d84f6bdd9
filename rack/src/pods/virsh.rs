//! libvirt hosts (MAAS's `virsh` pods) through the `virt` crate: what the host has (node info,
//! storage pools and their volumes, networks, every domain), composing a VM (sparse volumes, then
//! the domain; undone on failure) and decomposing one (destroy, undefine with its NVRAM, delete
//! its volumes).

use rack_proto::pods::xml::{self, DiskSource};
use region_api_types::{HostDisk, HostPool, HostVm, PodDiscovery, PodNetwork, VmSpec};
use virt::connect::Connect;
use virt::domain::Domain;
use virt::storage_pool::StoragePool;
use virt::storage_vol::StorageVol;

use super::{HostError, HostResult, PodHost};

/// libvirt's `VIR_STORAGE_POOL_RUNNING`.
const POOL_RUNNING: u32 = 2;
/// `VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | SNAPSHOTS_METADATA | NVRAM | CHECKPOINTS_METADATA`.
const UNDEFINE_ALL: u32 = 1 | 2 | 4 | 16;
/// `VIR_DOMAIN_XML_INACTIVE`.
const XML_INACTIVE: u32 = 2;

pub struct VirshHost {
    uri: String,
    pass: String,
}

impl VirshHost {
    pub fn new(uri: &str, pass: &str) -> VirshHost {
        VirshHost {
            uri: uri.to_string(),
            pass: pass.to_string(),
        }
    }

    fn open(&self) -> HostResult<Connect> {
        crate::power::virsh::connect(&self.uri, &self.pass).map_err(|e| HostError(e.to_string()))
    }

    fn err(&self, what: &str, e: &virt::error::Error) -> HostError {
        HostError(format!("libvirt at {}: {what}: {}", self.uri, e.message()))
    }
}

/// (name, path, size) of a pool's volumes.
type Volumes = Vec<(String, String, i64)>;

fn pool_facts(p: &StoragePool) -> Option<(HostPool, Volumes)> {
    let name = p.name().ok()?;
    let (pool_type, path) = p
        .xml_desc(0)
        .ok()
        .and_then(|x| xml::parse_pool(&x).ok())
        .unwrap_or_default();
    let active = p.is_active().unwrap_or(false);
    let mut hp = HostPool {
        name: name.clone(),
        pool_type,
        path,
        active,
        ..Default::default()
    };
    let mut vols = Vec::new();
    if active {
        // Volumes made behind libvirt's back count too.
        let _ = p.refresh(0);
        if let Ok(info) = p.info() {
            hp.active = info.state == POOL_RUNNING;
            hp.capacity_bytes = i64::try_from(info.capacity).unwrap_or(i64::MAX);
            hp.allocation_bytes = i64::try_from(info.allocation).unwrap_or(i64::MAX);
            hp.available_bytes = i64::try_from(info.available).unwrap_or(i64::MAX);
        }
        for v in p.list_all_volumes(0).unwrap_or_default() {
            let size = v
                .info()
                .map(|i| i64::try_from(i.capacity).unwrap_or(i64::MAX))
                .unwrap_or(0);
            hp.committed_bytes = hp.committed_bytes.saturating_add(size);
            if let (Ok(vn), Ok(path)) = (v.name(), v.path()) {
                vols.push((vn, path, size));
            }
        }
    }
    Some((hp, vols))
}

fn domain_facts(d: &Domain, vols: &[(String, String, String, i64)]) -> Option<HostVm> {
    let x = d.xml_desc(0).ok()?;
    let f = xml::parse_domain(&x).ok()?;
    let disks = f
        .disks
        .iter()
        .map(|s| match s {
            DiskSource::Volume { pool, volume } => {
                let hit = vols.iter().find(|(p, n, _, _)| p == pool && n == volume);
                HostDisk {
                    path: hit.map(|h| h.2.clone()).unwrap_or_default(),
                    pool: Some(pool.clone()),
                    size_bytes: hit.map(|h| h.3).unwrap_or(0),
                }
            }
            DiskSource::Path(path) => {
                let hit = vols.iter().find(|(_, _, p, _)| p == path);
                HostDisk {
                    path: path.clone(),
                    pool: hit.map(|h| h.0.clone()),
                    size_bytes: hit.map(|h| h.3).unwrap_or(0),
                }
            }
        })
        .collect();
    Some(HostVm {
        name: f.name,
        uuid: f.uuid,
        cores: f.cores,
        memory_mib: f.memory_mib,
        running: d.is_active().unwrap_or(false),
        disks,
        system_id: f.system_id,
    })
}

impl VirshHost {
    fn discover_on(&self, c: &Connect) -> HostResult<PodDiscovery> {
        let node = c
            .node_info()
            .map_err(|e| self.err("cannot read the host's resources", &e))?;
        let arch = node.model.clone();
        let (virt_type, uefi, secure_boot) = self.firmware(c, &arch);
        let version = |v: u32| format!("{}.{}.{}", v / 1_000_000, v / 1000 % 1000, v % 1000);
        let hypervisor = format!(
            "libvirt {}, {} {}",
            c.lib_version().map(version).unwrap_or_default(),
            c.driver_type().unwrap_or_default(),
            c.hyp_version().map(version).unwrap_or_default()
        );
        let mut pools = Vec::new();
        let mut vols: Vec<(String, String, String, i64)> = Vec::new();
        for p in c
            .list_all_storage_pools(0)
            .map_err(|e| self.err("cannot list storage pools", &e))?
        {
            if let Some((hp, v)) = pool_facts(&p) {
                vols.extend(
                    v.into_iter()
                        .map(|(n, path, s)| (hp.name.clone(), n, path, s)),
                );
                pools.push(hp);
            }
        }
        pools.sort_by(|a, b| a.name.cmp(&b.name));
        let mut networks: Vec<PodNetwork> = c
            .list_all_networks(0)
            .map_err(|e| self.err("cannot list networks", &e))?
            .iter()
            .filter_map(|n| {
                Some(PodNetwork {
                    name: n.name().ok()?,
                    bridge: n.bridge_name().ok(),
                    active: n.is_active().unwrap_or(false),
                })
            })
            .collect();
        networks.sort_by(|a, b| a.name.cmp(&b.name));
        let mut vms: Vec<HostVm> = c
            .list_all_domains(0)
            .map_err(|e| self.err("cannot list domains", &e))?
            .iter()
            .filter_map(|d| domain_facts(d, &vols))
            .collect();
        vms.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(PodDiscovery {
            architecture: arch,
            cores: i64::from(node.cpus),
            memory_mib: i64::try_from(node.memory / 1024).unwrap_or(i64::MAX),
            hypervisor,
            virt_type,
            uefi,
            secure_boot,
            pools,
            networks,
            vms,
        })
    }

    /// (virt type, UEFI, Secure Boot) of the host. libvirt answers domain capabilities slowly
    /// (seconds: it checks its QEMU probe), so the answer is kept for ten minutes per host.
    fn firmware(&self, c: &Connect, arch: &str) -> (String, bool, bool) {
        type Seen = std::collections::HashMap<String, (std::time::Instant, (String, bool, bool))>;
        static CACHE: std::sync::Mutex<Option<Seen>> = std::sync::Mutex::new(None);
        let key = format!("{}|{arch}", self.uri);
        if let Some((at, v)) = CACHE
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert_with(Default::default)
            .get(&key)
        {
            if at.elapsed() < std::time::Duration::from_secs(600) {
                return v.clone();
            }
        }
        // Composed x86 VMs are q35 (Secure Boot needs its SMM). KVM when the host has it (its
        // domain capabilities are refused otherwise).
        let machine = (arch == "x86_64").then_some("q35");
        let (virt_type, dcaps) =
            match c.domain_capabilities(None, Some(arch), machine, Some("kvm"), 0) {
                Ok(x) => ("kvm", x),
                Err(_) => (
                    "qemu",
                    c.domain_capabilities(None, Some(arch), machine, Some("qemu"), 0)
                        .unwrap_or_default(),
                ),
            };
        let (uefi, sb) = xml::parse_firmware_caps(&dcaps).unwrap_or((false, false));
        let v = (virt_type.to_string(), uefi, sb);
        if !dcaps.is_empty() {
            CACHE
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert_with(Default::default)
                .insert(key, (std::time::Instant::now(), v.clone()));
        }
        v
    }

    /// The domain Kiln composed for `system_id`: by name, checked against its marker; else any
    /// domain carrying the marker (it may have been renamed).
    fn find_kiln_domain(&self, c: &Connect, vm: &VmSpec) -> HostResult<Option<(Domain, String)>> {
        let marker = |d: &Domain| {
            d.xml_desc(XML_INACTIVE)
                .ok()
                .and_then(|x| xml::parse_domain(&x).ok())
                .filter(|f| f.system_id.as_deref() == Some(vm.system_id.as_str()))
                .map(|f| f.name)
        };
        if let Ok(d) = c.lookup_domain_by_name(&vm.name) {
            if let Some(name) = marker(&d) {
                return Ok(Some((d, name)));
            }
        }
        for d in c
            .list_all_domains(0)
            .map_err(|e| self.err("cannot list domains", &e))?
        {
            if let Some(name) = marker(&d) {
                return Ok(Some((d, name)));
            }
        }
        Ok(None)
    }

    fn delete_volumes(&self, c: &Connect, disks: &[DiskSource]) -> Vec<String> {
        let mut problems = Vec::new();
        for s in disks {
            let vol: Result<StorageVol, virt::error::Error> = match s {
                DiskSource::Volume { pool, volume } => c
                    .lookup_storage_pool_by_name(pool)
                    .and_then(|p| p.lookup_storage_vol_by_name(volume)),
                DiskSource::Path(p) => c.lookup_storage_vol_by_path(p),
            };
            match vol.and_then(|v| v.delete(0)) {
                Ok(()) => {}
                Err(e) => problems.push(format!("{s:?}: {}", e.message())),
            }
        }
        problems
    }
}

impl PodHost for VirshHost {
    fn discover(&self) -> HostResult<PodDiscovery> {
        // The connection closes when dropped.
        self.discover_on(&self.open()?)
    }

    fn compose(&self, vm: &VmSpec) -> HostResult<String> {
        let conn = self.open()?;
        let c = &conn;
        if c.lookup_domain_by_name(&vm.name).is_ok() {
            return Err(HostError(format!(
                "the host already has a VM named '{}'; choose another hostname",
                vm.name
            )));
        }
        let mut made: Vec<StorageVol> = Vec::new();
        let undo = |made: &[StorageVol]| {
            for v in made {
                if let Err(e) = v.delete(0) {
                    tracing::warn!(
                        "removing volume {:?} after a failed compose: {}",
                        v.name(),
                        e.message()
                    );
                }
            }
        };
        for d in &vm.disks {
            let pool = match c.lookup_storage_pool_by_name(&d.pool) {
                Ok(p) => p,
                Err(e) => {
                    undo(&made);
                    return Err(self.err(&format!("no storage pool '{}'", d.pool), &e));
                }
            };
            match StorageVol::create_xml(&pool, &xml::volume_xml(d), 0) {
                Ok(v) => made.push(v),
                Err(e) => {
                    undo(&made);
                    return Err(self.err(
                        &format!("cannot create volume '{}' in pool '{}'", d.name, d.pool),
                        &e,
                    ));
                }
            }
        }
        match c.define_domain_xml(&xml::domain_xml(vm)) {
            Ok(_) => Ok(format!(
                "VM {} defined: {} cores, {} MiB, {} disk(s), {} NIC(s), {}{}",
                vm.name,
                vm.cores,
                vm.memory_mib,
                vm.disks.len(),
                vm.nics.len(),
                vm.firmware,
                if vm.secure_boot {
                    " with Secure Boot"
                } else {
                    ""
                }
            )),
            Err(e) => {
                undo(&made);
                Err(self.err(&format!("cannot define VM '{}'", vm.name), &e))
            }
        }
    }

    fn decompose(&self, vm: &VmSpec) -> HostResult<String> {
        let conn = self.open()?;
        let c = &conn;
        let Some((d, name)) = self.find_kiln_domain(c, vm)? else {
            return Ok(format!(
                "the host has no VM of machine {}; nothing to remove",
                vm.system_id
            ));
        };
        let facts = d
            .xml_desc(XML_INACTIVE)
            .ok()
            .and_then(|x| xml::parse_domain(&x).ok())
            .unwrap_or_default();
        if d.is_active().unwrap_or(false) {
            d.destroy()
                .map_err(|e| self.err(&format!("cannot stop VM '{name}'"), &e))?;
        }
        d.undefine_flags(UNDEFINE_ALL)
            .map_err(|e| self.err(&format!("cannot undefine VM '{name}'"), &e))?;
        let problems = self.delete_volumes(c, &facts.disks);
        if problems.is_empty() {
            Ok(format!(
                "VM {name} destroyed with its NVRAM and {} volume(s)",
                facts.disks.len()
            ))
        } else {
            Err(HostError(format!(
                "VM {name} is gone but some volumes could not be deleted: {}",
                problems.join("; ")
            )))
        }
    }
}
