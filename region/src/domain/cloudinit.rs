//! What the deployed system's cloud-init reads from Kiln (NoCloud seed files), rendered without IO.

use crate::db::machines::InterfaceRow;

/// `meta-data`: a new instance-id per deployment (so cloud-init runs again on a redeploy), the
/// hostname, the owner's SSH keys (they go to the image's default user, `debian`).
pub fn meta_data(
    instance_id: &str,
    hostname: &str,
    keys: &[String],
    _boot_mac: Option<&str>,
    _ifaces: &[InterfaceRow],
) -> String {
    let mut m = serde_yaml::Mapping::new();
    m.insert("instance-id".into(), instance_id.into());
    m.insert("local-hostname".into(), hostname.into());
    m.insert(
        "public-keys".into(),
        serde_yaml::Value::Sequence(keys.iter().map(|k| k.as_str().into()).collect()),
    );
    serde_yaml::to_string(&m).unwrap_or_default()
}

/// `vendor-data`: cloud-init tells Kiln when it is done (phone-home, after the user's runcmd and
/// scripts), which is what makes the machine Deployed; the locale is C.UTF-8, which every Debian
/// system has (cloud-init's default, en_US.UTF-8, needs generating). User-data overrides both.
/// With `apt_proxy`, apt fetches through the rack's proxy.
pub fn vendor_data(rack_url: &str, token: &str, apt_proxy: Option<&str>) -> String {
    let mut y = format!(
        "#cloud-config\nlocale: C.UTF-8\nphone_home:\n  url: {rack_url}/metadata/v1/nocloud/{token}/phone-home\n  post: [instance_id, hostname]\n  tries: 20\n"
    );
    if let Some(p) = apt_proxy {
        y.push_str(&format!("apt:\n  proxy: {p}\n"));
    }
    y
}

/// `network-config` (v2): DHCP on the boot interface, matched by MAC (the rack's DHCP hands out a
/// static reservation when there is one).
pub fn network_config(boot_mac: Option<&str>) -> String {
    match boot_mac {
        Some(mac) => format!(
            "version: 2\nethernets:\n  boot:\n    match:\n      macaddress: \"{mac}\"\n    dhcp4: true\n"
        ),
        None => "version: 2\nethernets: {}\n".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_data_is_yaml_with_keys() {
        let y = meta_data("i-abc", "node1", &["ssh-ed25519 AAAA x".into()], None, &[]);
        let v: serde_yaml::Value = serde_yaml::from_str(&y).unwrap();
        assert_eq!(v["instance-id"], "i-abc");
        assert_eq!(v["local-hostname"], "node1");
        assert_eq!(v["public-keys"][0], "ssh-ed25519 AAAA x");
    }

    #[test]
    fn vendor_data_phones_home_to_the_rack() {
        let y = vendor_data("http://10.20.0.2:5248", "boot_x", None);
        assert!(!y.contains("apt"));
        let with = vendor_data(
            "http://10.20.0.2:5248",
            "boot_x",
            Some("http://10.20.0.2:8000/"),
        );
        let w: serde_yaml::Value = serde_yaml::from_str(&with).unwrap();
        assert_eq!(w["apt"]["proxy"], "http://10.20.0.2:8000/");
        assert!(y.starts_with("#cloud-config\n"));
        let v: serde_yaml::Value = serde_yaml::from_str(&y).unwrap();
        assert_eq!(
            v["phone_home"]["url"],
            "http://10.20.0.2:5248/metadata/v1/nocloud/boot_x/phone-home"
        );
    }
}
