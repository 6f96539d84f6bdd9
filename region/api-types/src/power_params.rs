//! Power drivers' settings, without IO: which drivers exist, the settings each takes (the schema
//! the region validates against and the API publishes), their validation, and typed access to
//! validated settings. Shared by the region (validation, the API, the UI) and the rack's drivers
//! (`rack/src/power/`, one module each); the protocols' pure parts are `rack_proto::power`.

use crate::{PowerField, PowerFieldKind, PowerTypeSchema};
use serde_json::{Map, Value};

/// A power parameter that does not fit its driver's schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParamError {
    /// The parameter at fault (`power_address`), or `power_type`.
    pub field: String,
    pub message: String,
}

fn field(
    name: &str,
    label: &str,
    kind: PowerFieldKind,
    required: bool,
    secret: bool,
    default: Option<&str>,
    choices: &[&str],
) -> PowerField {
    PowerField {
        name: name.into(),
        label: label.into(),
        kind,
        required,
        secret,
        default: default.map(Into::into),
        choices: choices.iter().map(|c| (*c).into()).collect(),
    }
}

use PowerFieldKind::{Bool, Choice, Int, String as Str};

/// Every power driver Kiln has, with its settings (MAAS's parameter names). Built once.
pub fn registry() -> &'static [PowerTypeSchema] {
    static REGISTRY: std::sync::LazyLock<Vec<PowerTypeSchema>> =
        std::sync::LazyLock::new(build_registry);
    &REGISTRY
}

fn build_registry() -> Vec<PowerTypeSchema> {
    vec![
        PowerTypeSchema {
            name: "manual".into(),
            description: "No BMC: Kiln asks the operator (an event) to power the machine.".into(),
            controllable: false,
            sets_boot_device: false,
            fields: vec![],
        },
        PowerTypeSchema {
            name: "ipmi".into(),
            description: "IPMI 2.0 over LAN (RMCP+, cipher suite 3).".into(),
            controllable: true,
            sets_boot_device: true,
            fields: vec![
                field("power_address", "BMC address", Str, true, false, None, &[]),
                field(
                    "power_port",
                    "UDP port",
                    Int,
                    false,
                    false,
                    Some("623"),
                    &[],
                ),
                field("power_user", "User", Str, false, false, Some(""), &[]),
                field("power_pass", "Password", Str, false, true, Some(""), &[]),
                field(
                    "cipher_suite_id",
                    "Cipher suite",
                    Choice,
                    false,
                    false,
                    Some("3"),
                    &["3"],
                ),
                field(
                    "privilege_level",
                    "Privilege level",
                    Choice,
                    false,
                    false,
                    Some("OPERATOR"),
                    &["USER", "OPERATOR", "ADMIN"],
                ),
                field(
                    "power_boot_type",
                    "Boot type",
                    Choice,
                    false,
                    false,
                    Some("auto"),
                    &["auto", "legacy", "efi"],
                ),
                field(
                    "power_off_mode",
                    "Power off mode",
                    Choice,
                    false,
                    false,
                    Some("hard"),
                    &["hard", "soft"],
                ),
            ],
        },
        PowerTypeSchema {
            name: "redfish".into(),
            description: "Redfish (HTTPS REST) BMC: ComputerSystem.Reset and boot override.".into(),
            controllable: true,
            sets_boot_device: true,
            fields: vec![
                field(
                    "power_address",
                    "BMC address (host, host:port or URL)",
                    Str,
                    true,
                    false,
                    None,
                    &[],
                ),
                field("power_user", "User", Str, false, false, Some(""), &[]),
                field("power_pass", "Password", Str, false, true, Some(""), &[]),
                field(
                    "node_id",
                    "System id (empty: the BMC's only system)",
                    Str,
                    false,
                    false,
                    Some(""),
                    &[],
                ),
                field(
                    "power_boot_type",
                    "Boot type",
                    Choice,
                    false,
                    false,
                    Some("auto"),
                    &["auto", "legacy", "efi"],
                ),
                field(
                    "power_verify_tls",
                    "Verify the BMC's TLS certificate",
                    Bool,
                    false,
                    false,
                    Some("false"),
                    &[],
                ),
            ],
        },
        PowerTypeSchema {
            name: "virsh".into(),
            description: "A libvirt domain (qemu:///system, qemu+ssh://...).".into(),
            controllable: true,
            sets_boot_device: true,
            fields: vec![
                field("power_address", "libvirt URI", Str, true, false, None, &[]),
                field("power_id", "Domain name", Str, true, false, None, &[]),
                field(
                    "power_pass",
                    "Password (for the URI's user)",
                    Str,
                    false,
                    true,
                    Some(""),
                    &[],
                ),
            ],
        },
        PowerTypeSchema {
            name: "webhook".into(),
            description: "HTTP calls: POST to switch, GET to query, regexes read the answer."
                .into(),
            controllable: true,
            sets_boot_device: false,
            fields: vec![
                field("power_on_uri", "Power on URL", Str, true, false, None, &[]),
                field(
                    "power_off_uri",
                    "Power off URL",
                    Str,
                    true,
                    false,
                    None,
                    &[],
                ),
                field(
                    "power_query_uri",
                    "Power query URL",
                    Str,
                    true,
                    false,
                    None,
                    &[],
                ),
                field(
                    "power_on_regex",
                    "Regex of a query answer meaning on",
                    Str,
                    false,
                    false,
                    Some(WEBHOOK_ON_REGEX),
                    &[],
                ),
                field(
                    "power_off_regex",
                    "Regex of a query answer meaning off",
                    Str,
                    false,
                    false,
                    Some(WEBHOOK_OFF_REGEX),
                    &[],
                ),
                field(
                    "power_token",
                    "Bearer token",
                    Str,
                    false,
                    true,
                    Some(""),
                    &[],
                ),
                field(
                    "power_verify_tls",
                    "Verify TLS certificates",
                    Bool,
                    false,
                    false,
                    Some("true"),
                    &[],
                ),
            ],
        },
    ]
}

