//! Template snapshots: every page rendered from fixed data (insta). A change to a template shows up
//! here as a diff to review.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use kiln_ui::views::{self, Choice, DetailInputs, Facet, Header, Page};
use kiln_ui::Ui;
use region_api_types as api;
use serde::Serialize;
use serde_json::json;

fn header(admin: bool) -> Header {
    Header {
        username: if admin {
            "admin".into()
        } else {
            "alice".into()
        },
        is_admin: admin,
        csrf: "c5rf".into(),
        active: "machines".into(),
    }
}

fn page<T: Serialize>(title: &str, admin: bool, view: T) -> Page<T> {
    Page {
        header: Some(header(admin)),
        title: title.into(),
        notice: None,
        stream: Some("/ui/stream".into()),
        asset_version: "v1".into(),
        view,
    }
}

fn machine(id: &str, host: &str, status: &str) -> api::Machine {
    serde_json::from_value(json!({
        "system_id": id, "hostname": host, "status": status, "status_label": status.replace('_', " "),
        "previous_status": null, "status_deadline": null, "architecture": "amd64/generic", "boot_mac": "52:54:00:00:00:01",
        "power_type": "ipmi", "power_parameters": {"power_address": "10.0.0.5", "power_user": "kiln"},
        "power_state": "on", "power_state_checked_at": null, "skip_bmc_config": false, "owner": "alice",
        "zone": "default", "pool": "default", "tags": ["rack-a", "gpu"], "description": "",
        "cpu_count": 4, "memory_mib": 8192, "storage_bytes": 107374182400i64,
        "interfaces": [{"name": "eth0", "mac": "52:54:00:00:00:01", "subnet_id": "s1", "ip": "10.20.0.11"}],
        "hardware": {"cpu_count": 4, "cpu_model": "QEMU Virtual CPU", "memory_mib": 8192, "firmware": "bios",
            "system_vendor": "QEMU", "system_product": "Standard PC", "system_serial": "0001",
            "disks": [{"name": "vda", "size_bytes": 107374182400i64, "model": "virtio", "serial": "d0", "rotational": false, "transport": "virtio"}],
            "nics": [{"name": "eth0", "mac": "52:54:00:00:00:01", "speed_mbps": 1000, "link": true, "driver": "virtio_net"}],
            "bmc_present": true, "commissioned_at": "2026-12-02T10:00:00.000Z"},
        "deployment": null, "boot_volume": null,
        "created_at": "2026-12-02T09:00:00.000Z", "updated_at": "2026-12-02T10:00:00.000Z"
    }))
    .unwrap()
}

fn ui() -> Ui {
    Ui::new().unwrap()
}

#[test]
fn login_page() {
    let p = Page {
        header: None,
        title: "Log in".into(),
        notice: None,
        stream: None,
        asset_version: "v1".into(),
        view: views::Login {
            username: "admin".into(),
            next: "/machines".into(),
            csrf: "t0k".into(),
            error: Some("Wrong username or password.".into()),
        },
    };
    insta::assert_snapshot!(ui().render("login.html", &p).unwrap());
}

#[test]
fn machine_list_page() {
    let ms = vec![
        machine("abc123", "node-1", "ready"),
        machine("def456", "node-2", "failed_commissioning"),
    ];
    let facets = vec![Facet {
        label: "All".into(),
        count: 2,
        link: "/machines".into(),
        current: true,
    }];
    let v = views::machine_list(views::ListInputs {
        q: "tag:rack-a",
        sort: "-hostname",
        error: None,
        machines: &ms,
        total: 120,
        page: 2,
        facets,
        is_admin: true,
    });
    insta::assert_snapshot!(ui()
        .render("machines.html", &page("Machines", true, v))
        .unwrap());
}

