//! Wire types shared by the gateway and by receivers: header names, resource states,
//! resource paths, the channel resource, the error envelope, dates and signatures.
//!
//! Nothing here depends on the server's runtime (tokio, axum, rusqlite), so the
//! `receiver` module builds on it with `default-features = false`.

pub mod error;
pub mod headers;
pub mod httpdate;
pub mod resource;
pub mod signature;
pub mod state;
pub mod watch;

pub use error::{ErrorEnvelope, ErrorItem};
pub use state::ResourceState;
