//! Types that cross the wire between the Sendense server and its clients.
//!
//! Everything here is plain `serde` data with pure validation: no I/O, no
//! async runtime, so it compiles for the browser (wasm32) as well as for the
//! server and for any Rust program that talks to the Sendense API.
//!
//! * [`auth`]: users, roles, sign-in.
//! * [`audit`]: the audit log.
//! * [`error`]: the one JSON body every failed request answers with.
//! * [`health`]: `GET /api/v1/health` and the live system health figures.
//! * [`platform`]: platforms, their discovered inventory and disk formats.
//! * [`ws`]: the messages pushed on the `/api/v1/ws` WebSocket.
//!
//! The API is versioned by its path prefix ([`API_PREFIX`]); this crate's
//! version follows semver for the shapes it defines.
//!
//! The `openapi` feature derives `utoipa::ToSchema` for the server's OpenAPI
//! document; browsers and scripts leave it off.

pub mod audit;
pub mod auth;
pub mod error;
pub mod health;
pub mod platform;
pub mod ws;

/// Every REST route lives below this prefix.
pub const API_PREFIX: &str = "/api/v1";

/// Path of the WebSocket endpoint.
pub const WS_PATH: &str = "/api/v1/ws";