#[test]
fn machine_list_with_a_search_error_for_a_user() {
    let v = views::machine_list(views::ListInputs {
        q: "colour:red",
        sort: "",
        error: Some("'colour:' is not a search key.".into()),
        machines: &[],
        total: 0,
        page: 1,
        facets: vec![],
        is_admin: false,
    });
    let html = ui()
        .render("machines.html", &page("Machines", false, v))
        .unwrap();
    assert!(html.contains(r#"aria-invalid="true""#));
    assert!(html.contains("is not a search key"));
    assert!(
        !html.contains(r#"value="delete""#),
        "users are not offered delete"
    );
    assert!(html.contains("No machine matches"));
}

#[test]
fn bulk_results_page() {
    let v = views::Bulk {
        action: "Add tag…".into(),
        results: vec![
            views::BulkResult {
                system_id: "a".into(),
                hostname: "node-1".into(),
                link: "/machines/a".into(),
                ok: true,
                message: "tagged x".into(),
            },
            views::BulkResult {
                system_id: "b".into(),
                hostname: "node-2".into(),
                link: "/machines/b".into(),
                ok: false,
                message: "Machine b is Deploying; commission is allowed from New or Ready.".into(),
            },
        ],
        ok: 1,
        failed: 1,
        back: "/machines".into(),
    };
    insta::assert_snapshot!(ui()
        .render("bulk.html", &page("Add tag…: 2 machine(s)", true, v))
        .unwrap());
}

fn event(id: i64, at: &str, level: &str, ty: &str, text: &str) -> api::Event {
    serde_json::from_value(
        json!({"id": id, "system_id": "abc123", "created_at": at, "level": level,
        "event_type": ty, "description": text, "username": null}),
    )
    .unwrap()
}

fn detail(status: &str, errors: views::FieldErrors) -> views::MachineDetail {
    let mut m = machine("abc123", "node-1", status);
    m.deployment = Some(serde_json::from_value(json!({"id": "d1", "instance_id": "i-1", "os": "debian", "release": "bookworm",
        "target": "disk", "storage_layout": "flat", "boot_disk": "vda", "state": "running",
        "created_at": "2026-12-02T10:01:00.000Z", "installed_at": null, "finished_at": null, "has_user_data": true})).unwrap());
    let events = vec![
        event(
            3,
            "2026-12-02T10:02:30.500Z",
            "info",
            "deploy_step",
            "partition: /dev/vda (100 GiB) wiped (830 ms)",
        ),
        event(
            2,
            "2026-12-02T10:01:00.000Z",
            "info",
            "status_changed",
            "Allocated → Deploying.",
        ),
        event(
            1,
            "2026-12-02T10:00:00.000Z",
            "error",
            "commissioning_failed",
            "Script 20-lshw failed (exit 1).",
        ),
    ];
    let scripts: Vec<api::ScriptResult> = serde_json::from_value(json!([
        {"name": "10-inventory", "boot_id": "b1", "status": "passed", "exit_code": 0,
         "started_at": "2026-12-02T10:00:00.000Z", "finished_at": "2026-12-02T10:00:04.200Z", "output": "cpus: 4\n<b>not bold</b>"}
    ])).unwrap();
    let schemas: Vec<api::PowerTypeSchema> = serde_json::from_value(json!([
        {"name": "ipmi", "description": "IPMI 2.0", "controllable": true, "sets_boot_device": true, "fields": [
            {"name": "power_address", "label": "Address", "kind": "string", "required": true, "secret": false, "default": null, "choices": []},
            {"name": "power_pass", "label": "Password", "kind": "string", "required": true, "secret": true, "default": null, "choices": []},
            {"name": "power_driver", "label": "Driver", "kind": "choice", "required": false, "secret": false, "default": "LAN_2_0", "choices": ["LAN", "LAN_2_0"]}]},
        {"name": "manual", "description": "Manual", "controllable": false, "sets_boot_device": false, "fields": []}
    ])).unwrap();
    let actions = [
        api::MachineAction::Abort,
        api::MachineAction::Release,
        api::MachineAction::Deploy,
    ];
    views::machine_detail(
        &m,
        DetailInputs {
            events: &events,
            scripts: &scripts,
            schemas: &schemas,
            secrets_set: &["power_pass".to_string()],
            actions: &actions,
            can_power: true,
            can_edit: true,
            images: &[Choice::new("debian/bookworm", "debian/bookworm (amd64)")],
            errors,
            deploy_values: BTreeMap::new(),
            default_domain: "kiln",
            domains: &["kiln".to_string(), "lab".to_string()],
        },
    )
}

#[test]
fn machine_detail_page() {
    let v = detail("failed_commissioning", Default::default());
    let html = ui()
        .render("machine.html", &page("node-1", true, v))
        .unwrap();
    assert!(
        html.contains("&lt;b&gt;not bold&lt;/b&gt;"),
        "script output is escaped"
    );
    assert!(!html.contains("hunter2"));
    insta::assert_snapshot!(html);
}

#[test]
fn machine_detail_errors_sit_beside_their_controls() {
    let mut errors = views::FieldErrors::new();
    errors.insert("user_data".into(), "user_data is not valid YAML.".into());
    errors.insert(
        "power_parameters.power_address".into(),
        "Not an address.".into(),
    );
    let html = ui()
        .render(
            "machine.html",
            &page("node-1", true, detail("ready", errors)),
        )
        .unwrap();
    let ud = html.find("user_data is not valid YAML.").unwrap();
    let ta = html.find(r#"id="d-userdata""#).unwrap();
    assert!(
        ud > ta && ud - ta < 600,
        "the user-data error follows its textarea"
    );
    let pa = html.find("Not an address.").unwrap();
    let input = html.find(r#"id="p-ipmi-power_address""#).unwrap();
    assert!(
        pa > input && pa - input < 400,
        "the address error follows its input"
    );
}

#[test]
fn other_pages() {
    let ui = ui();
    let res: api::BootResource = serde_json::from_value(json!({"id": "r1", "os": "debian", "release": "bookworm", "arch": "amd64",
        "kind": "deploy", "files": [{"filename": "root.squashfs", "sha256": "aa", "size": 734003200, "created_at": "2026-12-01T08:00:00.000Z"},
                                    {"filename": "vmlinuz", "sha256": "bb", "size": 8000000, "created_at": "2026-12-01T08:00:00.000Z"}],
        "created_at": "2026-12-01T08:00:00.000Z"})).unwrap();
    let racks = vec![
        (
            "rack-1".to_string(),
            vec!["aa".to_string(), "bb".to_string()],
        ),
        ("rack-2".to_string(), vec!["aa".to_string()]),
    ];
    let images = views::Images {
        images: vec![views::image_row(&res, &racks)],
    };
    insta::assert_snapshot!(
        "images",
        ui.render("images.html", &page("Images", true, images))
            .unwrap()
    );

    let sub: api::Subnet = serde_json::from_value(json!({"id": "s1", "name": "prov", "cidr": "10.20.0.0/24", "gateway": "10.20.0.1",
        "dns_servers": ["10.20.0.1"], "domain": "lab", "dynamic_ranges": [{"start": "10.20.0.100", "end": "10.20.0.199", "comment": null}],
        "reserved_ranges": [], "static_routes": [{"destination": "10.30.0.0/24", "gateway": "10.20.0.254"}], "managed": true,
        "ntp_servers": [], "lease_time_secs": null, "relay_addresses": ["192.0.2.1"], "created_at": "2026-12-01T08:00:00.000Z", "updated_at": "2026-12-01T08:00:00.000Z"})).unwrap();
    let mut errors = views::FieldErrors::new();
    errors.insert("cidr".into(), "'10.20.0.0/33' is not a CIDR.".into());
    let subnets = views::Subnets {
        subnets: vec![views::subnet_row(&sub)],
        values: BTreeMap::from([("cidr".to_string(), "10.20.0.0/33".to_string())]),
        errors,
    };
    insta::assert_snapshot!(
        "subnets",
        ui.render("subnets.html", &page("Subnets", true, subnets))
            .unwrap()
    );

    let domains: Vec<api::DnsDomain> = serde_json::from_value(json!([
        {"id": "dom-kiln", "name": "kiln", "ttl": 30, "is_default": true, "records": 2, "machines": 12, "created_at": "2026-12-01T08:00:00.000Z"},
        {"id": "dom-lab", "name": "lab.example", "ttl": 300, "is_default": false, "records": 0, "machines": 1, "created_at": "2026-12-01T08:00:00.000Z"}])).unwrap();
    let records: Vec<api::DnsRecord> = serde_json::from_value(json!([
        {"id": "rec-1", "name": "www.kiln", "type": "CNAME", "data": "node1.kiln", "ttl": 30, "domain": "kiln", "created_at": "2026-12-01T08:00:00.000Z"},
        {"id": "rec-2", "name": "_http._tcp.kiln", "type": "SRV", "data": "10 5 80 node1.kiln", "ttl": 60, "domain": "kiln", "created_at": "2026-12-01T08:00:00.000Z"}])).unwrap();
    let mut errors = views::FieldErrors::new();
    errors.insert(
        "name".into(),
        "'node1.kiln' is machine abc123's name: a CNAME cannot sit next to its addresses.".into(),
    );
    let dns = views::Dns {
        domains,
        records,
        types: vec!["A", "AAAA", "CNAME", "TXT", "SRV", "MX"],
        form: "record".into(),
        values: BTreeMap::from([
            ("name".to_string(), "node1.kiln".to_string()),
            ("type".to_string(), "CNAME".to_string()),
            ("data".to_string(), "www.kiln".to_string()),
        ]),
        errors,
    };
    insta::assert_snapshot!(
        "dns",
        ui.render("dns.html", &page("DNS", true, dns)).unwrap()
    );

    let rack: api::Rack = serde_json::from_value(json!({"id": "k1", "name": "rack-1", "status": "online", "approval": "approved", "power_networks": ["10.30.0.0/24"], "last_seen": "2026-12-02T10:00:00.000Z",
        "version": "0.1.0", "interfaces": [{"name": "br0", "addresses": ["10.20.0.2/24"]}], "created_at": "2026-12-01T08:00:00.000Z",
        "iscsi": {"portal": "10.20.0.2:3260", "driver": "tgt", "clone_method": "reflink", "store_free_bytes": 53687091200u64, "error": null}})).unwrap();
    let pending: api::Rack = serde_json::from_value(json!({"id": "k2", "name": "rack-2", "status": "online", "approval": "pending",
        "last_seen": "2026-12-02T10:00:00.000Z", "version": "0.1.0", "interfaces": [], "created_at": "2026-12-02T09:00:00.000Z"})).unwrap();
    insta::assert_snapshot!(
        "racks",
        ui.render(
            "racks.html",
            &page(
                "Racks",
                true,
                views::Racks {
                    racks: vec![views::rack_row(&rack), views::rack_row(&pending)],
                    new_token: Some("kiln-rack-v1.ab12cd34.secret".into()),
                    ..Default::default()
                }
            )
        )
        .unwrap()
    );

    let user: api::User = serde_json::from_value(json!({"id": "u1", "username": "alice", "is_admin": false, "created_at": "2026-12-01T08:00:00.000Z"})).unwrap();
    let token: api::Token = serde_json::from_value(
        json!({"id": "t1", "name": "ci", "username": "alice", "prefix": "kiln_ab12",
        "scope": "operator", "created_at": "2026-12-01T08:00:00.000Z", "last_used_at": null,
        "expires_at": "2026-12-31T08:00:00.000Z"}),
    )
    .unwrap();
    let users = views::Users {
        users: vec![views::user_row(&user)],
        tokens: vec![views::token_row(&token)],
        new_token: Some("kiln_secret".into()),
        ..Default::default()
    };
    insta::assert_snapshot!(
        "users",
        ui.render("users.html", &page("Users and tokens", true, users))
            .unwrap()
    );

    let key: api::SshKey = serde_json::from_value(json!({"id": "k1", "key_type": "ssh-ed25519", "key": "ssh-ed25519 AAAA alice@laptop",
        "comment": "alice@laptop", "fingerprint": "SHA256:abc", "created_at": "2026-12-01T08:00:00.000Z"})).unwrap();
    let keys = views::Keys {
        keys: vec![views::key_row(&key)],
        ..Default::default()
    };
    insta::assert_snapshot!(
        "keys",
        ui.render("keys.html", &page("SSH keys", false, keys))
            .unwrap()
    );

    let changeable: api::Setting = serde_json::from_value(
        json!({"name": "lifecycle.node_timeout_secs", "value": "600",
        "file_value": "1800", "changed": true, "help": "How long."}),
    )
    .unwrap();
    let settings = views::Settings {
        config_path: "/etc/kiln/region.toml".into(),
        error: None,
        groups: vec![views::SettingGroup {
            id: "lifecycle".into(),
            title: "Machine lifecycle".into(),
            settings: vec![
                views::Setting::from_api(&changeable, Some("5"), Some("From 60 to 86400.".into())),
                views::Setting::fixed("listen", "127.0.0.1:5240", "The address."),
            ],
        }],
    };
    insta::assert_snapshot!(
        "settings",
        ui.render("settings.html", &page("Settings", true, settings))
            .unwrap()
    );

    let ev = event(
        7,
        "2026-12-02T10:00:00.000Z",
        "warning",
        "power_failed",
        "BMC did not answer.",
    );
    let events = views::Events {
        levels: vec![Choice::new("", "All levels"), Choice::new("error", "error")],
        level: String::new(),
        events: vec![views::event_row(&ev, Some("node-1"))],
        older_link: Some("/events?before=7".into()),
        self_link: "/events".into(),
    };
    insta::assert_snapshot!(
        "events",
        ui.render("events.html", &page("Events", true, events))
            .unwrap()
    );

    let err = Page {
        header: None,
        title: "Not found".into(),
        notice: None,
        stream: None,
        asset_version: "v1".into(),
        view: views::ErrorPage {
            message: "machine x not found".into(),
            back: "/machines".into(),
        },
    };
    insta::assert_snapshot!("error", ui.render("error.html", &err).unwrap());
}

#[test]
fn pod_pages() {
    let ui = ui();
    let pod: api::Pod = serde_json::from_value(json!({
        "id": "p1", "name": "kvm-1", "type": "virsh", "power_address": "qemu+ssh://kiln@10.0.0.5/system",
        "power_pass_set": true, "cpu_over_commit_ratio": 2.0, "memory_over_commit_ratio": 1.0,
        "default_storage_pool": null, "default_network": "br0", "tags": ["kvm"], "zone": "default", "pool": "default",
        "state": "ok", "message": null, "architecture": "x86_64", "hypervisor": "libvirt 9.0.0, QEMU 7.2.0", "virt_type": "kvm",
        "uefi": true, "secure_boot": true,
        "cores": {"total": 8, "limit": 16, "used": 5, "free": 11},
        "memory_mib": {"total": 32768, "limit": 32768, "used": 9216, "free": 23552},
        "storage_pools": [{"name": "default", "pool_type": "dir", "path": "/var/lib/libvirt/images", "active": true,
            "capacity_bytes": 536870912000u64, "allocation_bytes": 107374182400u64, "available_bytes": 429496729600u64,
            "committed_bytes": 42949672960u64, "free_bytes": 429496729600u64, "default": true}],
        "networks": [{"name": "default", "bridge": "virbr0", "active": true}],
        "vms": [{"name": "node-a", "uuid": "u1", "cores": 4, "memory_mib": 8192, "disk_bytes": 42949672960u64, "running": true, "system_id": "abc123"},
                {"name": "hand-made", "uuid": "u2", "cores": 1, "memory_mib": 1024, "disk_bytes": 0, "running": false, "system_id": null}],
        "machines": [{"system_id": "abc123", "hostname": "node-a", "status": "ready", "status_label": "Ready"}],
        "rack": "rack-1", "refreshed_at": "2026-12-03T10:00:00.000Z", "created_at": "2026-12-01T08:00:00.000Z", "updated_at": "2026-12-03T10:00:00.000Z"
    })).unwrap();
    let mut errors = views::FieldErrors::new();
    errors.insert(
        "power_address".into(),
        "'vmware://x' is not a libvirt QEMU URI.".into(),
    );
    let list = views::Pods {
        pods: vec![views::pod_view(&pod)],
        values: BTreeMap::from([("power_address".to_string(), "vmware://x".to_string())]),
        errors,
    };
    insta::assert_snapshot!(
        "pods",
        ui.render("pods.html", &page("KVM pods", true, list))
            .unwrap()
    );
    let mut errors = views::FieldErrors::new();
    errors.insert(
        "form".into(),
        "Pod kvm-1 cannot hold this VM: 64 cores were asked for but 11 are free.".into(),
    );
    let one = views::PodPage {
        p: views::pod_view(&pod),
        values: BTreeMap::from([("cores".to_string(), "64".to_string())]),
        errors,
    };
    let html = ui
        .render("pod.html", &page("Pod kvm-1", true, one))
        .unwrap();
    assert!(
        html.contains("<meter id=\"m-cores\" min=\"0\" max=\"16\" value=\"5\">"),
        "{html}"
    );
    assert!(html.contains("not Kiln's"), "{html}");
    insta::assert_snapshot!("pod", html);
}
