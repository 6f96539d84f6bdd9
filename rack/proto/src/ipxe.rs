//! Per-machine iPXE scripts: what a machine boots, decided from its status, rendered from tera
//! templates (`templates/*.ipxe`, embedded). Pure: the caller passes the machine, the image and
//! the URLs.

use region_api_types::{MachineStatus, SnapshotFile};
use serde::Serialize;

use crate::netconf::Host;
use crate::{parse_mac, Mac};

/// What a request for an iPXE script names in its query string: `mac=` and `arch=`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScriptQuery {
    pub mac: Option<Mac>,
    /// The architecture DHCP saw (option 93), for enlisting an unknown machine.
    pub arch: Option<String>,
}

/// Whether `s` can be an architecture name: 1 to 32 letters, digits, `_`, `-`, `/` or `.`.
fn arch_ok(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'/' | b'.'))
}

impl ScriptQuery {
    /// Parses a URL query string (`mac=52%3A54%3A00%3A12%3A34%3A56&arch=x86_64`). A value that is
    /// not a MAC, or not an architecture name, counts as absent; unknown keys are ignored; of a
    /// repeated key the first counts. Never fails: the script falls back to the caller's lease.
    pub fn parse(query: &str) -> ScriptQuery {
        let mut q = ScriptQuery::default();
        let (mut seen_mac, mut seen_arch) = (false, false);
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            match k.as_ref() {
                "mac" if !seen_mac => {
                    seen_mac = true;
                    q.mac = parse_mac(&v);
                }
                "arch" if !seen_arch => {
                    seen_arch = true;
                    q.arch = arch_ok(&v).then(|| v.into_owned());
                }
                _ => {}
            }
        }
        q
    }
}

/// The ephemeral environment's files for one architecture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ephemeral {
    /// `debian/bookworm`.
    pub name: String,
    pub kernel: SnapshotFile,
    pub initrd: SnapshotFile,
    pub squashfs: Option<SnapshotFile>,
    /// What the initramfs hands over to: Kiln's runner (None), or the OS image's init for a
    /// memory deployment.
    pub init: Option<String>,
}

/// A memory deployment's boot: Kiln's kernel and initramfs (they fetch a squashfs root over HTTP
/// and put a tmpfs overlay on it), with the OS image as the root and its own init.
pub fn in_memory(mut e: Ephemeral, root: SnapshotFile) -> Ephemeral {
    e.name = format!("{}/{} in memory", root.os, root.release);
    e.squashfs = Some(root);
    e.init = Some("/sbin/init".into());
    e
}

/// The newest ephemeral image for `arch` among the snapshot's files: a resource of kind
/// `ephemeral` with a kernel (`vmlinuz*`/`linux*`/`kernel*`) and an initrd (`initrd*`), and
/// usually a root filesystem (`*squashfs*`).
pub fn find_ephemeral(files: &[SnapshotFile], arch: &str) -> Option<Ephemeral> {
    let mut ids: Vec<&str> = files
        .iter()
        .filter(|f| f.kind == "ephemeral" && f.arch == arch)
        .map(|f| f.resource_id.as_str())
        .collect();
    ids.dedup();
    ids.iter().rev().find_map(|id| {
        let of = |pred: &dyn Fn(&str) -> bool| {
            files
                .iter()
                .find(|f| f.resource_id == *id && pred(&f.filename))
                .cloned()
        };
        let kernel =
            of(&|n| n.starts_with("vmlinuz") || n.starts_with("linux") || n.starts_with("kernel"))?;
        let initrd = of(&|n| n.starts_with("initrd"))?;
        let squashfs = of(&|n| n.contains("squashfs"));
        Some(Ephemeral {
            name: format!("{}/{}", kernel.os, kernel.release),
            kernel,
            initrd,
            squashfs,
            init: None,
        })
    })
}

