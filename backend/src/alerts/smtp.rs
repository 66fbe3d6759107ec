//! E-mail delivery over SMTP (lettre's client on tokio and rustls):
//! STARTTLS (required: a server that does not offer it is an error, never a
//! silent plain-text fallback), TLS from the first byte, or plain for a
//! local relay; AUTH with the target's user name and password. The server's
//! certificate is checked against the system's roots plus the target's own
//! CA certificate when it names one.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use shared_types::alerts::{SmtpSecurity, SmtpSettings};

/// Longest wait for each SMTP command.
pub const TIMEOUT: Duration = Duration::from_secs(15);

/// A mail to send.
pub struct Mail {
    pub subject: String,
    pub body: String,
}

fn mailbox(field: &str, a: &str) -> Result<Mailbox, String> {
    a.parse::<Mailbox>().map_err(|e| format!("{field} '{a}' is not an e-mail address: {e}"))
}

/// The name this machine greets with (EHLO).
fn hello_name() -> ClientId {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'))
        .map(ClientId::Domain)
        .unwrap_or_else(|| ClientId::Domain("sendense.localdomain".into()))
}

/// Sends `mail` to every recipient of `s` in one SMTP transaction.
pub async fn send(s: &SmtpSettings, password: Option<&str>, mail: &Mail) -> Result<(), String> {
    let mut message = Message::builder().from(mailbox("from", &s.from)?).subject(mail.subject.clone());
    for to in &s.to {
        message = message.to(mailbox("to", to)?);
    }
    let message = message
        .header(ContentType::TEXT_PLAIN)
        .body(mail.body.clone())
        .map_err(|e| format!("building the mail: {e}"))?;
    let tls = || -> Result<TlsParameters, String> {
        let mut b = TlsParameters::builder(s.host.clone());
        if let Some(pem) = &s.ca_pem {
            b = b.add_root_certificate(Certificate::from_pem(pem.as_bytes()).map_err(|e| format!("the CA certificate: {e}"))?);
        }
        b.build_rustls().map_err(|e| format!("TLS settings: {e}"))
    };
    let mut t = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(s.host.clone())
        .port(s.port)
        .hello_name(hello_name())
        .timeout(Some(TIMEOUT))
        .tls(match s.security {
            SmtpSecurity::Starttls => Tls::Required(tls()?),
            SmtpSecurity::Tls => Tls::Wrapper(tls()?),
            SmtpSecurity::None => Tls::None,
        });
    if let Some(user) = &s.username {
        let password = password.ok_or("the SMTP password is not stored: enter it again")?;
        t = t.credentials(Credentials::new(user.clone(), password.to_owned()));
    }
    let transport = t.build();
    let send = transport.send(message);
    match tokio::time::timeout(TIMEOUT * 4, send).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("SMTP {}:{}: {}", s.host, s.port, describe(&e))),
        Err(_) => Err(format!("SMTP {}:{}: no answer within {} s", s.host, s.port, (TIMEOUT * 4).as_secs())),
    }
}

/// lettre's error with its causes (the cause says what the server refused).
fn describe(e: &lettre::transport::smtp::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}
