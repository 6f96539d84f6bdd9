//! IPMI message bodies Kiln's IPMI driver sends (IPMI v2.0 spec, sections 28 and 22), and the
//! decoding of their answers. The driver wraps each as a raw command over an RMCP+ session.

use region_api_types::{BootDevice, PowerState};

/// Network function codes.
pub const NETFN_CHASSIS: u8 = 0x00;
pub const NETFN_APP: u8 = 0x06;

/// A request: network function, command, data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub netfn: u8,
    pub cmd: u8,
    pub data: Vec<u8>,
}

/// Get Chassis Status.
pub fn get_chassis_status() -> Command {
    Command {
        netfn: NETFN_CHASSIS,
        cmd: 0x01,
        data: vec![],
    }
}

/// What Chassis Control does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    PowerDown = 0,
    PowerUp = 1,
    PowerCycle = 2,
    HardReset = 3,
    /// ACPI soft shutdown (the OS sees a power button press).
    SoftOff = 5,
}

/// Chassis Control.
pub fn chassis_control(c: Control) -> Command {
    Command {
        netfn: NETFN_CHASSIS,
        cmd: 0x02,
        data: vec![c as u8],
    }
}

/// BIOS boot type requested with the boot device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootType {
    /// Leave the firmware's choice (legacy bit pattern, which BMCs treat as "don't care").
    Auto,
    Legacy,
    Efi,
}

impl BootType {
    pub fn parse(s: &str) -> BootType {
        match s {
            "efi" => BootType::Efi,
            "legacy" => BootType::Legacy,
            _ => BootType::Auto,
        }
    }
}

/// Set System Boot Options, parameter 5 (boot flags): boot from `dev` on the next boot only.
pub fn set_boot_device(dev: BootDevice, ty: BootType) -> Command {
    // Byte 1: bit 7 valid, bit 6 persistent (0: next boot only), bit 5 EFI.
    let flags1 = 0x80 | if ty == BootType::Efi { 0x20 } else { 0 };
    // Byte 2 bits 5..2: device selector (0001 PXE, 0010 hard disk).
    let selector = match dev {
        BootDevice::Pxe => 0x04,
        BootDevice::Disk => 0x08,
    };
    Command {
        netfn: NETFN_CHASSIS,
        cmd: 0x08,
        data: vec![0x05, flags1, selector, 0, 0, 0],
    }
}

/// Privilege levels as IPMI numbers them.
pub fn privilege_number(level: &str) -> u8 {
    match level {
        "USER" => 2,
        "ADMIN" => 4,
        _ => 3,
    }
}

/// Set Session Privilege Level: sessions start at USER; chassis control needs OPERATOR.
pub fn set_session_privilege(level: u8) -> Command {
    Command {
        netfn: NETFN_APP,
        cmd: 0x3B,
        data: vec![level],
    }
}

/// Close Session: frees the BMC's session slot at once instead of at its idle timeout.
pub fn close_session(session_id: u32) -> Command {
    Command {
        netfn: NETFN_APP,
        cmd: 0x3C,
        data: session_id.to_le_bytes().to_vec(),
    }
}

/// Get Session Info for the current session.
pub fn get_session_info() -> Command {
    Command {
        netfn: NETFN_APP,
        cmd: 0x3D,
        data: vec![0x00],
    }
}

/// Power state from a Get Chassis Status answer (byte 1, bit 0: system power is on).
pub fn power_state(status: &[u8]) -> Option<PowerState> {
    let b = *status.first()?;
    Some(if b & 1 == 1 {
        PowerState::On
    } else {
        PowerState::Off
    })
}

/// (slots, active sessions) from a Get Session Info answer.
pub fn session_counts(info: &[u8]) -> Option<(u8, u8)> {
    Some((*info.get(1)? & 0x3f, *info.get(2)? & 0x3f))
}

/// A completion code in words.
pub fn completion_code_text(cc: u8) -> &'static str {
    match cc {
        0x00 => "success",
        0xC0 => "node busy",
        0xC1 => "command not supported",
        0xC3 => "timeout while processing the command",
        0xC7 | 0xC8 => "request data length invalid",
        0xC9 => "parameter out of range",
        0xCC => "invalid data field in request",
        0xCD => "command illegal for this sensor or record",
        0xCE => "response could not be provided",
        0xD4 => "insufficient privilege level",
        0xD5 => "command not supported in the present state",
        0xD6 => "command sub-function disabled or unavailable",
        0xFF => "unspecified error",
        _ => "error",
    }
}

/// Whether a failed command may succeed on retry.
pub fn completion_code_retryable(cc: u8) -> bool {
    matches!(cc, 0xC0 | 0xC3 | 0xCE | 0xFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_flags_match_the_spec() {
        assert_eq!(
            set_boot_device(BootDevice::Pxe, BootType::Efi).data,
            [0x05, 0xA0, 0x04, 0, 0, 0]
        );
        assert_eq!(
            set_boot_device(BootDevice::Pxe, BootType::Legacy).data,
            [0x05, 0x80, 0x04, 0, 0, 0]
        );
        assert_eq!(
            set_boot_device(BootDevice::Disk, BootType::Auto).data,
            [0x05, 0x80, 0x08, 0, 0, 0]
        );
        assert_eq!(set_boot_device(BootDevice::Disk, BootType::Auto).cmd, 0x08);
    }

    #[test]
    fn chassis_commands() {
        assert_eq!(chassis_control(Control::SoftOff).data, [5]);
        assert_eq!(
            chassis_control(Control::PowerUp),
            Command {
                netfn: 0,
                cmd: 2,
                data: vec![1]
            }
        );
        assert_eq!(power_state(&[0x01, 0, 0]), Some(PowerState::On));
        assert_eq!(power_state(&[0x60, 0, 0]), Some(PowerState::Off));
        assert_eq!(power_state(&[]), None);
        assert_eq!(close_session(0x0102_0304).data, [4, 3, 2, 1]);
        assert_eq!(privilege_number("ADMIN"), 4);
        assert_eq!(privilege_number("OPERATOR"), 3);
        assert_eq!(session_counts(&[1, 0x44, 0x02]), Some((4, 2)));
        assert_eq!(completion_code_text(0xD4), "insufficient privilege level");
        assert!(!completion_code_retryable(0xD4));
    }
}
