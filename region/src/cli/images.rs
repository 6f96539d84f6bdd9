//! `kiln images ...`: boot resources, building and importing bundles (through the API).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Subcommand;
use region_api_types as api;

use super::client::{seg, Client, ClientArgs};
use super::commands::client;
use super::output::{self, bytes};

#[derive(Debug, Subcommand)]
pub enum ImagesCommand {
    /// List boot resources and their files.
    List,
    /// Declare a boot resource and upload files to it (sha256 verified by the region).
    Upload {
        #[arg(long)]
        os: String,
        #[arg(long)]
        release: String,
        #[arg(long, default_value = "amd64/generic")]
        arch: String,
        /// ephemeral, os (a deployable image: *.squashfs root, *.raw or *.raw.zst disk), bootloader
        #[arg(long, default_value = "ephemeral")]
        kind: String,
        /// Files to upload (stored under their base name).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Delete a boot resource.
    Delete { id: String },
    /// Build the boot-resource bundle (kernel, initramfs, ephemeral squashfs, the deployable Debian image, bootloaders)
    /// from Debian packages into DIR, with manifest.json. Needs root. Cached: same inputs, no rebuild.
    Build {
        #[arg(long)]
        output: PathBuf,
        /// Where builds are cached (default /var/cache/kiln/images).
        #[arg(long, env = "KILN_IMAGE_CACHE")]
        cache_dir: Option<PathBuf>,
        /// Debian release of the ephemeral environment.
        #[arg(long, default_value = "bookworm")]
        release: String,
        /// Debian mirror (default: the one apt on this host uses).
        #[arg(long)]
        mirror: Option<String>,
        /// Build even if a cached bundle with the same inputs exists.
        #[arg(long)]
        no_cache: bool,
    },
    /// Upload a bundle made by `kiln images build` (its manifest.json) to the region; files the
    /// region has already are skipped. Racks then sync them.
    Import { dir: PathBuf },
}

/// A bundle's manifest.json.
#[derive(Debug, serde::Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub resources: Vec<ManifestResource>,
}

#[derive(Debug, serde::Deserialize)]
pub struct ManifestResource {
    pub os: String,
    pub release: String,
    pub arch: String,
    pub kind: String,
    pub files: Vec<ManifestFile>,
}

#[derive(Debug, serde::Deserialize)]
pub struct ManifestFile {
    pub name: String,
    pub path: String,
    pub sha256: String,
    pub size: i64,
}

/// The image build tooling (`images/`), embedded so `kiln images build` works from any directory.
const IMAGE_FILES: &[(&str, &str, u32)] = &[
    ("build.sh", include_str!("../../../images/build.sh"), 0o755),
    (
        "packages.txt",
        include_str!("../../../images/packages.txt"),
        0o644,
    ),
    (
        "initramfs/init",
        include_str!("../../../images/initramfs/init"),
        0o755,
    ),
    (
        "initramfs/udhcpc.script",
        include_str!("../../../images/initramfs/udhcpc.script"),
        0o755,
    ),
    (
        "initramfs/modules",
        include_str!("../../../images/initramfs/modules"),
        0o644,
    ),
    (
        "ephemeral/kiln-init",
        include_str!("../../../images/ephemeral/kiln-init"),
        0o755,
    ),
    (
        "ephemeral/kiln-commission",
        include_str!("../../../images/ephemeral/kiln-commission"),
        0o755,
    ),
    (
        "ephemeral/kiln-deploy",
        include_str!("../../../images/ephemeral/kiln-deploy"),
        0o755,
    ),
    (
        "ephemeral/kiln-erase",
        include_str!("../../../images/ephemeral/kiln-erase"),
        0o755,
    ),
    (
        "os-packages.txt",
        include_str!("../../../images/os-packages.txt"),
        0o644,
    ),
];

fn build_images(
    output: &Path,
    cache_dir: Option<&Path>,
    release: &str,
    mirror: Option<&str>,
    no_cache: bool,
) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir()?;
    for (rel, content, mode) in IMAGE_FILES {
        let p = tmp.path().join(rel);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d)?;
        }
        std::fs::write(&p, content)?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode))?;
    }
    let mut cmd = std::process::Command::new("bash");
    cmd.arg(tmp.path().join("build.sh"))
        .arg("--output")
        .arg(output)
        .arg("--release")
        .arg(release);
    if let Some(c) = cache_dir {
        cmd.arg("--cache-dir").arg(c);
    }
    if let Some(m) = mirror {
        cmd.arg("--mirror").arg(m);
    }
    if no_cache {
        cmd.arg("--no-cache");
    }
    let st = cmd
        .status()
        .context("cannot run bash for images/build.sh")?;
    if !st.success() {
        bail!("the image build failed ({st}); its messages are above");
    }
    Ok(())
}

pub fn read_manifest(dir: &Path) -> anyhow::Result<Manifest> {
    let p = dir.join("manifest.json");
    let text = std::fs::read_to_string(&p).with_context(|| {
        format!(
            "cannot read {} (make one with `kiln images build --output {}`)",
            p.display(),
            dir.display()
        )
    })?;
    let m: Manifest = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a Kiln bundle manifest", p.display()))?;
    if m.format != 1 {
        bail!(
            "{}: manifest format {} is not one this kiln reads (1)",
            p.display(),
            m.format
        );
    }
    Ok(m)
}

