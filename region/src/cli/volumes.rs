//! `kiln volumes list` and the root-volume part of `kiln machines show`.

use clap::Subcommand;
use region_api_types as api;

use super::client::{Client, ClientArgs};
use super::output::{self, bytes, opt};

#[derive(Debug, Subcommand)]
pub enum VolumesCommand {
    /// Root-on-iSCSI volumes and their machines, newest first.
    List,
}

pub async fn volumes(a: ClientArgs<VolumesCommand>) -> anyhow::Result<()> {
    let Some(token) = a.token.clone() else {
        anyhow::bail!("no API token: set KILN_TOKEN (create one with `kiln admin create-token USER`) or pass --token");
    };
    let c = Client::new(&a.url, Some(token))?;
    match a.command {
        VolumesCommand::List => {
            let vs: Vec<api::Volume> = c.get("/api/v1/volumes").await?;
            if a.json {
                return output::json(&vs);
            }
            output::table(
                &[
                    "VOLUME", "MACHINE", "HOSTNAME", "STATE", "IMAGE", "CLONE", "SIZE", "OWN",
                    "RACK",
                ],
                vs.iter()
                    .map(|v| {
                        vec![
                            v.volume.id.clone(),
                            v.system_id.clone(),
                            opt(&v.hostname),
                            v.volume.state.clone(),
                            format!("{}/{}", v.os, v.release),
                            opt(&v.volume.clone_method),
                            v.volume.size_bytes.map(bytes).unwrap_or_else(|| "-".into()),
                            v.volume.used_bytes.map(bytes).unwrap_or_else(|| "-".into()),
                            v.volume.rack.clone(),
                        ]
                    })
                    .collect(),
            );
            Ok(())
        }
    }
}

/// The `boot volume` lines of `kiln machines show`.
pub fn show_boot_volume(v: &api::BootVolume) {
    output::fields(vec![
        ("boot volume", format!("{} ({})", v.id, v.state)),
        ("target iqn", v.target_iqn.clone()),
        ("initiator iqn", v.initiator_iqn.clone()),
        ("portal", format!("{} lun {}", opt(&v.portal), v.lun)),
        (
            "clone",
            format!(
                "{}, {} ({} of its own)",
                opt(&v.clone_method),
                v.size_bytes.map(bytes).unwrap_or_else(|| "-".into()),
                v.used_bytes.map(bytes).unwrap_or_else(|| "-".into())
            ),
        ),
        ("rack", v.rack.clone()),
        ("message", v.message.clone()),
    ]);
}
