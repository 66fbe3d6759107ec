//! The alert center: the one place the server raises, folds, resolves and
//! acknowledges alerts, and sends them on to notification targets.
//!
//! * [`center`]: [`AlertCenter`]: raise (fold by key: a repeat adds to the
//!   count and `last_seen`, and reopens a resolved alert), resolve by key
//!   when the cause clears, acknowledge; every change is broadcast on the
//!   WebSocket (`alert`, `alert_count`).
//! * [`keys`]: the fold keys, one function per kind of trouble, so the code
//!   that raises and the code that resolves agree.
//! * [`delivery`]: the notification queue (`notification_deliveries`):
//!   routing by minimum severity, a worker that sends and retries with
//!   backoff, and each target's latest outcome.
//! * [`webhook`], [`smtp`]: the two ways out.
//! * [`targets`]: notification targets between the catalog and the API.
//! * [`secrets`]: secrets sealed in the catalog with the server's key.
//!
//! Invariants: one row per fold key (unique index); raises are serialised
//! in this process so a fold never loses a count; a notification is queued
//! in the catalog before any attempt, so a restart loses none (the worker
//! picks pending ones up again).

pub mod center;
pub mod delivery;
pub mod keys;
pub mod secrets;
pub mod smtp;
pub mod targets;
pub mod webhook;

pub use center::{AlertCenter, Raise};