/// Root on iSCSI: the machine's volume (with its CHAP credentials, so the script is for its
/// lease holder only) and the OS image's own kernel and initramfs, which mount the LUN that
/// iPXE's `sanhook` described in the iBFT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IscsiBoot {
    /// `debian/bookworm`.
    pub name: String,
    pub portal: crate::iscsi::Portal,
    pub target_iqn: String,
    pub initiator_iqn: String,
    pub chap_user: String,
    pub chap_secret: String,
    pub kernel: SnapshotFile,
    pub initrd: SnapshotFile,
    /// More kernel arguments (the NoCloud seed, for one).
    pub cmdline: Vec<String>,
}

/// What a machine should boot now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Boot {
    Ephemeral(Box<Ephemeral>),
    Iscsi(Box<IscsiBoot>),
    LocalDisk,
    /// Nothing to boot: say why, ask again later.
    Wait(String),
}

/// The boot decision for a machine (None: a MAC the region does not know).
pub fn decide(host: Option<&Host>, mac: &str, files: &[SnapshotFile]) -> Boot {
    let Some(h) = host else {
        return Boot::Wait(format!(
            "this machine ({mac}) is not known to Kiln. Its PXE request was reported to the region. Add it with: kiln machines create --mac {mac}"
        ));
    };
    use MachineStatus as S;
    match h.status {
        // Root on iSCSI: see `decide_iscsi` (the rack's volume list has the target).
        S::Deploying | S::Deployed if h.iscsi_boot => Boot::Wait(format!(
            "{} ({}) boots from an iSCSI volume this rack does not serve (yet)",
            h.hostname, h.system_id
        )),
        // The installer wrote the OS: the machine reboots into it while still Deploying (its
        // cloud-init's signal makes it Deployed).
        S::Deploying if h.local_boot => Boot::LocalDisk,
        // In memory: the same kernel and initramfs as the ephemeral environment (the region's
        // answer names the OS root; see `in_memory`).
        S::Deployed if h.memory_boot => match find_ephemeral(files, &h.architecture) {
            Some(e) => Boot::Ephemeral(Box::new(e)),
            None => Boot::Wait(format!(
                "{} ({}) is deployed in memory but the region has no ephemeral image for {}",
                h.hostname, h.system_id, h.architecture
            )),
        },
        S::New | S::Commissioning | S::Testing | S::Deploying | S::DiskErasing | S::EnteringRescueMode | S::RescueMode => {
            match find_ephemeral(files, &h.architecture) {
                Some(e) => Boot::Ephemeral(Box::new(e)),
                None => Boot::Wait(format!(
                    "{} ({}) is {} but the region has no ephemeral image for {} - import one with: kiln images upload --kind ephemeral ...",
                    h.hostname,
                    h.system_id,
                    h.status.label(),
                    h.architecture
                )),
            }
        }
        S::Deployed => Boot::LocalDisk,
        other => Boot::Wait(format!(
            "{} ({}) is {}: there is nothing for it to boot until an operator acts on it (commission, deploy, rescue)",
            h.hostname,
            h.system_id,
            other.label()
        )),
    }
}

/// The boot of a machine whose root is on iSCSI, given what the rack serves for it; in any
/// other status (rescue, erasing, released) what [`decide`] says.
pub fn decide_iscsi(
    h: &Host,
    mac: &str,
    files: &[SnapshotFile],
    served: Option<IscsiBoot>,
) -> Boot {
    match (h.status, served) {
        (MachineStatus::Deploying | MachineStatus::Deployed, Some(i)) if h.iscsi_boot => {
            Boot::Iscsi(Box::new(i))
        }
        (_, _) => decide(Some(h), mac, files),
    }
}

/// Where the machine's boot files and script are served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Urls {
    /// `http://10.20.0.2:5248`
    pub base: String,
    /// The machine's MAC (the script URL asks again with it).
    pub mac: String,
}

impl Urls {
    pub fn script(&self) -> String {
        format!("{}/boot/ipxe?mac={}", self.base, self.mac)
    }

