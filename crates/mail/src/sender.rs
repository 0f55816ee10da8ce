//! The sender: one SMTP transport built from `[smtp]`, or none when mail is not configured.

use std::str::FromStr;

use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Mailbox, Message as LettreMessage, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use selextract_accounts::Email;
use selextract_config::ExposeSecret;

use crate::config::{SmtpConfig, TlsMode};
use crate::messages::Message;

/// Why `[smtp]` cannot become a sender. Each names its key.
#[derive(Debug, thiserror::Error)]
pub enum MailerBuildError {
    #[error("`smtp.from`: {0:?} is not an e-mail address or `Name <address>`")]
    InvalidFrom(String),
    #[error("`smtp.host`: {0}")]
    Tls(String),
}

/// Why one message was not handed to the server.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// No `smtp.host`: this installation sends no mail.
    #[error("e-mail is not configured on this server (no smtp.host)")]
    NotConfigured,
    /// The recipient is a valid account address that SMTP cannot carry (lettre's address
    /// rules are stricter than the accounts crate's).
    #[error("the address {0} cannot be used as an SMTP recipient")]
    InvalidRecipient(String),
    #[error("building the message: {0}")]
    Build(String),
    /// Connecting, TLS, authentication or the server's refusal.
    #[error("sending through the SMTP server: {0}")]
    Smtp(String),
}

/// Sends the service's mail. Cheap to share behind an `Arc`; each message opens its own
/// connection (account mail is rare, so no pool is kept).
pub struct Mailer {
    /// `None` when mail is not configured.
    smtp: Option<Smtp>,
}

struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field(
                "from",
                &self.smtp.as_ref().map(|smtp| smtp.from.to_string()),
            )
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// The sender `[smtp]` describes; without a host, one that refuses to send.
    pub fn from_config(config: &SmtpConfig) -> Result<Mailer, MailerBuildError> {
        let from = Mailbox::from_str(config.from.trim())
            .map_err(|_| MailerBuildError::InvalidFrom(config.from.clone()))?;
        if !config.is_configured() {
            return Ok(Mailer::disabled());
        }
        let host = config.host.trim();
        let tls = match config.tls {
            TlsMode::None => Tls::None,
            TlsMode::Starttls => Tls::Required(tls_parameters(host)?),
            TlsMode::Tls => Tls::Wrapper(tls_parameters(host)?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(config.effective_port())
            .tls(tls)
            .timeout(Some(config.timeout));
        if !config.username.is_empty() {
            let password = config
                .password
                .as_ref()
                .map(|p| p.expose_secret().to_owned())
                .unwrap_or_default();
            builder = builder.credentials(Credentials::new(config.username.clone(), password));
        }
        Ok(Mailer {
            smtp: Some(Smtp {
                transport: builder.build(),
                from,
            }),
        })
    }

    /// A sender for an installation without mail.
    pub fn disabled() -> Mailer {
        Mailer { smtp: None }
    }

    pub fn is_configured(&self) -> bool {
        self.smtp.is_some()
    }

    /// Sends one plain-text message to one recipient.
    pub async fn send(&self, to: &Email, message: &Message) -> Result<(), MailError> {
        let Some(smtp) = &self.smtp else {
            return Err(MailError::NotConfigured);
        };
        let recipient = Address::from_str(to.as_str())
            .map_err(|_| MailError::InvalidRecipient(to.to_string()))?;
        let email = LettreMessage::builder()
            .from(smtp.from.clone())
            .to(Mailbox::new(None, recipient))
            .subject(message.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(message.body.clone())
            .map_err(|e| MailError::Build(e.to_string()))?;
        smtp.transport
            .send(email)
            .await
            .map_err(|e| MailError::Smtp(e.to_string()))?;
        Ok(())
    }
}

impl Mailer {
    /// Sends one message with a plain-text and an HTML alternative (both base64-encoded, so
    /// any text survives transport untouched) to one recipient. The caller escapes what
    /// goes into `html`.
    pub async fn send_alternative(
        &self,
        to: &Email,
        subject: &str,
        text: &str,
        html: &str,
    ) -> Result<(), MailError> {
        let Some(smtp) = &self.smtp else {
            return Err(MailError::NotConfigured);
        };
        let recipient = Address::from_str(to.as_str())
            .map_err(|_| MailError::InvalidRecipient(to.to_string()))?;
        let part = |content_type: ContentType, body: &str| {
            SinglePart::builder()
                .header(content_type)
                .header(ContentTransferEncoding::Base64)
                .body(body.to_owned())
        };
        let email = LettreMessage::builder()
            .from(smtp.from.clone())
            .to(Mailbox::new(None, recipient))
            .subject(subject)
            .multipart(
                MultiPart::alternative()
                    .singlepart(part(ContentType::TEXT_PLAIN, text))
                    .singlepart(part(ContentType::TEXT_HTML, html)),
            )
            .map_err(|e| MailError::Build(e.to_string()))?;
        smtp.transport
            .send(email)
            .await
            .map_err(|e| MailError::Smtp(e.to_string()))?;
        Ok(())
    }
}

fn tls_parameters(host: &str) -> Result<TlsParameters, MailerBuildError> {
    TlsParameters::new(host.to_owned()).map_err(|e| MailerBuildError::Tls(e.to_string()))
}
