//! E-mail addresses: one normalised, validated form, so that an account is found however
//! its owner types the address.
//!
//! Normalisation trims surrounding whitespace and lower-cases the whole address — the
//! domain, which is case-insensitive by the standard, and the local part too, which the
//! standard lets a mail server treat as case-sensitive but which no common provider does.
//! Lower-casing both means `Alice@Example.com` and `alice@example.com` are one account,
//! which is what users expect; the store has always stored e-mails this way. Non-ASCII
//! addresses (RFC 6531) are accepted and lower-cased by Unicode rules.
//!
//! Validation is deliberately shallow — only a confirmation message proves an address —
//! but it refuses what could never be one or could do harm in a header or a log line:
//! anything without exactly one `@`, an empty local part or domain, whitespace, control or
//! invisible characters inside ([`is_invisible`]), or more than [`MAX_EMAIL_BYTES`] bytes (RFC 5321's path limit).

use std::fmt;

use serde::Serialize;

/// Characters that show nothing or reorder what follows: bidirectional controls
/// (`U+202E` makes `moc.elpmaxe@nimda` read as an administrator's address), zero-width
/// characters and the soft hyphen. Refused in addresses and in display names, where they
/// would let one account pass for another in a list.
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{ad}'
            | '\u{61c}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{feff}'
    )
}

/// The most bytes a normalised address may have.
pub const MAX_EMAIL_BYTES: usize = 254;

/// A normalised e-mail address; only [`Email::parse`] makes one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Email(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EmailError {
    #[error("an e-mail address must contain exactly one @")]
    NotOneAt,
    #[error("an e-mail address needs a name before the @")]
    EmptyLocalPart,
    #[error("an e-mail address needs a domain after the @")]
    EmptyDomain,
    #[error("an e-mail address may not contain spaces, control or invisible characters")]
    ForbiddenCharacter,
    #[error("an e-mail address may have at most {MAX_EMAIL_BYTES} bytes")]
    TooLong,
}

impl Email {
    /// Trims, lower-cases and validates an address.
    pub fn parse(raw: &str) -> Result<Email, EmailError> {
        let trimmed = raw.trim();
        // Checked before lower-casing, which could otherwise be asked to walk megabytes.
        if trimmed.len() > MAX_EMAIL_BYTES {
            return Err(EmailError::TooLong);
        }
        if trimmed
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || is_invisible(c))
        {
            return Err(EmailError::ForbiddenCharacter);
        }
        let normalised = trimmed.to_lowercase();
        // Some characters grow when lower-cased; the bound holds for the stored form.
        if normalised.len() > MAX_EMAIL_BYTES {
            return Err(EmailError::TooLong);
        }
        let mut parts = normalised.split('@');
        let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(EmailError::NotOneAt);
        };
        if local.is_empty() {
            return Err(EmailError::EmptyLocalPart);
        }
        if domain.is_empty() {
            return Err(EmailError::EmptyDomain);
        }
        Ok(Email(normalised))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part after the `@`.
    pub fn domain(&self) -> &str {
        self.0.rsplit('@').next().unwrap_or_default()
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Email {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn addresses_are_trimmed_and_lower_cased_in_both_parts() {
        let email = Email::parse("  Alice.Smith+Tag@Example.COM \n").unwrap();
        assert_eq!(email.as_str(), "alice.smith+tag@example.com");
        assert_eq!(email.domain(), "example.com");
        assert_eq!(email.to_string(), "alice.smith+tag@example.com");
        assert_eq!(
            serde_json::to_string(&email).unwrap(),
            "\"alice.smith+tag@example.com\""
        );
        assert_eq!(Email::parse("a@b").unwrap().as_str(), "a@b");
    }

    #[test]
    fn unicode_addresses_are_accepted_and_lower_cased() {
        let email = Email::parse("Jürgen@Bücher.DE").unwrap();
        assert_eq!(email.as_str(), "jürgen@bücher.de");
        assert_eq!(email.domain(), "bücher.de");
        assert_eq!(
            Email::parse("user@ПРИМЕР.РФ").unwrap().as_str(),
            "user@пример.рф"
        );
    }

    #[test]
    fn anything_without_exactly_one_at_is_refused() {
        for raw in ["alice", "alice@@example.com", "a@b@example.com", "", "   "] {
            assert_eq!(Email::parse(raw), Err(EmailError::NotOneAt), "{raw:?}");
        }
    }

    #[test]
    fn empty_parts_are_refused() {
        assert_eq!(
            Email::parse("@example.com"),
            Err(EmailError::EmptyLocalPart)
        );
        assert_eq!(Email::parse("alice@"), Err(EmailError::EmptyDomain));
        assert_eq!(Email::parse(" @ "), Err(EmailError::EmptyLocalPart));
    }

    #[test]
    fn whitespace_and_control_characters_inside_are_refused() {
        for raw in [
            "alice\0@example.com",
            "alice@example.com\0",
            "alice@exa\nmple.com",
            "alice@example.com\r\nBcc: eve@example.com",
            "al ice@example.com",
            "alice@example.com\u{1b}[31m",
            "alice\u{a0}@example.com",
            "alice@exam\tple.com",
            "\u{202e}admin@localhost",
            "ad\u{200b}min@localhost",
            "admin@local\u{2066}host",
            "\u{feff}admin@localhost",
        ] {
            assert_eq!(
                Email::parse(raw),
                Err(EmailError::ForbiddenCharacter),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn addresses_over_254_bytes_are_refused_and_254_is_accepted() {
        let domain = "@example.com";
        let longest = format!("{}{domain}", "a".repeat(MAX_EMAIL_BYTES - domain.len()));
        assert_eq!(Email::parse(&longest).unwrap().as_str().len(), 254);
        let over = format!("a{longest}");
        assert_eq!(Email::parse(&over), Err(EmailError::TooLong));
        let huge = format!("{}@example.com", "a".repeat(1 << 20));
        assert_eq!(Email::parse(&huge), Err(EmailError::TooLong));
        // A character that grows when lower-cased (İ, 2 bytes, becomes 3) cannot slip a
        // stored form past the bound.
        let growing = format!(
            "{}{domain}",
            "İ".repeat((MAX_EMAIL_BYTES - domain.len()) / 2)
        );
        assert!(growing.len() <= MAX_EMAIL_BYTES);
        assert_eq!(Email::parse(&growing), Err(EmailError::TooLong));
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert!(EmailError::NotOneAt.to_string().contains("exactly one @"));
        assert!(EmailError::TooLong.to_string().contains("254"));
    }
}
