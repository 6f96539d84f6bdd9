//! The volume store (`--iscsi-store DIR`): `golden/<image sha256>.img`, an ext4 filesystem made
//! once per OS image from its squashfs (no partition table, no bootloader: iPXE boots the image's
//! kernel over HTTP and the initramfs mounts the LUN by label), and `vol/<volume id>.img`, one per
//! deployed machine, cloned from it copy-on-write where the filesystem can (`FICLONE`: XFS,
//! btrfs), a sparse full copy otherwise. The method and the bytes a volume really uses (its
//! extents not shared with the golden one) are reported.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The label of every iSCSI root filesystem (`root=LABEL=kiln-iscsi`): not `root`, which local
/// disks deployed by Kiln carry, so a machine that kept an old disk cannot boot the wrong root.
pub const ROOT_LABEL: &str = "kiln-iscsi";

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloneMethod {
    /// Extents shared with the golden volume (`FICLONE`).
    Reflink,
    /// Every used block copied (holes kept).
    Copy,
}

impl CloneMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            CloneMethod::Reflink => "reflink",
            CloneMethod::Copy => "copy",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub path: PathBuf,
    pub method: CloneMethod,
    pub size_bytes: u64,
    pub used_bytes: u64,
}

pub struct Store {
    dir: PathBuf,
}

fn storage(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Storage(format!("{what}: {e}"))
}

/// Volume ids and image hashes become file names: letters, digits and `-` only.
fn check_name(kind: &str, s: &str) -> Result<()> {
    if s.is_empty() || s.len() > 80 || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(Error::Storage(format!("'{s}' is not a valid {kind}")));
    }
    Ok(())
}

impl Store {
    /// Opens (and makes) the store; the directory must be absolute (tgtd wants absolute paths).
    pub fn open(dir: &Path) -> Result<Store> {
        if !dir.is_absolute() {
            return Err(Error::Config(format!(
                "--iscsi-store {} must be an absolute path",
                dir.display()
            )));
        }
        for sub in ["golden", "vol", "tmp"] {
            std::fs::create_dir_all(dir.join(sub))
                .map_err(|e| storage(&format!("cannot make {}", dir.join(sub).display()), e))?;
            // Volumes hold machines' credentials and data: for root (tgtd) only.
            private(&dir.join(sub), 0o700)?;
        }
        Ok(Store {
            dir: dir.to_path_buf(),
        })
    }

    pub fn golden_path(&self, image_sha256: &str) -> Result<PathBuf> {
        check_name("image hash", image_sha256)?;
        Ok(self.dir.join("golden").join(format!("{image_sha256}.img")))
    }

    pub fn volume_path(&self, id: &str) -> Result<PathBuf> {
        check_name("volume id", id)?;
        Ok(self.dir.join("vol").join(format!("{id}.img")))
    }

    /// Bytes free on the store's filesystem.
    pub fn free_bytes(&self) -> Result<u64> {
        let st = nix::sys::statvfs::statvfs(&self.dir)
            .map_err(|e| storage(&format!("statvfs {}", self.dir.display()), e))?;
        Ok(st.blocks_available().saturating_mul(st.fragment_size()))
    }

    /// The golden volume of an OS image, made from its squashfs if it is not there yet:
    /// unpacked, given an fstab naming the root by label and cloud-init settings for a root on
    /// the network (the boot NIC stays as the initramfs set it up), then `mkfs.ext4 -d`.
    pub async fn ensure_golden(&self, squashfs: &Path, image_sha256: &str) -> Result<PathBuf> {
        let golden = self.golden_path(image_sha256)?;
        if golden.exists() {
            return Ok(golden);
        }
        let work = tempfile::Builder::new()
            .prefix("golden-")
            .tempdir_in(self.dir.join("tmp"))
            .map_err(|e| storage("cannot make a work directory", e))?;
        let tree = work.path().join("tree");
        run(
            "unsquashfs",
            &[
                "-f".as_ref(),
                "-n".as_ref(),
                "-d".as_ref(),
                tree.as_os_str(),
                squashfs.as_os_str(),
            ],
        )
        .await?;
        std::fs::write(
            tree.join("etc/fstab"),
            format!("# Root on iSCSI (Kiln)\nLABEL={ROOT_LABEL} / ext4 defaults,_netdev 0 1\n"),
        )
        .map_err(|e| storage("cannot write the golden fstab", e))?;
        let cfg = tree.join("etc/cloud/cloud.cfg.d");
        std::fs::create_dir_all(&cfg).map_err(|e| storage("cannot make cloud.cfg.d", e))?;
        // The root's NIC must not be reconfigured (a second lease, or ifdown at shutdown, takes
        // the root away): cloud-init leaves the network as the initramfs made it.
        std::fs::write(
            cfg.join("91_kiln_iscsi.cfg"),
            "# Root on iSCSI (Kiln): the boot NIC stays as the initramfs configured it.\nnetwork: {config: disabled}\n",
        )
        .map_err(|e| storage("cannot write the cloud-init settings", e))?;
        // The seed is on the network (no local seed for ds-identify to find): let cloud-init run.
        std::fs::write(tree.join("etc/cloud/ds-identify.cfg"), "policy: enabled\n")
            .map_err(|e| storage("cannot write the cloud-init settings", e))?;
        let used = dir_bytes(&tree)?;
        // Room for ext4's metadata and a first boot's writes; clones grow on request.
        let size = round_mib(used + used / 4 + (512 << 20));
        let tmp = work.path().join("golden.img");
        File::create(&tmp)
            .and_then(|f| f.set_len(size))
            .map_err(|e| storage("cannot make the golden image file", e))?;
        run(
            "mkfs.ext4",
            &[
                "-q".as_ref(),
                "-F".as_ref(),
                "-L".as_ref(),
                ROOT_LABEL.as_ref(),
                "-d".as_ref(),
                tree.as_os_str(),
                tmp.as_os_str(),
            ],
        )
        .await?;
        std::fs::rename(&tmp, &golden).map_err(|e| storage("cannot store the golden image", e))?;
        Ok(golden)
    }

