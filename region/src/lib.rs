//! Kiln's region controller: the source of truth for machines, subnets, boot resources, racks,
//! users and events, served as a REST API under `/api/v1`; and the `kiln` command line.
//!
//! # Layout
//! - [`config`]: the TOML file + `KILN_*` environment + flags, validated once.
//! - [`db`]: diesel over SQLite or PostgreSQL (one code path), migrations, query functions.
//!   The only module that builds queries.
//! - [`domain`]: what the region decides: the machine lifecycle ([`domain::lifecycle`], pure),
//!   validation, machine/subnet/user operations.
//! - [`api`]: actix-web handlers, thin; the OpenAPI document.
//! - [`web`]: the operators' web UI (pages rendered by the `kiln-ui` crate's tera templates,
//!   htmx, live updates over Server-Sent Events).
//! - [`changes`]: the change bus feeding the UI's live pages (in process; `LISTEN/NOTIFY` between
//!   regions on PostgreSQL).
//! - [`store`]: boot-resource files on disk, by sha256, verified before they land.
//! - [`server`]: wires it together and runs the deadline task.
//! - [`cli`]: the `kiln` subcommands (admin commands open the database; client commands use the API).
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod api;
pub mod changes;
pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod logging;
pub mod metrics;
pub mod server;
pub mod store;
pub mod tls;
pub mod web;

pub use config::Config;
pub use error::{Error, Result};
pub use server::Region;
