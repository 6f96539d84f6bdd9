//! libvirt domains (MAAS's `virsh` power type) through the `virt` crate (libvirt's C library):
//! start and destroy the domain, read its state, and put network or disk first in its boot order.
//! libvirt calls block, so they run on tokio's blocking pool.

use futures_util::future::BoxFuture;
use region_api_types::power_params::{ParamError, Params};
use region_api_types::{BootDevice, PowerState};
use virt::connect::{Connect, ConnectAuth, ConnectCredential, ConnectCredentialType};
use virt::domain::{Domain, DomainState};
use virt::enumutil::Enum;

use super::{DriverError, DriverResult, PowerDriver, Switch};

#[derive(Debug, Clone)]
pub struct Virsh {
    uri: String,
    domain: String,
    pass: String,
}

thread_local! {
    /// libvirt's credential callback is a plain function: the password reaches it through the
    /// blocking thread that opens the connection.
    static PASSWORD: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

// The signature is libvirt's callback type (`virt::connect::ConnectAuthCallback`).
#[allow(clippy::ptr_arg)]
fn fill_password(creds: &mut Vec<ConnectCredential>) {
    PASSWORD.with(|p| {
        for c in creds.iter_mut() {
            if matches!(
                c.typed,
                ConnectCredentialType::Passphrase | ConnectCredentialType::NoEchoPrompt
            ) {
                c.result = Some(p.borrow().clone());
            }
        }
    });
}

impl Virsh {
    pub fn new(p: &Params<'_>) -> Result<Virsh, ParamError> {
        Ok(Virsh {
            uri: p.required("power_address")?,
            domain: p.required("power_id")?,
            pass: p.str("power_pass"),
        })
    }

    async fn with_domain<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connect, &Domain, &Virsh) -> DriverResult<T> + Send + 'static,
    ) -> DriverResult<T> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = me.open()?;
            let result = match conn.lookup_domain_by_name(&me.domain) {
                Ok(d) => f(&conn, &d, &me),
                Err(e) => Err(DriverError::Fatal(format!(
                    "libvirt at {} has no domain '{}': {}",
                    me.uri,
                    me.domain,
                    e.message()
                ))),
            };
            drop(conn);
            result
        })
        .await
        .map_err(|e| DriverError::Retryable(format!("libvirt call failed: {e}")))?
    }

    fn open(&self) -> DriverResult<Connect> {
        connect(&self.uri, &self.pass)
    }

    fn err(&self, what: &str, e: virt::error::Error) -> DriverError {
        DriverError::Retryable(format!(
            "libvirt at {}: cannot {what} domain '{}': {}",
            self.uri,
            self.domain,
            e.message()
        ))
    }
}

/// Opens a libvirt connection, answering libvirt's password prompt with `pass` when it is set.
/// Errors say whether retrying can help.
pub fn connect(uri: &str, pass: &str) -> DriverResult<Connect> {
    // Errors come back to the caller in words; libvirt's default handler would also print them.
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(virt::error::clear_error_callback);
    let r = if pass.is_empty() {
        Connect::open(Some(uri))
    } else {
        PASSWORD.with(|p| *p.borrow_mut() = pass.to_string());
        let mut auth = ConnectAuth::new(
            vec![
                ConnectCredentialType::Passphrase,
                ConnectCredentialType::NoEchoPrompt,
            ],
            fill_password,
        );
        let r = Connect::open_auth(Some(uri), &mut auth, 0);
        PASSWORD.with(|p| p.borrow_mut().clear());
        r
    };
    r.map_err(|e| {
        let text = format!("cannot connect to libvirt at {}: {}", uri, e.message());
        // A transport tool that is missing (ssh for qemu+ssh://, the command of qemu+ext://)
        // or a hypervisor driver libvirt lacks: retrying cannot help.
        let m = e.message();
        if m.contains("no connection driver available")
            || m.contains("cannot execute binary")
            || (m.contains("Cannot find") && m.contains("in path"))
            || m.contains("unsupported")
        {
            DriverError::Fatal(text)
        } else {
            DriverError::Retryable(text)
        }
    })
}

