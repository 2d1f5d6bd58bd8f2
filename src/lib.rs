//! watchwire: a push-notification gateway with Google-compatible watch channels.
//!
//! Module map (ARCHITECTURE.md has the long version):
//! - [`protocol`]: wire types shared by the gateway and receivers.
//! - [`receiver`]: receiver-side validation; builds with `default-features = false`.
//! - with the `server` feature: [`config`], [`server`] (wires everything together),
//!   [`api`] (HTTP), [`store`] (durable log and channels), [`delivery`] (routing,
//!   per-channel outboxes, retries, outbound client), [`cluster`] (the nodes of a
//!   gateway on one PostgreSQL database), [`cli`] (`watchwire serve` and
//!   `watchwire receive`). Imports go down: cli → server → api, cluster → delivery →
//!   store → model, protocol.

pub mod protocol;
pub mod receiver;

#[cfg(feature = "server")]
pub mod api;
#[cfg(feature = "server")]
pub mod channel_view;
#[cfg(feature = "server")]
pub mod cidr;
#[cfg(feature = "server")]
pub mod cli;
#[cfg(feature = "server")]
pub mod cluster;
#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "server")]
pub mod delivery;
#[cfg(feature = "server")]
pub mod endpoint_auth;
#[cfg(feature = "server")]
pub mod filter;
#[cfg(feature = "server")]
pub mod memo;
#[cfg(feature = "server")]
pub mod model;
#[cfg(feature = "server")]
pub mod operational;
#[cfg(feature = "server")]
mod output;
#[cfg(feature = "server")]
pub mod pem;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub mod store;
#[cfg(feature = "server")]
mod telemetry;
#[cfg(feature = "server")]
pub mod trace;