    /// A machine's volume cloned from `golden`, grown to `size` (if larger) with `resize2fs`.
    pub async fn clone_volume(&self, golden: &Path, id: &str, size: Option<u64>) -> Result<Volume> {
        let dst = self.volume_path(id)?;
        if dst.exists() {
            return Err(Error::Storage(format!(
                "volume {id} exists already ({})",
                dst.display()
            )));
        }
        let tmp = dst.with_extension("img.part");
        let method = clone_file(golden, &tmp).await?;
        private(&tmp, 0o600)?;
        let golden_size = std::fs::metadata(golden)
            .map_err(|e| storage("cannot read the golden image", e))?
            .len();
        if let Some(want) = size.filter(|s| *s > golden_size) {
            File::options()
                .write(true)
                .open(&tmp)
                .and_then(|f| f.set_len(round_mib(want)))
                .map_err(|e| storage("cannot grow the volume", e))?;
            run("e2fsck", &["-f".as_ref(), "-y".as_ref(), tmp.as_os_str()]).await?;
            run("resize2fs", &[tmp.as_os_str()]).await?;
        }
        std::fs::rename(&tmp, &dst).map_err(|e| storage("cannot store the volume", e))?;
        self.volume(id, method).await
    }

    /// A volume's size and the bytes it uses that are its own.
    pub async fn volume(&self, id: &str, method: CloneMethod) -> Result<Volume> {
        let path = self.volume_path(id)?;
        let size_bytes = std::fs::metadata(&path)
            .map_err(|e| storage(&format!("volume {id}"), e))?
            .len();
        let used_bytes = own_bytes(&path).await?;
        Ok(Volume {
            path,
            method,
            size_bytes,
            used_bytes,
        })
    }

    /// How clones are made here: a reflink of a small file in the store's work directory.
    pub async fn probe_clone_method(&self) -> Result<CloneMethod> {
        let work = tempfile::Builder::new()
            .prefix("probe-")
            .tempdir_in(self.dir.join("tmp"))
            .map_err(|e| storage("cannot make a work directory", e))?;
        let src = work.path().join("a");
        std::fs::write(&src, [0x6bu8; 8192]).map_err(|e| storage("cannot write a probe", e))?;
        clone_file(&src, &work.path().join("b")).await
    }

    /// Removes what a failed clone of `id` left (never the volume itself).
    pub fn discard_partial(&self, id: &str) {
        if let Ok(p) = self.volume_path(id) {
            let _ = std::fs::remove_file(p.with_extension("img.part"));
        }
    }

    /// Removes a volume; false if there was none.
    pub fn delete(&self, id: &str) -> Result<bool> {
        match std::fs::remove_file(self.volume_path(id)?) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(storage(&format!("cannot delete volume {id}"), e)),
        }
    }
}

/// Writes `contents` as `dir/name` (mode 0600, root) into the ext4 filesystem in `image`, which
/// must not be in use, with `debugfs` (no mount needed). `dir` must exist in it.
pub async fn write_into(image: &Path, dir: &str, name: &str, contents: &[u8]) -> Result<()> {
    if !dir.starts_with('/')
        || name.contains('/')
        || [dir, name]
            .iter()
            .any(|s| s.chars().any(|c| c.is_whitespace() || c == '"'))
    {
        return Err(Error::Internal(format!("bad path {dir}/{name}")));
    }
    let work = tempfile::tempdir().map_err(|e| storage("cannot make a work directory", e))?;
    let src = work.path().join("src");
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&src)
            .map_err(|e| storage("cannot write a work file", e))?;
        f.write_all(contents)
            .map_err(|e| storage("cannot write a work file", e))?;
    }
    let cmds = work.path().join("cmds");
    std::fs::write(
        &cmds,
        format!(
            "cd {dir}\nrm {name}\nwrite {} {name}\nsif {name} mode 0100600\nsif {name} uid 0\nsif {name} gid 0\n",
            src.display()
        ),
    )
    .map_err(|e| storage("cannot write a work file", e))?;
    run(
        "debugfs",
        &[
            "-w".as_ref(),
            "-f".as_ref(),
            cmds.as_os_str(),
            image.as_os_str(),
        ],
    )
    .await?;
    // debugfs exits 0 even when a command fails: read the file back.
    let out = tokio::process::Command::new("debugfs")
        .arg("-R")
        .arg(format!("cat {dir}/{name}"))
        .arg(image)
        .stderr(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| storage("debugfs", e))?;
    if out.stdout != contents {
        return Err(Error::Storage(format!(
            "could not write {dir}/{name} into {}",
            image.display()
        )));
    }
    Ok(())
}

