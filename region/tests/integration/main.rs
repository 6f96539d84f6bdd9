//! Integration tests of the region: the real HTTP server on `127.0.0.1:0` against a real database.
//! Every database test runs twice, on SQLite and on PostgreSQL (`TEST_DATABASE_URL`, an admin URL
//! of a server the test may create databases on; `tests/run.sh` starts one).
#![allow(clippy::unwrap_used)]

mod util;

mod api_auth;
mod api_boot_resources;
mod api_commissioning;
mod api_deploy;
mod api_dns;
mod api_machines;
mod api_power;
mod api_rack_power;
mod api_racks;
mod api_schema;
mod api_subnets;
mod api_tls;
mod api_trust;
mod api_volumes;
mod api_walk;
mod crash;
mod db;
mod e2e;
mod e2e_deploy;
mod e2e_iscsi;
mod e2e_pods;
mod e2e_ui;
mod multi_region;
mod netns;
mod rack_boot;
mod rack_dhcp;
mod rack_dns;
mod rack_faults;
mod rack_proxy;
mod ui_browser;
mod web_racks;
mod web_ui;
