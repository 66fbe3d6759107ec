//! The alert center and its notifications.
//!
//! An alert is kept in the catalog under a fold key (what went wrong, and
//! where: `job_failed:backup:flow:<flow id>`): the same trouble again only
//! raises its [`AlertRecord::count`] and `last_seen`, and reopens it when it
//! had been resolved. A person acknowledges it (who and when are kept); the
//! server resolves it when the cause clears (a flow's next good run resolves
//! its failure alert).
//!
//! * `GET /api/v1/alerts?state=&severity=&source_kind=&source_id=&limit=&offset=`:
//!   an [`AlertPage`], newest first.
//! * `GET /api/v1/alerts/count`: [`AlertCount`] (the bell's number).
//! * `POST /api/v1/alerts/{id}/acknowledge`: the [`AlertRecord`] as acknowledged.
//! * `GET/POST /api/v1/notification-targets`, `GET/PUT/DELETE
//!   /api/v1/notification-targets/{id}`, `POST /api/v1/notification-targets/{id}/test`:
//!   webhooks and SMTP mailboxes that receive alerts of at least
//!   [`NotificationTarget::min_severity`]. Secrets (the webhook's signing
//!   secret, the SMTP password) are written, never read back.
//!
//! A webhook receives `POST` with a JSON [`WebhookPayload`] and the header
//! `X-Sendense-Signature: sha256=<hex HMAC-SHA256 of the body, keyed with the
//! shared secret>` (see [`SIGNATURE_HEADER`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use crate::ws::AlertSeverity;

/// Header carrying a webhook body's HMAC-SHA256 (`sha256=<hex>`).
pub const SIGNATURE_HEADER: &str = "X-Sendense-Signature";
/// Header naming the event of a webhook delivery (`alert.raised`, ...).
pub const EVENT_HEADER: &str = "X-Sendense-Event";
/// Header carrying the delivery's id (the same on every retry).
pub const DELIVERY_HEADER: &str = "X-Sendense-Delivery";

/// Longest title or fold key kept.
pub const KEY_MAX: usize = 255;
/// Most addresses one SMTP target sends to.
pub const RECIPIENTS_MAX: usize = 50;

impl AlertSeverity {
    pub const ALL: &'static [AlertSeverity] = &[AlertSeverity::Info, AlertSeverity::Warning, AlertSeverity::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertSeverity::Info => "info",
            AlertSeverity::Warning => "warning",
            AlertSeverity::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<AlertSeverity> {
        AlertSeverity::ALL.iter().copied().find(|v| v.as_str() == s)
    }

    /// 0 (info) to 2 (critical): routing sends an alert to every target
    /// whose minimum rank it reaches.
    pub fn rank(self) -> u8 {
        match self {
            AlertSeverity::Info => 0,
            AlertSeverity::Warning => 1,
            AlertSeverity::Critical => 2,
        }
    }
}

impl std::fmt::Display for AlertSeverity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

wire_enum! {
    /// Where an alert stands.
    pub enum AlertState {
        /// Raised and not yet seen to by anyone.
        Open = "open",
        /// A person took it on; it stays until its cause clears.
        Acknowledged = "acknowledged",
        /// Its cause cleared (or, for one-off events, never resolves).
        Resolved = "resolved",
    }
}

wire_enum! {
    /// What an alert is about; with [`AlertRecord::source_id`] it points at
    /// one object by its stable id.
    pub enum AlertSourceKind {
        /// A backup flow (`flows`).
        Flow = "flow",
        /// A replication flow.
        Replication = "replication",
        /// A managed VM (VM context), for work not run by a flow.
        Vm = "vm",
        /// A repository (verify, GC, prune).
        Repository = "repository",
        /// A protection group (site failover).
        Group = "group",
        /// The server itself.
        System = "system",
    }
}

/// One alert as the catalog keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlertRecord {
    pub id: String,
    pub severity: AlertSeverity,
    pub state: AlertState,
    pub source_kind: AlertSourceKind,
    /// The source's id (flow, VM, repository ...); none for the server itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
    /// What folds repeats together.
    pub fold_key: String,
    pub title: String,
    /// The latest occurrence's message.
    pub message: String,
    /// The job of the latest occurrence, when a job raised it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// How many times it was raised (repeats folded).
    pub count: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<DateTime<Utc>>,
    /// Why it was resolved (`backup of flow nightly succeeded`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
}

/// A page of alerts, newest `last_seen` first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlertPage {
    pub alerts: Vec<AlertRecord>,
    /// Alerts matching the filters, across all pages.
    pub total: u64,
}

