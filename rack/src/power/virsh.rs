//! libvirt domains (MAAS's `virsh` power type) through the `virt` crate (libvirt's C library):
//! start and destroy the domain, read its state, and put network or disk first in its boot order.
//! libvirt calls block, so they run on tokio's blocking pool.

use futures_util::future::BoxFuture;
use rack_proto::power::{ParamError, Params};
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
        let r = if self.pass.is_empty() {
            Connect::open(Some(&self.uri))
        } else {
            PASSWORD.with(|p| *p.borrow_mut() = self.pass.clone());
            let mut auth = ConnectAuth::new(
                vec![
                    ConnectCredentialType::Passphrase,
                    ConnectCredentialType::NoEchoPrompt,
                ],
                fill_password,
            );
            let r = Connect::open_auth(Some(&self.uri), &mut auth, 0);
            PASSWORD.with(|p| p.borrow_mut().clear());
            r
        };
        r.map_err(|e| {
            let text = format!("cannot connect to libvirt at {}: {}", self.uri, e.message());
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

    fn err(&self, what: &str, e: virt::error::Error) -> DriverError {
        DriverError::Retryable(format!(
            "libvirt at {}: cannot {what} domain '{}': {}",
            self.uri,
            self.domain,
            e.message()
        ))
    }
}

/// Puts `first` then the other of network/hd as the `<os>` boot order of a domain's XML.
/// Devices with their own `<boot order=.../>` are left alone (libvirt refuses both at once).
pub fn with_boot_order(xml: &str, dev: BootDevice) -> Result<String, String> {
    if xml.contains("<boot order=") {
        return Err(
            "the domain sets per-device boot order; Kiln only edits <os><boot dev=.../>".into(),
        );
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
        assert!(with_boot_order(
            "<domain><disk><boot order='1'/></disk><os></os></domain>",
            BootDevice::Pxe
        )
        .is_err());
        assert!(with_boot_order("<domain/>", BootDevice::Pxe).is_err());
    }
}
