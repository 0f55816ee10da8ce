//! Secret values in configuration: what they show of themselves (`Debug`, `Serialize`) and
//! how a connection URL is masked.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a secret shows instead of itself.
pub const MASK: &str = "********";

/// A connection URL that may carry a password (`postgres://app:pw@db/selextract`,
/// `redis://:pw@cache:6379`, `http://user:pw@proxy:3128`). Held as a [`SecretString`] (wiped
/// on drop) and kept as the operator wrote it, because not every database "URL" is a URL
/// (`sqlite::memory:`, a bare file path). `Debug` and `Serialize` show [`mask_url`] of it;
/// only [`ExposeSecret::expose_secret`] gives the real value.
#[derive(Clone, Default)]
pub struct SecretUrl(SecretString);

impl SecretUrl {
    pub fn new(url: impl Into<String>) -> Self {
        SecretUrl(SecretString::from(url.into()))
    }

    /// The URL with its password (and secret-looking query values) replaced by [`MASK`].
    pub fn masked(&self) -> String {
        mask_url(self.0.expose_secret())
    }

    /// Empty or blank: the setting is unset.
    pub fn is_empty(&self) -> bool {
        self.0.expose_secret().trim().is_empty()
    }
}

impl ExposeSecret<str> for SecretUrl {
    fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

impl From<String> for SecretUrl {
    fn from(url: String) -> Self {
        SecretUrl::new(url)
    }
}

impl From<&str> for SecretUrl {
    fn from(url: &str) -> Self {
        SecretUrl::new(url)
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SecretUrl").field(&self.masked()).finish()
    }
}

/// Serializes masked: the settings tree is serialized only to be shown (`config print`).
impl Serialize for SecretUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.masked())
    }
}

impl<'de> Deserialize<'de> for SecretUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScalarText).map(SecretUrl::new)
    }
}

/// Reads a string, or a number or boolean as its text: an environment value such as
/// `SELEXTRACT__METRICS__BEARER_TOKEN=12345678` (or `DATABASE_URL=12345`, a file name)
/// arrives typed as an integer, and a type error would print the secret in its message.
struct ScalarText;

impl serde::de::Visitor<'_> for ScalarText {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<String, E> {
        Ok(value.to_owned())
    }

    fn visit_string<E: serde::de::Error>(self, value: String) -> Result<String, E> {
        Ok(value)
    }

    fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<String, E> {
        Ok(value.to_string())
    }

    fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<String, E> {
        Ok(value.to_string())
    }

    fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<String, E> {
        Ok(value.to_string())
    }

    fn visit_bool<E: serde::de::Error>(self, value: bool) -> Result<String, E> {
        Ok(value.to_string())
    }
}

/// `raw` with the password of its user part and the values of secret-looking query
/// parameters (`password=`, `sslpassword=`, `token=`, …) replaced by [`MASK`]; unchanged
/// when it has neither. Works on the text, not on a parsed URL, so that what the URL parser
/// would reject or read differently (a password with `/`, `#`, `?` or `@` in it) is masked
/// too: everything between `://` and the last `@` is user part. When in doubt it masks more
/// (a user part without `:` may itself be a token, as in `https://TOKEN@host`).
pub fn mask_url(raw: &str) -> String {
    mask_query_secrets(&mask_user_part(raw))
}

fn mask_user_part(raw: &str) -> String {
    let Some(scheme_end) = raw.find("://") else {
        // Not hierarchical (`sqlite::memory:`, a bare path): no user part, unless an `@`
        // says otherwise.
        return if raw.contains('@') {
            MASK.to_owned()
        } else {
            raw.to_owned()
        };
    };
    let user_start = scheme_end + "://".len();
    let Some(at) = raw.rfind('@').filter(|at| *at >= user_start) else {
        return raw.to_owned();
    };
    let shown = match raw[user_start..at].split_once(':') {
        Some((user, _password)) => format!("{user}:{MASK}"),
        None => MASK.to_owned(),
    };
    format!("{}{shown}{}", &raw[..user_start], &raw[at..])
}

fn mask_query_secrets(url: &str) -> String {
    let Some(question) = url.find('?') else {
        return url.to_owned();
    };
    let (base, rest) = url.split_at(question + 1);
    let (query, fragment) = rest.split_at(rest.find('#').unwrap_or(rest.len()));
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _value)) if is_secret_name(name) => format!("{name}={MASK}"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{base}{}{fragment}", pairs.join("&"))
}

/// Parameter names that carry secrets in connection URLs (libpq's `password`, `sslpassword`,
/// tokens and keys of other services). A percent-encoded name is treated as secret rather
/// than decoded, so `p%61ssword` cannot slip through.
fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name.contains('%')
        || [
            "pass",
            "pwd",
            "secret",
            "token",
            "key",
            "auth",
            "credential",
        ]
        .iter()
        .any(|word| name.contains(word))
}

/// `serde(with = "selextract_config::optional_secret")` for an `Option<SecretString>` read
/// from a string setting where empty means unset (`metrics.bearer_token = ""`). Serializes
/// as [`MASK`] when set and `""` when not, so a printed configuration shows whether a secret
/// is configured, never the secret.
pub mod optional_secret {
    use secrecy::SecretString;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        value: &Option<SecretString>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(if value.is_some() { super::MASK } else { "" })
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<SecretString>, D::Error> {
        let raw = deserializer.deserialize_any(super::ScalarText)?;
        Ok(Some(raw)
            .filter(|raw| !raw.trim().is_empty())
            .map(SecretString::from))
    }
}