/// Counts for the bell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlertCount {
    /// Open alerts nobody acknowledged yet.
    pub unacknowledged: u64,
    /// Of those, critical ones.
    pub critical: u64,
}

wire_enum! {
    /// How a notification is delivered.
    pub enum TargetKind {
        /// JSON `POST` signed with HMAC-SHA256 of a shared secret.
        Webhook = "webhook",
        /// E-mail over SMTP.
        Smtp = "smtp",
    }
}

wire_enum! {
    /// How the SMTP connection is protected.
    #[derive(Default)]
    pub enum SmtpSecurity {
        /// Plain connection upgraded with STARTTLS (port 587); refused if the server does not offer it.
        #[default]
        Starttls = "starttls",
        /// TLS from the first byte (port 465).
        Tls = "tls",
        /// No encryption: only for a relay on the same machine.
        None = "none",
    }
}

/// Where a webhook posts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookSettings {
    /// `http://` or `https://` URL.
    pub url: String,
}

/// An SMTP server and the mail it sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    #[serde(default)]
    pub security: SmtpSecurity,
    /// AUTH user name; none: no AUTH.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The sender address.
    pub from: String,
    /// Recipient addresses.
    pub to: Vec<String>,
    /// A PEM CA certificate trusted besides the system's (a private mail server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
}

/// The outcome of the latest delivery to a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeliveryResult {
    pub at: DateTime<Utc>,
    pub ok: bool,
    /// Why it failed (as the receiver or the network said).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The event delivered (`alert.raised`, `alert.resolved`, `test`).
    pub event: String,
}

/// A notification target as the API shows it: never its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotificationTarget {
    pub id: String,
    pub name: String,
    pub kind: TargetKind,
    pub enabled: bool,
    /// Alerts at least this severe are sent here.
    pub min_severity: AlertSeverity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp: Option<SmtpSettings>,
    /// Whether a secret (signing secret, SMTP password) is stored.
    pub has_secret: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_delivery: Option<DeliveryResult>,
    /// Deliveries waiting for a retry.
    pub pending: u64,
    /// Deliveries that gave up after every retry.
    pub failed: u64,
    pub created_at: DateTime<Utc>,
}

/// `POST /api/v1/notification-targets` and `PUT .../{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TargetRequest {
    pub name: String,
    pub kind: TargetKind,
    #[serde(default = "yes")]
    pub enabled: bool,
    pub min_severity: AlertSeverity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp: Option<SmtpSettings>,
    /// The webhook's signing secret or the SMTP password. On update, left
    /// out: unchanged; `""`: removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

fn yes() -> bool {
    true
}

/// Shortest webhook signing secret.
pub const SECRET_MIN: usize = 16;

fn check_address(field: &str, a: &str) -> Result<(), (String, String)> {
    let ok = a.len() <= 254
        && !a.chars().any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>')
        && a.split_once('@').is_some_and(|(l, d)| !l.is_empty() && !d.is_empty() && !d.contains('@'));
    if ok {
        Ok(())
    } else {
        Err((field.to_owned(), format!("'{a}' is not an e-mail address (name@example.com).")))
    }
}