    pub fn file(&self, f: &SnapshotFile) -> String {
        format!("{}/images/{}/{}", self.base, f.sha256, f.filename)
    }
}

#[derive(Serialize)]
struct Vars<'a> {
    hostname: &'a str,
    system_id: &'a str,
    status: &'a str,
    image: &'a str,
    kernel_url: String,
    initrd_url: String,
    cmdline: String,
    script_url: String,
    grub_local_url: String,
    message: &'a str,
    retry_secs: u32,
    portal: String,
    san_uri: String,
    target_iqn: &'a str,
    initiator_iqn: &'a str,
    chap_user: &'a str,
    chap_secret: &'a str,
    report_url: String,
}

const EPHEMERAL: &str = include_str!("../templates/ephemeral.ipxe");
const LOCAL: &str = include_str!("../templates/local.ipxe");
const WAIT: &str = include_str!("../templates/wait.ipxe");
const ISCSI: &str = include_str!("../templates/iscsi.ipxe");

/// Renders the script for a decision. `claim`: this boot's one-time claim code (ephemeral boots),
/// which the initramfs trades for its metadata credential: the credential itself never goes on
/// the kernel command line (the console shows it).
pub fn render(
    boot: &Boot,
    host: Option<&Host>,
    urls: &Urls,
    claim: Option<&str>,
) -> Result<String, String> {
    let (hostname, system_id, status) = match host {
        Some(h) => (h.hostname.as_str(), h.system_id.as_str(), h.status.label()),
        None => ("", "", ""),
    };
    let mut v = Vars {
        hostname,
        system_id,
        status,
        image: "",
        kernel_url: String::new(),
        initrd_url: String::new(),
        cmdline: String::new(),
        script_url: urls.script(),
        grub_local_url: format!("{}/boot/grub-local.efi?mac={}", urls.base, urls.mac),
        message: "",
        retry_secs: 30,
        portal: String::new(),
        san_uri: String::new(),
        target_iqn: "",
        initiator_iqn: "",
        chap_user: "",
        chap_secret: "",
        report_url: String::new(),
    };
    let template = match boot {
        Boot::Ephemeral(e) => {
            v.image = &e.name;
            v.kernel_url = urls.file(&e.kernel);
            v.initrd_url = urls.file(&e.initrd);
            let mut cmd = vec![
                "console=tty0".to_string(),
                "console=ttyS0,115200".to_string(),
                format!(
                    "BOOTIF=01-{}",
                    urls.mac.replace(':', "-").to_ascii_lowercase()
                ),
                format!("kiln.url={}", urls.base),
                format!("kiln.system_id={system_id}"),
            ];
            if let Some(c) =
                claim.filter(|c| c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
            {
                cmd.push(format!("kiln.claim={c}"));
            }
            if let Some(sq) = &e.squashfs {
                cmd.push(format!("kiln.root={}", urls.file(sq)));
            }
            if let Some(i) = &e.init {
                cmd.push(format!("kiln.init={i}"));
            }
            v.cmdline = cmd.join(" ");
            EPHEMERAL
        }
        Boot::Iscsi(i) => {
            // Everything here lands in the script: refuse what iPXE could misread.
            let plain = |s: &str| {
                !s.is_empty()
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b".:-_".contains(&b))
            };
            if !crate::iscsi::valid_iqn(&i.target_iqn)
                || !crate::iscsi::valid_iqn(&i.initiator_iqn)
                || !plain(&i.chap_user)
                || !crate::iscsi::valid_chap_secret(&i.chap_secret)
            {
                return Err(format!(
                    "the iSCSI boot of {system_id} has an unusable name or CHAP secret"
                ));
            }
            v.image = &i.name;
            v.kernel_url = urls.file(&i.kernel);
            v.initrd_url = urls.file(&i.initrd);
            v.portal = i.portal.to_string();
            v.san_uri = crate::iscsi::san_uri(&i.portal, crate::iscsi::LUN, &i.target_iqn);
            v.target_iqn = &i.target_iqn;
            v.initiator_iqn = &i.initiator_iqn;
            v.chap_user = &i.chap_user;
            v.chap_secret = &i.chap_secret;
            v.report_url = format!(
                "{}/boot/iscsi-failed?mac={}&error=${{errno}}",
                urls.base, urls.mac
            );
            // No `ip=`: the image's initramfs configures the iBFT NIC by DHCP (ip=off breaks it);
            // `iscsi_auto` makes it log in from the iBFT on network boots only.
            let mut cmd: Vec<String> = [
                "root=LABEL=kiln-iscsi",
                "ro",
                "iscsi_auto",
                // cloud-init must not configure the root's NIC (a second lease, or ifdown at
                // shutdown, takes the root away); the kernel command line outranks the image.
                "network-config=disabled",
                "console=tty0",
                "console=ttyS0,115200",
            ]
            .map(String::from)
            .to_vec();
            cmd.extend(i.cmdline.iter().cloned());
            v.cmdline = cmd.join(" ");
            ISCSI
        }
        Boot::LocalDisk => LOCAL,
        Boot::Wait(m) => {
            v.message = m;
            WAIT
        }
    };
    let ctx = tera::Context::from_serialize(&v).map_err(|e| e.to_string())?;
    tera::Tera::one_off(template, &ctx, false).map_err(|e| e.to_string())
}

