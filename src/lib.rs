//! scopegate: an authentication sidecar for booking APIs.
//!
//! It verifies the credential on each request, strips everything a client could
//! use to lie about who it is, adds trusted scope headers, and forwards the
//! request to the legacy backend. See `README.md` for the header contract.
//!
//! The request path lives in [`proxy`]; configuration in [`config`]; the header
//! contract in [`scope`]; credential schemes under [`auth`].

pub mod actions;
pub mod auth;
pub mod body;
pub mod clock;
pub mod config;
pub mod cors;
pub mod error;
pub mod explain;
pub mod limit;
pub mod listing;
pub mod metrics;
pub mod path;
pub mod proxy;
pub mod routes;
pub mod scope;
pub mod secret;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod upstream;

pub use config::Config;
pub use server::{start, start_with_clock, Running};
