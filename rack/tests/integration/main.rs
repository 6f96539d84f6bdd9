//! Rack services against real clients, on loopback.
#![allow(clippy::unwrap_used)]

mod pods;
mod power;
mod storage;
mod tftp;
