//! Sign-in, sessions, roles and the audit trail.
//!
//! Invariants:
//! * Default deny: [`middleware::authenticate`] wraps every `/api/v1` route.
//!   [`policy::access`] names the few public routes; every other route needs
//!   a valid session, and the role the policy asks for (GET: viewer, other
//!   methods: operator, users/audit: admin). A route added later is protected
//!   without doing anything.
//! * Tokens are 256 random bits; the catalog keeps only their SHA-256
//!   digest, so a copy of the catalog does not sign anyone in.
//! * A session ends at its expiry, at sign-out, or when an admin disables the
//!   user or resets their password; open WebSockets of that session close.
//! * Failed sign-ins are throttled per username and per address; the answer
//!   is the same whether or not the user exists, and a password is hashed
//!   either way so timing does not tell.
//! * Every mutating request is written to the audit log with its outcome.
//! * Mutating requests and the WebSocket upgrade sent by a browser on behalf
//!   of another site are refused before authentication ([`origin`]).

pub mod audit;
pub mod bootstrap;
pub mod middleware;
pub mod origin;
pub mod password;
pub mod policy;
pub mod session;
pub mod throttle;

pub use middleware::AuthUser;