async fn import_images(c: &Client, dir: &Path, json: bool) -> anyhow::Result<()> {
    let m = read_manifest(dir)?;
    let existing: Vec<api::BootResource> = c.get("/api/v1/boot-resources").await?;
    let have = |r: &ManifestResource, f: &ManifestFile| {
        existing.iter().any(|e| {
            e.os == r.os
                && e.release == r.release
                && e.arch == r.arch
                && e.kind == r.kind
                && e.files
                    .iter()
                    .any(|h| h.filename == f.name && h.sha256 == f.sha256)
        })
    };
    // Every file to send is checked against the manifest before anything is declared or sent, so
    // a damaged bundle changes nothing on the region.
    let mut damaged = Vec::new();
    for r in &m.resources {
        for f in r.files.iter().filter(|f| !have(r, f)) {
            let path = dir.join(&f.path);
            let size = std::fs::metadata(&path)
                .with_context(|| format!("bundle file {} is missing", path.display()))?
                .len();
            if i64::try_from(size).ok() != Some(f.size) {
                damaged.push(format!(
                    "{} is {size} bytes but the manifest says {}",
                    path.display(),
                    f.size
                ));
                continue;
            }
            let sha = super::bench::hash_file(&path, size, &format!("checking {}", f.name)).await?;
            if !sha.eq_ignore_ascii_case(&f.sha256) {
                damaged.push(format!(
                    "{} has sha256 {sha} but the manifest says {}",
                    path.display(),
                    f.sha256
                ));
            }
        }
    }
    if !damaged.is_empty() {
        bail!(
            "the bundle is damaged, nothing was uploaded; rebuild it (kiln images build):\n  {}",
            damaged.join("\n  ")
        );
    }
    let mut done = Vec::new();
    for r in &m.resources {
        let mut res = match existing.iter().find(|e| {
            e.os == r.os && e.release == r.release && e.arch == r.arch && e.kind == r.kind
        }) {
            Some(e) => e.clone(),
            None => {
                c.post(
                    "/api/v1/boot-resources",
                    &api::BootResourceCreate {
                        os: r.os.clone(),
                        release: r.release.clone(),
                        arch: r.arch.clone(),
                        kind: Some(r.kind.clone()),
                    },
                )
                .await?
            }
        };
        for f in &r.files {
            if have(r, f) {
                if !json {
                    eprintln!(
                        "{}/{} {}: {} is there already",
                        r.os, r.release, r.kind, f.name
                    );
                }
                continue;
            }
            let path = dir.join(&f.path);
            if !json {
                eprintln!(
                    "{}/{} {}: uploading {} ({})",
                    r.os,
                    r.release,
                    r.kind,
                    f.name,
                    bytes(f.size)
                );
            }
            let size = u64::try_from(f.size).unwrap_or(0);
            res = super::bench::send_file(c, &res.id, &path, &f.name, size, &f.sha256).await?;
        }
        done.push(res);
    }
    if json {
        return output::json(&done);
    }
    for r in &done {
        eprintln!(
            "{} {}/{} {} ({}): {} file(s)",
            r.id,
            r.os,
            r.release,
            r.kind,
            r.arch,
            r.files.len()
        );
    }
    Ok(())
}

pub async fn images(a: ClientArgs<ImagesCommand>) -> anyhow::Result<()> {
    if let ImagesCommand::Build {
        output,
        cache_dir,
        release,
        mirror,
        no_cache,
    } = &a.command
    {
        return build_images(
            output,
            cache_dir.as_deref(),
            release,
            mirror.as_deref(),
            *no_cache,
        );
    }
    let c = client(&a)?;
    match a.command {
        ImagesCommand::Build { .. } => unreachable!("handled above"),
        ImagesCommand::Import { dir } => import_images(&c, &dir, a.json).await,
        ImagesCommand::List => {
            let rs: Vec<api::BootResource> = c.get("/api/v1/boot-resources").await?;
            if a.json {
                return output::json(&rs);
            }
            let mut rows = Vec::new();
            for r in &rs {
                for f in &r.files {
                    rows.push(vec![
                        r.id.clone(),
                        format!("{}/{}", r.os, r.release),
                        r.arch.clone(),
                        r.kind.clone(),
                        f.filename.clone(),
                        bytes(f.size),
                        f.sha256[..16].to_string(),
                    ]);
                }
                if r.files.is_empty() {
                    rows.push(vec![
                        r.id.clone(),
                        format!("{}/{}", r.os, r.release),
                        r.arch.clone(),
                        r.kind.clone(),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                    ]);
                }
            }
            output::table(
                &["ID", "OS/RELEASE", "ARCH", "KIND", "FILE", "SIZE", "SHA256"],
                rows,
            );
            Ok(())
        }
        ImagesCommand::Upload {
            os,
            release,
            arch,
            kind,
            files,
        } => {
            let existing: Vec<api::BootResource> = c.get("/api/v1/boot-resources").await?;
            let arch_full = if arch.contains('/') {
                arch.clone()
            } else {
                format!("{arch}/generic")
            };
            let res = match existing.into_iter().find(|r| {
                r.os == os && r.release == release && r.arch == arch_full && r.kind == kind
            }) {
                Some(r) => r,
                None => {
                    c.post(
                        "/api/v1/boot-resources",
                        &api::BootResourceCreate {
                            os,
                            release,
                            arch,
                            kind: Some(kind),
                        },
                    )
                    .await?
                }
            };
            let mut last = res;
            for f in files {
                last = super::bench::upload_file(&c, &last.id, &f, None).await?;
            }
            if a.json {
                output::json(&last)
            } else {
                eprintln!("boot resource {} has {} file(s)", last.id, last.files.len());
                Ok(())
            }
        }
        ImagesCommand::Delete { id } => {
            c.delete(&format!("/api/v1/boot-resources/{}", seg(&id)))
                .await?;
            eprintln!("deleted boot resource {id}");
            Ok(())
        }
    }
}
