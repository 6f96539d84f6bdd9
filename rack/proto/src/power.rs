//! The pure parts of the power protocols: [`ipmi`] message bodies and [`redfish`] documents. The
//! drivers' settings (registry, validation, typed access) are `region_api_types::power_params`,
//! shared with the region; the drivers themselves (sockets, HTTP, libvirt) live in the `rack`
//! crate, one module each.

pub mod ipmi;
pub mod redfish;
