//! IPMI 2.0 over LAN (RMCP+, cipher suite 3) on the `ipmi-rs` crate (patched copy in
//! `rack/vendor/ipmi-rs`). Every call opens a session, raises it to the configured privilege
//! (sessions start at USER), sends its commands and closes the session, so polling never eats the
//! BMC's few session slots. The crate's socket is blocking: calls run on tokio's blocking pool.

use std::time::Duration;

use futures_util::future::BoxFuture;
use ipmi_rs::app::auth::PrivilegeLevel;
use ipmi_rs::connection::{IpmiConnection, LogicalUnit, Message, Request, RequestTargetAddress};
use ipmi_rs::rmcp::{ActivationError, Rmcp, V2_0ActivationError};
use rack_proto::power::ipmi as wire;
use region_api_types::power_params::{ParamError, Params};
use region_api_types::{BootDevice, PowerState};

use super::{DriverError, DriverResult, PowerDriver, Switch};

/// How long to wait for each BMC answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(3);

/// An IPMI BMC.
#[derive(Debug, Clone)]
pub struct Ipmi {
    address: String,
    port: u16,
    user: String,
    pass: String,
    privilege: String,
    boot_type: wire::BootType,
    soft_off: bool,
}

impl Ipmi {
    pub fn new(p: &Params<'_>) -> Result<Ipmi, ParamError> {
        Ok(Ipmi {
            address: p.required("power_address")?,
            port: p.u16("power_port")?,
            user: p.str("power_user"),
            pass: p.str("power_pass"),
            privilege: p.str("privilege_level"),
            boot_type: wire::BootType::parse(&p.str("power_boot_type")),
            soft_off: p.str("power_off_mode") == "soft",
        })
    }

    fn at(&self) -> String {
        if self.port == 623 {
            self.address.clone()
        } else {
            format!("{}:{}", self.address, self.port)
        }
    }

    /// Runs `cmds` in one session; returns each answer's data.
    async fn session(&self, cmds: Vec<wire::Command>) -> DriverResult<Vec<Vec<u8>>> {
        let me = self.clone();
        match tokio::task::spawn_blocking(move || me.session_blocking(&cmds)).await {
            Ok(r) => r,
            Err(e) => Err(DriverError::Retryable(format!(
                "the IPMI client failed on an answer from {}: {e}",
                self.at()
            ))),
        }
    }