impl TargetRequest {
    /// Checks the request; `Err((field, message))` says what to change.
    /// `secret_stored`: an update keeping a stored secret.
    pub fn validate(&self, secret_stored: bool) -> Result<(), (String, String)> {
        crate::validate_name("notification target", &self.name).map_err(|m| ("name".to_owned(), m))?;
        let has_secret = match self.secret.as_deref() {
            Some("") => false,
            Some(_) => true,
            None => secret_stored,
        };
        match self.kind {
            TargetKind::Webhook => {
                let Some(w) = &self.webhook else {
                    return Err(("webhook".into(), "A webhook target needs `webhook` with its `url`.".into()));
                };
                if self.smtp.is_some() {
                    return Err(("smtp".into(), "A webhook target takes no `smtp` settings.".into()));
                }
                let rest = w.url.strip_prefix("https://").or_else(|| w.url.strip_prefix("http://"));
                let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or(""));
                if host.is_none_or(str::is_empty) || w.url.len() > 2000 || w.url.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(("webhook.url".into(), format!("'{}' is not an http:// or https:// URL with a host.", w.url)));
                }
                if !has_secret {
                    return Err(("secret".into(), format!("A webhook needs a signing secret (at least {SECRET_MIN} characters) to sign its requests.")));
                }
                if let Some(s) = self.secret.as_deref().filter(|s| !s.is_empty()) {
                    if s.chars().count() < SECRET_MIN {
                        return Err(("secret".into(), format!("The signing secret needs at least {SECRET_MIN} characters.")));
                    }
                }
            }
            TargetKind::Smtp => {
                let Some(s) = &self.smtp else {
                    return Err(("smtp".into(), "An SMTP target needs `smtp` with host, port, from and to.".into()));
                };
                if self.webhook.is_some() {
                    return Err(("webhook".into(), "An SMTP target takes no `webhook` settings.".into()));
                }
                if s.host.trim().is_empty() || s.host.len() > 253 || s.host.chars().any(|c| c.is_whitespace() || c.is_control() || c == '/') {
                    return Err(("smtp.host".into(), "Enter the SMTP server's host name or address.".into()));
                }
                if s.port == 0 {
                    return Err(("smtp.port".into(), "Enter the SMTP port (587 for STARTTLS, 465 for TLS).".into()));
                }
                check_address("smtp.from", &s.from)?;
                if s.to.is_empty() || s.to.len() > RECIPIENTS_MAX {
                    return Err(("smtp.to".into(), format!("Enter 1 to {RECIPIENTS_MAX} recipient addresses.")));
                }
                for a in &s.to {
                    check_address("smtp.to", a)?;
                }
                if let Some(u) = &s.username {
                    if u.is_empty() || u.len() > 255 || u.chars().any(char::is_control) {
                        return Err(("smtp.username".into(), "The SMTP user name must be 1 to 255 characters without control characters.".into()));
                    }
                    if !has_secret {
                        return Err(("secret".into(), "SMTP AUTH needs the password as `secret`.".into()));
                    }
                    if s.security == SmtpSecurity::None {
                        return Err(("smtp.security".into(), "A password is never sent unencrypted: choose starttls or tls.".into()));
                    }
                }
                if let Some(p) = &s.ca_pem {
                    let stray = p.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'));
                    if !p.contains("-----BEGIN CERTIFICATE-----") || p.len() > 64 * 1024 || stray {
                        return Err(("smtp.ca_pem".into(), "The CA certificate must be PEM (-----BEGIN CERTIFICATE-----).".into()));
                    }
                }
            }
        }
        if self.secret.as_deref().is_some_and(|s| s.len() > 4096 || s.chars().any(|c| c.is_control())) {
            return Err(("secret".into(), "The secret must be at most 4096 characters without control characters.".into()));
        }
        Ok(())
    }
}

/// `POST /api/v1/notification-targets/{id}/test`: one attempt, now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TestResult {
    pub delivered: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How long the attempt took.
    pub millis: u64,
}

/// What a webhook receives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookPayload {
    /// `alert.raised`, `alert.resolved` or `test`.
    pub event: String,
    /// The delivery's id (also in [`DELIVERY_HEADER`]).
    pub delivery_id: String,
    pub sent_at: DateTime<Utc>,
    /// The alert as it was when the event happened; none for a test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<AlertRecord>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn webhook(secret: Option<&str>) -> TargetRequest {
        TargetRequest {
            name: "ops".into(),
            kind: TargetKind::Webhook,
            enabled: true,
            min_severity: AlertSeverity::Warning,
            webhook: Some(WebhookSettings { url: "https://hooks.example.com/x".into() }),
            smtp: None,
            secret: secret.map(str::to_owned),
        }
    }

    #[test]
    fn webhooks_need_a_url_and_a_secret() {
        assert!(webhook(Some("0123456789abcdef")).validate(false).is_ok());
        assert_eq!(webhook(None).validate(false).unwrap_err().0, "secret");
        assert!(webhook(None).validate(true).is_ok());
        assert_eq!(webhook(Some("short")).validate(false).unwrap_err().0, "secret");
        let mut r = webhook(Some("0123456789abcdef"));
        r.webhook = Some(WebhookSettings { url: "ftp://x".into() });
        assert_eq!(r.validate(false).unwrap_err().0, "webhook.url");
    }

    #[test]
    fn smtp_passwords_never_go_in_clear() {
        let r = TargetRequest {
            name: "mail".into(),
            kind: TargetKind::Smtp,
            enabled: true,
            min_severity: AlertSeverity::Critical,
            webhook: None,
            smtp: Some(SmtpSettings {
                host: "mail.example.com".into(),
                port: 587,
                security: SmtpSecurity::None,
                username: Some("u".into()),
                from: "sendense@example.com".into(),
                to: vec!["ops@example.com".into()],
                ca_pem: None,
            }),
            secret: Some("pw".into()),
        };
        assert_eq!(r.validate(false).unwrap_err().0, "smtp.security");
        assert!(AlertSeverity::Critical.rank() > AlertSeverity::Warning.rank());
    }
}
