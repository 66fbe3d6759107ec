//! The Sendense server as a library: the binary in `main.rs` is a thin shell
//! over [`cli::run`], and tests drive [`api::router`] directly.
//!
//! Rooms:
//! * [`api`]: HTTP routes, extractors, the error type and its mapping to the
//!   shared error body, the WebSocket.
//! * [`auth`]: sign-in, sessions, roles, throttling and the audit log.
//! * [`catalog`]: catalog logic shared by the API and the job runner
//!   (discovery, the managed-VM list, flows, repositories, restore points).
//! * [`db`]: the catalog connection and its SeaORM entities.
//! * [`engine`]: the backup engine (chunk store, snapshots, GC, retention).
//! * [`jobs`]: VM backup and restore, joining a platform and the engine.
//! * [`key_command`]: `sendense key export` (repository keys for safekeeping).
//! * [`platforms`]: platform connectors (KVM/QEMU) behind one trait.
//! * [`lab`]: the demo lab (KVM hosts with real VMs) and its activity.
//! * [`markup`]: text made safe in XML and HTML.
//! * [`replication`]: replicas on a standby KVM host: syncs from changed
//!   blocks, restore points, test failover, failover, rollback, cleanup.
//! * [`repos`]: repository backends (local directory, S3, Azure Blob) behind
//!   the engine's storage trait, chosen by a [`repos::RepoSpec`].
//! * [`restore`]: file-level restore sessions on restore points (`guest-fs`).
//! * [`runner`]: the job queue, its limits, the scheduler and live job telemetry.
//! * [`telemetry`]: logging and live system health.
//! * [`confinement`]: where restored files may land and platforms may live.
//! * [`server`]: start-up, the listener and graceful shutdown.
//! * [`sparse_file`]: data extents of sparse files and copies that keep holes.
//! * [`tls`]: HTTPS (certificate files or a generated self-signed one).
//! * [`web_security`]: the security headers every response carries (CSP,
//!   HSTS under TLS, nosniff, referrer policy).

pub mod alerts;
pub mod api;
pub mod auth;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod confinement;
pub mod db;
pub mod engine;
pub mod jobs;
pub mod key_command;
pub mod lab;
pub mod markup;
pub mod platforms;
pub mod replication;
pub mod reports;
pub mod repos;
pub mod restore;
pub mod runner;
pub mod server;
pub mod spa;
pub mod sparse_file;
pub mod state;
pub mod telemetry;
pub mod tls;
pub mod web_security;

/// The server's version, as reported by the health endpoint and the cockpit.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