/// The placeholder in `grub-local.efi`'s embedded config (`images/build.sh`) that the rack
/// overwrites with the machine's ESP UUID: 36 bytes, a GPT/ext4 UUID's length.
pub const GRUB_ESP_PLACEHOLDER: &[u8; 36] = b"KILNESPUUIDPLACEHOLDER00000000000000";

/// `grub-local.efi` for one machine: the placeholder replaced by its ESP's UUID (padded with
/// spaces, which grub's parser skips), so grub chainloads that ESP's `\EFI\BOOT\BOOTX64.EFI`
/// and not the first one it finds. Without a usable UUID the placeholder stays, matches no
/// filesystem, and the embedded config falls back to searching for the file. The binary is not
/// compressed and not signed, so the bytes can be replaced in place.
pub fn grub_local_for(binary: &[u8], esp_uuid: Option<&str>) -> Vec<u8> {
    let mut out = binary.to_vec();
    let Some(u) = esp_uuid.filter(|u| {
        !u.is_empty()
            && u.len() <= GRUB_ESP_PLACEHOLDER.len()
            && u.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
    }) else {
        return out;
    };
    let mut with = [b' '; 36];
    with[..u.len()].copy_from_slice(u.as_bytes());
    let n = GRUB_ESP_PLACEHOLDER.len();
    let mut i = 0;
    while i + n <= out.len() {
        if &out[i..i + n] == GRUB_ESP_PLACEHOLDER {
            out[i..i + n].copy_from_slice(&with);
            i += n;
        } else {
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_queries_parse_or_count_as_absent() {
        let q = ScriptQuery::parse("mac=52%3A54%3A00%3A12%3A34%3A56&arch=x86_64&x=1");
        assert_eq!(q.mac, Some([0x52, 0x54, 0, 0x12, 0x34, 0x56]));
        assert_eq!(q.arch.as_deref(), Some("x86_64"));
        let q = ScriptQuery::parse("mac=52:54:00:12:34&arch=%0Aecho%20hi&mac=52:54:00:12:34:56");
        assert_eq!(
            q,
            ScriptQuery::default(),
            "a bad first value is not replaced by a second"
        );
        assert_eq!(ScriptQuery::parse("%ff%fe=&&=&mac"), ScriptQuery::default());
    }

    fn file(id: &str, name: &str, kind: &str) -> SnapshotFile {
        SnapshotFile {
            resource_id: id.into(),
            os: "debian".into(),
            release: "bookworm".into(),
            arch: "amd64/generic".into(),
            kind: kind.into(),
            filename: name.into(),
            sha256: format!("{:0>64}", name.len()),
            size: 1,
        }
    }

    fn host(status: MachineStatus) -> Host {
        Host {
            system_id: "abc123".into(),
            hostname: "node1".into(),
            status,
            architecture: "amd64/generic".into(),
            fixed: None,
            local_boot: false,
            esp_uuid: None,
            memory_boot: false,
            iscsi_boot: false,
        }
    }

    fn urls() -> Urls {
        Urls {
            base: "http://10.20.0.2:5248".into(),
            mac: "52:54:00:00:00:01".into(),
        }
    }

    fn files() -> Vec<SnapshotFile> {
        vec![
            file("r1", "vmlinuz", "ephemeral"),
            file("r1", "initrd.img", "ephemeral"),
            file("r1", "root.squashfs", "ephemeral"),
            file("b1", "undionly.kpxe", "bootloader"),
        ]
    }

    fn script(status: Option<MachineStatus>, files: &[SnapshotFile]) -> String {
        let h = status.map(host);
        let b = decide(h.as_ref(), "52:54:00:00:00:01", files);
        render(&b, h.as_ref(), &urls(), Some("claim_TESTCLAIM")).unwrap()
    }

    #[test]
    fn golden_commissioning_boots_the_ephemeral_environment() {
        insta::assert_snapshot!(script(Some(MachineStatus::Commissioning), &files()));
    }

    #[test]
    fn golden_deployed_boots_the_local_disk() {
        insta::assert_snapshot!(script(Some(MachineStatus::Deployed), &files()));
    }

    #[test]
    fn deploying_machine_whose_os_is_installed_boots_its_disk() {
        let mut h = host(MachineStatus::Deploying);
        assert!(matches!(
            decide(Some(&h), "m", &files()),
            Boot::Ephemeral(_)
        ));
        h.local_boot = true;
        assert_eq!(decide(Some(&h), "m", &files()), Boot::LocalDisk);
    }

    #[test]
    fn memory_deployment_boots_the_os_root_with_its_init() {
        let mut h = host(MachineStatus::Deployed);
        assert_eq!(decide(Some(&h), "m", &files()), Boot::LocalDisk);
        h.memory_boot = true;
        let Boot::Ephemeral(e) = decide(Some(&h), "m", &files()) else {
            panic!("not an ephemeral boot")
        };
        let mut root = file("os1", "root.squashfs", "os");
        root.sha256 = "f".repeat(64);
        let b = Boot::Ephemeral(Box::new(in_memory(*e, root)));
        let s = render(&b, Some(&h), &urls(), Some("claim_T")).unwrap();
        assert!(
            s.contains(&format!(
                "kiln.root=http://10.20.0.2:5248/images/{}/root.squashfs",
                "f".repeat(64)
            )),
            "{s}"
        );
        assert!(
            s.contains("kiln.init=/sbin/init") && s.contains("kiln.claim=claim_T"),
            "{s}"
        );
    }

    #[test]
    fn grub_local_gets_the_machines_esp() {
        let bin = [
            b"MZ..".as_slice(),
            b"--fs-uuid --set=esp ",
            GRUB_ESP_PLACEHOLDER,
            b"\nif",
        ]
        .concat();
        let out = grub_local_for(&bin, Some("ABCD-1234"));
        assert_eq!(out.len(), bin.len());
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.contains("--set=esp ABCD-1234                           \nif"),
            "{text}"
        );
        // Not a UUID: left alone (the config falls back to searching for the file).
        assert_eq!(grub_local_for(&bin, Some("x; reboot")), bin);
        assert_eq!(grub_local_for(&bin, None), bin);
    }

    fn iscsi_boot() -> IscsiBoot {
        IscsiBoot {
            name: "debian/bookworm".into(),
            portal: crate::iscsi::Portal::parse("10.20.0.2").unwrap(),
            target_iqn: crate::iscsi::target_iqn("v1"),
            initiator_iqn: crate::iscsi::initiator_iqn("abc123"),
            chap_user: crate::iscsi::chap_user("v1"),
            chap_secret: "TESTSECRET0001".into(),
            kernel: file("os1", "vmlinuz", "os"),
            initrd: file("os1", "initrd.img", "os"),
            cmdline: vec![],
        }
    }

    #[test]
    fn golden_iscsi_root_hooks_the_san_disk_and_boots_the_images_kernel() {
        let h = host(MachineStatus::Deployed);
        let b = Boot::Iscsi(Box::new(iscsi_boot()));
        insta::assert_snapshot!(render(&b, Some(&h), &urls(), None).unwrap());
    }

    #[test]
    fn iscsi_machines_boot_the_volume_their_rack_serves_and_nothing_else() {
        let mut h = host(MachineStatus::Deploying);
        h.iscsi_boot = true;
        // Never the ephemeral environment (no installer runs for a diskless deployment).
        assert!(matches!(decide(Some(&h), "m", &files()), Boot::Wait(_)));
        assert!(
            matches!(decide_iscsi(&h, "m", &files(), None), Boot::Wait(m) if m.contains("iSCSI volume"))
        );
        assert_eq!(
            decide_iscsi(&h, "m", &files(), Some(iscsi_boot())),
            Boot::Iscsi(Box::new(iscsi_boot()))
        );
        h.status = MachineStatus::Deployed;
        assert!(matches!(
            decide_iscsi(&h, "m", &files(), Some(iscsi_boot())),
            Boot::Iscsi(_)
        ));
        // Released (Ready): the volume's script is no longer given, whatever the rack holds.
        h.status = MachineStatus::Ready;
        assert!(matches!(
            decide_iscsi(&h, "m", &files(), Some(iscsi_boot())),
            Boot::Wait(_)
        ));
        // Rescue boots the ephemeral environment, whatever the rack serves.
        h.status = MachineStatus::RescueMode;
        assert!(matches!(
            decide_iscsi(&h, "m", &files(), Some(iscsi_boot())),
            Boot::Ephemeral(_)
        ));
        h.status = MachineStatus::Deployed;
        h.iscsi_boot = false;
        assert_eq!(
            decide_iscsi(&h, "m", &files(), Some(iscsi_boot())),
            Boot::LocalDisk
        );
    }

    #[test]
    fn iscsi_script_refuses_what_ipxe_could_misread() {
        let h = host(MachineStatus::Deployed);
        let mut i = iscsi_boot();
        i.chap_secret = "x\nchain http://evil".into();
        assert!(render(&Boot::Iscsi(Box::new(i)), Some(&h), &urls(), None).is_err());
        let mut i = iscsi_boot();
        i.target_iqn = "iqn.2026-12.org.kiln:vol-1 || shell".into();
        assert!(render(&Boot::Iscsi(Box::new(i)), Some(&h), &urls(), None).is_err());
    }

    #[test]
    fn golden_ready_waits_and_says_why() {
        insta::assert_snapshot!(script(Some(MachineStatus::Ready), &files()));
    }

    #[test]
    fn golden_unknown_machine() {
        insta::assert_snapshot!(script(None, &files()));
    }

    #[test]
    fn golden_no_image() {
        insta::assert_snapshot!(script(Some(MachineStatus::New), &files()[3..]));
    }

    #[test]
    fn every_status_renders_a_script() {
        for st in MachineStatus::ALL {
            let s = script(Some(st), &files());
            assert!(s.starts_with("#!ipxe\n"), "{st}: {s}");
            assert!(s.contains("chain --replace --autofree http://10.20.0.2:5248/boot/ipxe?mac=52:54:00:00:00:01") || s.contains("boot ||"), "{st}");
        }
    }
}