fn private(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| storage(&format!("cannot restrict {}", path.display()), e))
}

fn round_mib(n: u64) -> u64 {
    n.div_ceil(1 << 20) * (1 << 20)
}

/// Longest a store command (unsquashfs, mkfs, cp, e2fsck, resize2fs, debugfs) may take: a stuck
/// one is killed and the volume fails in words, so the volume service goes on.
const COMMAND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1200);

async fn run(cmd: &str, args: &[&std::ffi::OsStr]) -> Result<()> {
    let child = tokio::process::Command::new(cmd)
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(COMMAND_TIMEOUT, child)
        .await
        .map_err(|_| {
            Error::Storage(format!(
                "{cmd} did not finish within {} s (killed)",
                COMMAND_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::Storage(format!(
                    "{cmd} is not installed (apt-get install e2fsprogs squashfs-tools)"
                ))
            } else {
                storage(cmd, e)
            }
        })?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = err.lines().rev().take(5).collect();
    Err(Error::Storage(format!(
        "{cmd} failed ({}): {}",
        out.status,
        tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
    )))
}

/// Bytes of the files under `dir` (apparent sizes), without following links.
fn dir_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).map_err(|e| storage(&d.display().to_string(), e))? {
            let e = e.map_err(|e| storage(&d.display().to_string(), e))?;
            let m = e
                .metadata()
                .map_err(|e| storage(&d.display().to_string(), e))?;
            if m.is_dir() {
                stack.push(e.path());
            } else {
                total += m.len().max(4096);
            }
        }
    }
    Ok(total)
}

/// `dst` as a reflink of `src` where the filesystem can (`cp --reflink=always`: FICLONE), else a
/// copy of `src`'s data regions, holes kept (`cp --sparse=always`).
async fn clone_file(src: &Path, dst: &Path) -> Result<CloneMethod> {
    let reflink = tokio::process::Command::new("cp")
        .args(["--reflink=always", "--"])
        .arg(src)
        .arg(dst)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await
        .map_err(|e| storage("cp", e))?;
    if reflink.success() {
        return Ok(CloneMethod::Reflink);
    }
    let _ = std::fs::remove_file(dst);
    run(
        "cp",
        &[
            "--reflink=never".as_ref(),
            "--sparse=always".as_ref(),
            "--".as_ref(),
            src.as_os_str(),
            dst.as_os_str(),
        ],
    )
    .await?;
    Ok(CloneMethod::Copy)
}

/// Bytes of `path`'s extents not shared with another file, from `filefrag -v` (FIEMAP): a
/// reflinked clone starts near zero and grows as the machine writes.
async fn own_bytes(path: &Path) -> Result<u64> {
    let out = tokio::process::Command::new("filefrag")
        .args(["-s", "-v", "-b1"])
        .arg(path)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| storage("filefrag (e2fsprogs)", e))?;
    if !out.status.success() {
        return Err(Error::Storage(format!(
            "filefrag {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(parse_filefrag(&String::from_utf8_lossy(&out.stdout)))
}

/// Sums the lengths of the extents `filefrag -v -b1` lists without the `shared` flag. Its table:
/// `ext: logical_offset: physical_offset: length: expected: flags:`, offsets as `a.. b:`.
pub fn parse_filefrag(out: &str) -> u64 {
    out.lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split(':').map(str::trim).collect();
            // "0", "0.. 4095", "1234.. 5329", "4096", ["expected",] "flags"
            cols.first()?.parse::<u64>().ok()?;
            let len: u64 = cols.get(3)?.parse().ok()?;
            let flags = cols.last().copied().unwrap_or("");
            (!flags.split(',').any(|f| f.trim() == "shared")).then_some(len)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::parse_filefrag;

    #[test]
    fn filefrag_counts_only_unshared_extents() {
        let out = "Filesystem type is: 58465342
File size of /s/vol/v1.img is 1073741824 (1073741824 blocks of 1 bytes)
 ext:     logical_offset:        physical_offset: length:   expected: flags:
   0:        0..   65535:    1048576..   1114111:  65536:             shared
   1:    65536..   69631:    2000000..   2004095:   4096:    1114112:
   2:   131072..  135167:    1200000..   1204095:   4096:             shared,last,eof
/s/vol/v1.img: 3 extents found
";
        assert_eq!(parse_filefrag(out), 4096);
        assert_eq!(
            parse_filefrag("File size of x is 0\nx: 0 extents found\n"),
            0
        );
    }
}