/// MAAS's default webhook regexes.
pub const WEBHOOK_ON_REGEX: &str = r"status.*:.*running";
pub const WEBHOOK_OFF_REGEX: &str = r"status.*:.*stopped";

/// The schema of `power_type`.
pub fn schema(power_type: &str) -> Option<&'static PowerTypeSchema> {
    registry().iter().find(|s| s.name == power_type)
}

/// Names of the secret (write-only) parameters of any driver.
pub fn secret_fields() -> Vec<String> {
    let mut out: Vec<String> = registry()
        .iter()
        .flat_map(|s| s.fields.iter().filter(|f| f.secret).map(|f| f.name.clone()))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Whether the driver acts on its own (everything but `manual`).
pub fn controllable(power_type: &str) -> bool {
    schema(power_type).is_some_and(|s| s.controllable)
}

const MAX_VALUE: usize = 1024;

/// Checks `params` against `power_type`'s schema: names must belong to the driver, values must have
/// the field's kind, required fields must be present and not empty. Returns the parameters with
/// values normalised (integers as numbers, booleans as booleans, strings trimmed).
pub fn validate(
    power_type: &str,
    params: &Map<String, Value>,
) -> Result<Map<String, Value>, ParamError> {
    let Some(schema) = schema(power_type) else {
        let names: Vec<&str> = registry().iter().map(|s| s.name.as_str()).collect();
        return Err(ParamError {
            field: "power_type".into(),
            message: format!(
                "'{power_type}' is not a power type; use one of {}.",
                names.join(", ")
            ),
        });
    };
    let mut out = Map::new();
    for (k, v) in params {
        let Some(f) = schema.fields.iter().find(|f| &f.name == k) else {
            let names: Vec<&str> = schema.fields.iter().map(|f| f.name.as_str()).collect();
            let takes = if names.is_empty() {
                "it takes no parameters".to_string()
            } else {
                format!("it takes {}", names.join(", "))
            };
            return Err(ParamError {
                field: k.clone(),
                message: format!("'{k}' is not a parameter of power type {power_type}; {takes}."),
            });
        };
        out.insert(k.clone(), normalise(power_type, f, v)?);
    }
    for f in schema.fields.iter().filter(|f| f.required) {
        let missing = match out.get(&f.name) {
            None | Some(Value::Null) => true,
            Some(Value::String(s)) => s.is_empty(),
            _ => false,
        };
        if missing {
            return Err(ParamError {
                field: f.name.clone(),
                message: format!("power type {power_type} needs '{}' ({}).", f.name, f.label),
            });
        }
    }
    Ok(out)
}

fn normalise(power_type: &str, f: &PowerField, v: &Value) -> Result<Value, ParamError> {
    let err = |what: String| ParamError {
        field: f.name.clone(),
        message: format!("power parameter '{}' of {power_type} {what}", f.name),
    };
    let text = match v {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => return Ok(Value::Null),
        _ => return Err(err("must be a string, a number or a boolean.".into())),
    };
    if text.len() > MAX_VALUE {
        return Err(err(format!("is longer than {MAX_VALUE} bytes.")));
    }
    if text.chars().any(char::is_control) {
        return Err(err("contains control characters.".into()));
    }
    match f.kind {
        PowerFieldKind::String => Ok(Value::String(text)),
        PowerFieldKind::Int => text
            .parse::<u64>()
            .ok()
            .filter(|n| *n <= 65535)
            .map(|n| Value::Number(n.into()))
            .ok_or_else(|| {
                err(format!(
                    "must be a whole number from 0 to 65535, not '{text}'."
                ))
            }),
        PowerFieldKind::Bool => match text.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(Value::Bool(true)),
            "false" | "0" | "no" | "" => Ok(Value::Bool(false)),
            _ => Err(err(format!("must be true or false, not '{text}'."))),
        },
        PowerFieldKind::Choice => f
            .choices
            .iter()
            .find(|c| c.eq_ignore_ascii_case(&text))
            .map(|c| Value::String(c.clone()))
            .ok_or_else(|| {
                let extra = if f.name == "cipher_suite_id" && text == "17" {
                    " (suite 17, HMAC-SHA256, is not implemented yet)"
                } else {
                    ""
                };
                err(format!(
                    "must be one of {}, not '{text}'{extra}.",
                    f.choices.join(", ")
                ))
            }),
    }
}

