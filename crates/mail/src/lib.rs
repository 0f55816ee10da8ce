//! selextract-mail: the e-mail the service sends — the `[smtp]` configuration, a sender over
//! SMTP (the `lettre` crate: tokio, rustls), and the texts of the account messages
//! (password reset, address verification, invitation).
//!
//! Why a crate of its own: the server sends account mail and the notifications of a later
//! issue will send run reports; both need one configured sender and neither should know
//! SMTP. Recipients are [`selextract_accounts::Email`] values, which refuse whitespace and
//! control characters, so no address can carry a header line into a message; subjects are
//! fixed texts and links are built by the caller from the configured public URL.
//!
//! An installation without `smtp.host` has a [`Mailer`] that refuses to send with
//! [`MailError::NotConfigured`], which callers turn into a clear answer (or, where an
//! answer would reveal something, a log line).

mod config;
pub mod messages;
mod sender;

pub use config::{SmtpConfig, TlsMode};
pub use messages::Message;
pub use sender::{MailError, Mailer, MailerBuildError};