    fn session_blocking(&self, cmds: &[wire::Command]) -> DriverResult<Vec<Vec<u8>>> {
        let at = self.at();
        let mut rmcp =
            Rmcp::new((self.address.as_str(), self.port), ANSWER_TIMEOUT).map_err(|e| {
                DriverError::Fatal(format!("cannot resolve BMC address {}: {e}", self.address))
            })?;
        let level = match self.privilege.as_str() {
            "USER" => PrivilegeLevel::User,
            "ADMIN" => PrivilegeLevel::Administrator,
            _ => PrivilegeLevel::Operator,
        };
        rmcp.activate_with_privilege(true, Some(&self.user), Some(self.pass.as_bytes()), level)
            .map_err(|e| self.activation_error(e))?;
        let session_id = rmcp.session_id();
        let mut all = vec![wire::set_session_privilege(wire::privilege_number(
            &self.privilege,
        ))];
        all.extend(cmds.iter().cloned());
        let mut out = Vec::new();
        let mut result = Ok(());
        for c in &all {
            match send(&mut rmcp, c) {
                Ok(data) => out.push(data),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        if let Some(id) = session_id {
            // Best effort: a lost answer only means the BMC times the session out itself.
            let _ = send(&mut rmcp, &wire::close_session(id));
        }
        result.map_err(|e| match e {
            SendError::Timeout => DriverError::Retryable(format!(
                "the BMC at {at} stopped answering in {} s",
                ANSWER_TIMEOUT.as_secs()
            )),
            SendError::Io(m) => DriverError::Retryable(format!("IPMI to {at}: {m}")),
            SendError::Completion(cmd, cc)
                if cmd.cmd == 0x3B && matches!(cc, 0x80 | 0x81 | 0xD4) =>
            {
                DriverError::Fatal(format!(
                    "user '{}' at {at} may not work at privilege {} (the BMC said: {})",
                    self.user,
                    self.privilege,
                    wire::completion_code_text(cc)
                ))
            }
            SendError::Completion(cmd, cc) => {
                let text = format!(
                    "the BMC at {at} refused command {:#04x}/{:#04x}: {} ({cc:#04x})",
                    cmd.netfn,
                    cmd.cmd,
                    wire::completion_code_text(cc)
                );
                if wire::completion_code_retryable(cc) {
                    DriverError::Retryable(text)
                } else {
                    DriverError::Fatal(text)
                }
            }
        })?;
        // Drop the answer to Set Session Privilege Level.
        out.remove(0);
        Ok(out)
    }

    fn activation_error(&self, e: ActivationError) -> DriverError {
        let at = self.at();
        match e {
            ActivationError::PongReceive(io) | ActivationError::PingSend(io)
                if matches!(
                    io.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                DriverError::Retryable(format!(
                    "no answer from {at} in {} s",
                    ANSWER_TIMEOUT.as_secs()
                ))
            }
            ActivationError::PongReceive(io) | ActivationError::PingSend(io) => {
                DriverError::Retryable(format!("cannot reach the BMC at {at}: {io}"))
            }
            ActivationError::BindSocket(io) => {
                DriverError::Retryable(format!("cannot open a socket for {at}: {io}"))
            }
            ActivationError::V2_0(V2_0ActivationError::ServerAuthenticationFailed)
            | ActivationError::V2_0(V2_0ActivationError::RakpMessage4InvalidIntegrityCheckValue) => {
                DriverError::Retryable(format!("wrong password for user {} at {at}", self.user))
            }
            ActivationError::V2_0(V2_0ActivationError::RakpMessage2Parse(p)) => {
                DriverError::Retryable(format!("the BMC at {at} refused user {}: {p:?}", self.user))
            }
            ActivationError::V2_0(V2_0ActivationError::UnsupportedAlgorithms) => {
                DriverError::Fatal(format!("the BMC at {at} does not offer cipher suite 3"))
            }
            ActivationError::IpmiNotSupported | ActivationError::NoSupportedIpmiLANVersions => {
                DriverError::Fatal(format!("{at} does not speak IPMI 2.0 over LAN"))
            }
            other => DriverError::Retryable(format!("IPMI session with {at} failed: {other:?}")),
        }
    }
}

enum SendError {
    Timeout,
    Io(String),
    Completion(wire::Command, u8),
}

fn send(rmcp: &mut Rmcp, c: &wire::Command) -> Result<Vec<u8>, SendError> {
    let mut req = Request::new(
        Message::new_raw(c.netfn, c.cmd, c.data.clone()),
        RequestTargetAddress::Bmc(LogicalUnit::Zero),
    );
    let resp = rmcp.send_recv(&mut req).map_err(|e| {
        let text = format!("{e:?}");
        if text.contains("WouldBlock") || text.contains("TimedOut") {
            SendError::Timeout
        } else {
            SendError::Io(text)
        }
    })?;
    if resp.cc() != 0 {
        return Err(SendError::Completion(c.clone(), resp.cc()));
    }
    Ok(resp.data().to_vec())
}

impl PowerDriver for Ipmi {
    fn bmc_key(&self) -> String {
        format!("ipmi:{}:{}", self.address, self.port)
    }

    fn set_boot_device(&self, dev: BootDevice) -> BoxFuture<'_, DriverResult<()>> {
        Box::pin(async move {
            self.session(vec![wire::set_boot_device(dev, self.boot_type)])
                .await?;
            Ok(())
        })
    }

    fn switch(&self, to: Switch) -> BoxFuture<'_, DriverResult<()>> {
        let c = match to {
            Switch::On => wire::Control::PowerUp,
            Switch::Off if self.soft_off => wire::Control::SoftOff,
            Switch::Off => wire::Control::PowerDown,
        };
        Box::pin(async move {
            self.session(vec![wire::chassis_control(c)]).await?;
            Ok(())
        })
    }

    fn query(&self) -> BoxFuture<'_, DriverResult<PowerState>> {
        Box::pin(async move {
            let out = self.session(vec![wire::get_chassis_status()]).await?;
            out.first()
                .and_then(|d| wire::power_state(d))
                .ok_or_else(|| {
                    DriverError::Retryable(format!(
                        "the BMC at {} sent an empty chassis status",
                        self.at()
                    ))
                })
        })
    }
}

/// (slots, active sessions) the BMC reports, from inside a session of our own (tests use this to
/// check that sessions are closed).
pub async fn session_counts(ipmi: &Ipmi) -> DriverResult<(u8, u8)> {
    let out = ipmi.session(vec![wire::get_session_info()]).await?;
    out.first()
        .and_then(|d| wire::session_counts(d))
        .ok_or_else(|| DriverError::Retryable("short Get Session Info answer".into()))
}