/// Typed reads of validated parameters, falling back to the schema default.
#[derive(Debug, Clone)]
pub struct Params<'a> {
    power_type: &'a str,
    map: &'a Map<String, Value>,
}

impl<'a> Params<'a> {
    pub fn new(power_type: &'a str, map: &'a Map<String, Value>) -> Params<'a> {
        Params { power_type, map }
    }

    fn default_of(&self, name: &str) -> Option<String> {
        schema(self.power_type)?
            .fields
            .iter()
            .find(|f| f.name == name)?
            .default
            .clone()
    }

    /// A string parameter (numbers and booleans as text); the default, or "" when absent.
    pub fn str(&self, name: &str) -> String {
        match self.map.get(name) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::Bool(b)) => b.to_string(),
            _ => self.default_of(name).unwrap_or_default(),
        }
    }

    /// A required string parameter.
    pub fn required(&self, name: &str) -> Result<String, ParamError> {
        let v = self.str(name);
        if v.is_empty() {
            return Err(ParamError {
                field: name.into(),
                message: format!("power type {} needs '{name}'.", self.power_type),
            });
        }
        Ok(v)
    }

    pub fn u16(&self, name: &str) -> Result<u16, ParamError> {
        let v = self.str(name);
        v.parse().map_err(|_| ParamError {
            field: name.into(),
            message: format!("power parameter '{name}' must be a port number, not '{v}'."),
        })
    }

    pub fn bool(&self, name: &str) -> bool {
        matches!(
            self.str(name).to_ascii_lowercase().as_str(),
            "true" | "1" | "yes"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn every_driver_has_a_schema_and_secrets_are_known() {
        let names: Vec<&str> = registry().iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["manual", "ipmi", "redfish", "virsh", "webhook"]);
        assert_eq!(secret_fields(), ["power_pass", "power_token"]);
        assert!(!controllable("manual"));
        assert!(controllable("ipmi"));
        assert!(!controllable("telnet"));
    }

    #[test]
    fn validation_names_the_field() {
        let e = validate("ipmi", &map(json!({"power_user": "admin"}))).unwrap_err();
        assert_eq!(e.field, "power_address");
        let e = validate(
            "ipmi",
            &map(json!({"power_address": "10.0.0.5", "power_port": "x"})),
        )
        .unwrap_err();
        assert_eq!(e.field, "power_port");
        assert!(e.message.contains("whole number"), "{}", e.message);
        let e = validate("ipmi", &map(json!({"power_address": "h", "node_id": "1"}))).unwrap_err();
        assert_eq!(e.field, "node_id");
        assert!(e.message.contains("not a parameter of power type ipmi"));
        let e = validate(
            "ipmi",
            &map(json!({"power_address": "h", "cipher_suite_id": "17"})),
        )
        .unwrap_err();
        assert!(e.message.contains("17"), "{}", e.message);
        let e = validate("manual", &map(json!({"power_address": "h"}))).unwrap_err();
        assert!(e.message.contains("takes no parameters"));
        let e = validate("telnet", &Map::new()).unwrap_err();
        assert_eq!(e.field, "power_type");
        let e = validate("ipmi", &map(json!({"power_address": {"a": 1}}))).unwrap_err();
        assert_eq!(e.field, "power_address");
        let e = validate(
            "virsh",
            &map(json!({"power_address": "qemu:///system", "power_id": ""})),
        )
        .unwrap_err();
        assert_eq!(e.field, "power_id");
    }

    #[test]
    fn validation_normalises() {
        let p = validate(
            "ipmi",
            &map(json!({"power_address": " 10.0.0.5 ", "power_port": "9623", "privilege_level": "admin",
                        "power_boot_type": "EFI"})),
        )
        .unwrap();
        assert_eq!(p["power_address"], "10.0.0.5");
        assert_eq!(p["power_port"], 9623);
        assert_eq!(p["privilege_level"], "ADMIN");
        assert_eq!(p["power_boot_type"], "efi");
        let r = validate(
            "redfish",
            &map(json!({"power_address": "bmc", "power_verify_tls": "yes"})),
        )
        .unwrap();
        assert_eq!(r["power_verify_tls"], true);
    }

    #[test]
    fn typed_reads_fall_back_to_defaults() {
        let m = map(json!({"power_address": "10.0.0.5"}));
        let p = Params::new("ipmi", &m);
        assert_eq!(p.u16("power_port").unwrap(), 623);
        assert_eq!(p.str("privilege_level"), "OPERATOR");
        assert_eq!(p.str("power_user"), "");
        assert!(p.required("power_pass").is_err());
        let w = Map::new();
        let p = Params::new("webhook", &w);
        assert_eq!(p.str("power_on_regex"), WEBHOOK_ON_REGEX);
        assert!(p.bool("power_verify_tls"));
    }
}