/// Puts `first` then the other of network/hd first in a domain's boot order. A domain with
/// per-device `<boot order=N/>` (every VM Kiln composes) has those renumbered, never an
/// `<os><boot dev>` added (libvirt refuses both at once, and OVMF fights `<boot dev>`); other
/// domains get `<os><boot dev=.../>` rewritten.
pub fn with_boot_order(xml: &str, dev: BootDevice) -> Result<String, String> {
    if xml.contains("<boot order=") {
        return rack_proto::pods::xml::with_device_boot_order(xml, dev)?
            .ok_or_else(|| "the domain's per-device boot order is not on a disk or NIC".into());
    }
    let os_start = xml
        .find("<os")
        .ok_or("the domain XML has no <os> element")?;
    let os_end = xml[os_start..]
        .find("</os>")
        .ok_or("the domain XML has no </os>")?
        + os_start;
    let mut os: String = xml[os_start..os_end]
        .lines()
        .filter(|l| !l.trim_start().starts_with("<boot dev="))
        .collect::<Vec<_>>()
        .join("\n");
    let order = match dev {
        BootDevice::Pxe => "    <boot dev='network'/>\n    <boot dev='hd'/>\n  ",
        BootDevice::Disk => "    <boot dev='hd'/>\n    <boot dev='network'/>\n  ",
    };
    os.push('\n');
    os.push_str(order);
    Ok(format!("{}{}{}", &xml[..os_start], os, &xml[os_end..]))
}

impl PowerDriver for Virsh {
    fn bmc_key(&self) -> String {
        format!("virsh:{}:{}", self.uri, self.domain)
    }

    fn set_boot_device(&self, dev: BootDevice) -> BoxFuture<'_, DriverResult<()>> {
        Box::pin(self.with_domain(move |conn, d, me| {
            // The persistent definition (flag 2 = VIR_DOMAIN_XML_INACTIVE): it applies at next start.
            let xml = d.xml_desc(2).map_err(|e| me.err("read", e))?;
            let new = with_boot_order(&xml, dev).map_err(DriverError::Fatal)?;
            conn.define_domain_xml(&new)
                .map_err(|e| me.err("redefine", e))?;
            Ok(())
        }))
    }

    fn switch(&self, to: Switch) -> BoxFuture<'_, DriverResult<()>> {
        Box::pin(self.with_domain(move |_, d, me| {
            let running = d.is_active().map_err(|e| me.err("read", e))?;
            match (to, running) {
                (Switch::On, false) => d.create().map_err(|e| me.err("start", e)),
                (Switch::Off, true) => d.destroy().map_err(|e| me.err("stop", e)),
                _ => Ok(()),
            }
        }))
    }

    fn query(&self) -> BoxFuture<'_, DriverResult<PowerState>> {
        Box::pin(self.with_domain(|_, d, me| {
            let (state, _) = d.state().map_err(|e| me.err("read", e))?;
            Ok(match state {
                Enum::Known(
                    DomainState::Shutoff | DomainState::Shutdown | DomainState::Crashed,
                ) => PowerState::Off,
                Enum::Known(_) => PowerState::On,
                Enum::Unknown(_) => PowerState::Unknown,
            })
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_order_is_rewritten_inside_os_only() {
        let xml = "<domain>\n  <os>\n    <type arch='x86_64'>hvm</type>\n    <boot dev='hd'/>\n  </os>\n  <devices/>\n</domain>";
        let pxe = with_boot_order(xml, BootDevice::Pxe).unwrap();
        let net = pxe.find("<boot dev='network'/>").unwrap();
        let hd = pxe.find("<boot dev='hd'/>").unwrap();
        assert!(net < hd, "{pxe}");
        assert_eq!(pxe.matches("<boot dev=").count(), 2);
        assert!(pxe.contains("<type arch='x86_64'>hvm</type>"));
        let disk = with_boot_order(&pxe, BootDevice::Disk).unwrap();
        assert!(
            disk.find("<boot dev='hd'/>").unwrap() < disk.find("<boot dev='network'/>").unwrap()
        );
        // Per-device order: renumbered, no <boot dev> added.
        let dev = "<domain><os></os><devices><disk device='disk'><boot order='1'/></disk>\
                   <interface type='bridge'><boot order='2'/></interface></devices></domain>";
        let pxe = with_boot_order(dev, BootDevice::Pxe).unwrap();
        assert!(!pxe.contains("<boot dev"), "{pxe}");
        assert!(
            pxe.contains("<disk device='disk'><boot order='2'/></disk>"),
            "{pxe}"
        );
        assert!(pxe.contains("<boot order='1'/></interface>"), "{pxe}");
        assert!(with_boot_order("<domain/>", BootDevice::Pxe).is_err());
    }
}
