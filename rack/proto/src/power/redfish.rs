//! Redfish documents Kiln reads and writes (DMTF DSP0266, ComputerSystem schema).

use region_api_types::{BootDevice, PowerState};
use serde_json::{json, Value};

/// Base URL of a BMC from MAAS's `power_address`: `host`, `host:port` or a full URL (https by default).
pub fn base_url(address: &str) -> Result<String, String> {
    let a = address.trim().trim_end_matches('/');
    if a.is_empty() {
        return Err("the BMC address is empty".into());
    }
    if a.contains(char::is_whitespace) {
        return Err(format!("'{a}' is not a host name or URL"));
    }
    if a.starts_with("http://") || a.starts_with("https://") {
        Ok(a.to_string())
    } else if a.contains("://") {
        Err(format!(
            "'{a}': only http:// and https:// BMC addresses are supported"
        ))
    } else {
        Ok(format!("https://{a}"))
    }
}

/// The system's path: `node_id` if given, else the only member of `/redfish/v1/Systems`.
pub fn system_path(node_id: &str, collection: &Value) -> Result<String, String> {
    let members: Vec<&str> = collection["Members"]
        .as_array()
        .map(|m| m.iter().filter_map(|x| x["@odata.id"].as_str()).collect())
        .unwrap_or_default();
    if !node_id.is_empty() {
        let want = format!("/redfish/v1/Systems/{node_id}");
        return members
            .iter()
            .find(|m| m.trim_end_matches('/') == want)
            .map(|m| m.trim_end_matches('/').to_string())
            .ok_or_else(|| {
                format!(
                    "the BMC has no system '{node_id}' (it has {})",
                    list(&members)
                )
            });
    }
    match members.as_slice() {
        [one] => Ok(one.trim_end_matches('/').to_string()),
        [] => Err("the BMC lists no systems".into()),
        many => Err(format!(
            "the BMC has {} systems ({}); set node_id",
            many.len(),
            list(many)
        )),
    }
}

fn list(m: &[&str]) -> String {
    if m.is_empty() {
        return "none".into();
    }
    m.iter()
        .map(|x| x.rsplit('/').next().unwrap_or(x))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `PowerState` of a ComputerSystem document. `PoweringOn` counts as on, `PoweringOff` as off.
pub fn power_state(system: &Value) -> PowerState {
    match system["PowerState"].as_str() {
        Some("On") | Some("PoweringOn") => PowerState::On,
        Some("Off") | Some("PoweringOff") => PowerState::Off,
        _ => PowerState::Unknown,
    }
}

/// Reset types the system allows (empty when it does not say).
pub fn allowed_resets(system: &Value) -> Vec<String> {
    system["Actions"]["#ComputerSystem.Reset"]["ResetType@Redfish.AllowableValues"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The reset action's target URL.
pub fn reset_target(system: &Value, system_path: &str) -> String {
    system["Actions"]["#ComputerSystem.Reset"]["target"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| format!("{system_path}/Actions/ComputerSystem.Reset"))
}

/// The ResetType for a power action: the first of Kiln's preferences the system allows (or the
/// first preference when it lists none).
pub fn reset_type(want: &[&str], allowed: &[String]) -> String {
    want.iter()
        .find(|w| allowed.is_empty() || allowed.iter().any(|a| a == *w))
        .or(want.first())
        .map(|s| (*s).to_string())
        .unwrap_or_default()
}

pub const ON: &[&str] = &["On", "ForceOn"];
pub const OFF_HARD: &[&str] = &["ForceOff", "GracefulShutdown"];
pub const OFF_SOFT: &[&str] = &["GracefulShutdown", "ForceOff"];

/// PATCH body for a one-time boot override. `mode` is `None` for auto.
pub fn boot_override(dev: BootDevice, uefi: Option<bool>) -> Value {
    let target = match dev {
        BootDevice::Pxe => "Pxe",
        BootDevice::Disk => "Hdd",
    };
    let mut boot = json!({"BootSourceOverrideTarget": target, "BootSourceOverrideEnabled": "Once"});
    if let Some(u) = uefi {
        boot["BootSourceOverrideMode"] = json!(if u { "UEFI" } else { "Legacy" });
    }
    json!({ "Boot": boot })
}

/// A Redfish error body in words (`error.@Message.ExtendedInfo[0].Message` or `error.message`).
pub fn error_text(body: &Value) -> Option<String> {
    let e = &body["error"];
    e["@Message.ExtendedInfo"][0]["Message"]
        .as_str()
        .or_else(|| e["message"].as_str())
        .map(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(base_url("10.0.0.5").unwrap(), "https://10.0.0.5");
        assert_eq!(
            base_url("http://127.0.0.1:8000/").unwrap(),
            "http://127.0.0.1:8000"
        );
        assert!(base_url("ftp://x").is_err());
        assert!(base_url("").is_err());
    }

    #[test]
    fn systems() {
        let c = json!({"Members": [{"@odata.id": "/redfish/v1/Systems/abc"}]});
        assert_eq!(system_path("", &c).unwrap(), "/redfish/v1/Systems/abc");
        assert_eq!(system_path("abc", &c).unwrap(), "/redfish/v1/Systems/abc");
        assert!(system_path("zzz", &c).unwrap_err().contains("abc"));
        let two = json!({"Members": [{"@odata.id": "/redfish/v1/Systems/a"}, {"@odata.id": "/redfish/v1/Systems/b"}]});
        assert!(system_path("", &two).unwrap_err().contains("node_id"));
    }

    #[test]
    fn states_resets_and_boot() {
        assert_eq!(power_state(&json!({"PowerState": "On"})), PowerState::On);
        assert_eq!(
            power_state(&json!({"PowerState": "PoweringOff"})),
            PowerState::Off
        );
        assert_eq!(power_state(&json!({})), PowerState::Unknown);
        let s = json!({"Actions": {"#ComputerSystem.Reset": {"target": "/x/reset",
            "ResetType@Redfish.AllowableValues": ["On", "GracefulShutdown"]}}});
        assert_eq!(
            reset_type(OFF_HARD, &allowed_resets(&s)),
            "GracefulShutdown"
        );
        assert_eq!(reset_type(ON, &[]), "On");
        assert_eq!(reset_target(&s, "/y"), "/x/reset");
        assert_eq!(
            boot_override(BootDevice::Pxe, Some(true)),
            json!({"Boot": {"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Once",
                            "BootSourceOverrideMode": "UEFI"}})
        );
        assert_eq!(
            error_text(&json!({"error": {"message": "nope"}})).unwrap(),
            "nope"
        );
    }
}
