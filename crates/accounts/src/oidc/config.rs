//! `[auth.oidc.<name>]`: one OpenID provider per table — its issuer (found by discovery),
//! the client registered there, the scopes asked for and the name shown on the login page.
//! `[auth.oidc.google]` needs only the client id and secret.

use std::collections::BTreeMap;
use std::fmt;

use selextract_config::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

/// The issuer of the `google` preset.
pub const GOOGLE_ISSUER: &str = "https://accounts.google.com";

/// Where discovery documents live under an issuer (OpenID Connect Discovery 1.0 §4).
const DISCOVERY_SUFFIX: &str = "/.well-known/openid-configuration";

/// Longest provider name: it is a path segment and a key in the identities table.
const MAX_NAME_LEN: usize = 40;

/// `[auth.oidc.<name>]`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcProviderConfig {
    /// The issuer URL (`https://login.example.com/realms/main`); its discovery document is
    /// at `<issuer>/.well-known/openid-configuration`, and the discovery URL itself is
    /// accepted too. Unset only for the `google` preset.
    #[serde(default)]
    pub issuer: Option<Url>,
    /// The client id registered with the provider.
    pub client_id: String,
    /// The client secret (sent with HTTP Basic to the token endpoint). Empty means a public
    /// client, which PKCE alone protects; printed masked.
    #[serde(default, with = "selextract_config::optional_secret")]
    pub client_secret: Option<SecretString>,
    /// Scopes asked for besides `openid` (default `email` and `profile`: the e-mail address
    /// is how an account is found or created).
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// Shown on the login button ("Sign in with …"); default: the preset's name or the
    /// table's name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// The callback URL to register with the provider: this installation's public address
    /// followed by `/api/v1/auth/oidc/<name>/callback` (any prefix a reverse proxy adds may
    /// come before it). Default: `server.public_url` followed by that path.
    #[serde(default)]
    pub redirect_uri: Option<Url>,
}

fn default_scopes() -> Vec<String> {
    vec!["email".to_owned(), "profile".to_owned()]
}

/// Secrets compare by value, so configurations compare in tests; never shown.
impl PartialEq for OidcProviderConfig {
    fn eq(&self, other: &Self) -> bool {
        self.issuer == other.issuer
            && self.client_id == other.client_id
            && self.client_secret.as_ref().map(|s| s.expose_secret())
                == other.client_secret.as_ref().map(|s| s.expose_secret())
            && self.scopes == other.scopes
            && self.display_name == other.display_name
            && self.redirect_uri == other.redirect_uri
    }
}

impl Eq for OidcProviderConfig {}

impl fmt::Debug for OidcProviderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcProviderConfig")
            .field("issuer", &self.issuer.as_ref().map(Url::as_str))
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| selextract_config::MASK),
            )
            .field("scopes", &self.scopes)
            .field("display_name", &self.display_name)
            .field("redirect_uri", &self.redirect_uri.as_ref().map(Url::as_str))
            .finish()
    }
}

/// A provider table that cannot work, named by its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcConfigError {
    #[error(
        "auth.oidc.{0}: provider names are 1 to 40 characters of a-z, 0-9, `-` and `_` (they appear in the redirect URI)"
    )]
    BadName(String),
    #[error("auth.oidc.{0}.issuer is required (only the `google` preset knows its issuer)")]
    MissingIssuer(String),
    #[error("auth.oidc.{0}.issuer must be an http(s) URL without query or fragment: {1}")]
    BadIssuer(String, String),
    #[error("auth.oidc.{0}.client_id is empty")]
    MissingClientId(String),
    #[error("auth.oidc.{0}.scopes: `{1}` is not a scope (no spaces, not empty)")]
    BadScope(String, String),
    #[error(
        "auth.oidc.{0}.redirect_uri is unset and server.public_url ({1}) does not make a URL of it; set either"
    )]
    BadPublicUrl(String, String),
    #[error(
        "auth.oidc.{0}.redirect_uri must be an http(s) URL without query or fragment whose path ends with {1}"
    )]
    BadRedirectUri(String, String),
}

/// The path of the callback route of provider `name` (what a redirect URI must end with).
pub fn callback_path(name: &str) -> String {
    format!("/api/v1/auth/oidc/{name}/callback")
}

/// What a provider table resolves to once checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedProvider {
    pub redirect_uri: Url,
    /// Exactly as the provider's ID tokens spell it (no trailing slash: `iss` is compared
    /// as a string, and `https://accounts.google.com` has none).
    pub issuer: String,
    pub display_name: String,
}

impl OidcProviderConfig {
    /// Checks the table named `name` and fills in the preset: the issuer (without the
    /// discovery suffix and trailing slash: the ID token's `iss` must equal it exactly), the
    /// display name, and the redirect URI (from `public_base`, the installation's public
    /// URL, when unset).
    pub fn resolve(
        &self,
        name: &str,
        public_base: &str,
    ) -> Result<ResolvedProvider, OidcConfigError> {
        check_name(name)?;
        if self.client_id.trim().is_empty() {
            return Err(OidcConfigError::MissingClientId(name.to_owned()));
        }
        if let Some(scope) = self
            .scopes
            .iter()
            .find(|scope| scope.is_empty() || scope.contains(char::is_whitespace))
        {
            return Err(OidcConfigError::BadScope(name.to_owned(), scope.clone()));
        }
        let issuer = match (&self.issuer, name) {
            (Some(issuer), _) => normalize_issuer(name, issuer)?,
            (None, "google") => GOOGLE_ISSUER.to_owned(),
            (None, _) => return Err(OidcConfigError::MissingIssuer(name.to_owned())),
        };
        let display_name = match (&self.display_name, name) {
            (Some(display), _) if !display.trim().is_empty() => display.trim().to_owned(),
            (_, "google") => "Google".to_owned(),
            _ => name.to_owned(),
        };
        let redirect_uri = self.checked_redirect_uri(name, public_base)?;
        Ok(ResolvedProvider {
            redirect_uri,
            issuer,
            display_name,
        })
    }

    fn checked_redirect_uri(&self, name: &str, public_base: &str) -> Result<Url, OidcConfigError> {
        let path = callback_path(name);
        let uri = match &self.redirect_uri {
            Some(uri) => uri.clone(),
            None => Url::parse(&format!("{}{path}", public_base.trim_end_matches('/'))).map_err(
                |_| OidcConfigError::BadPublicUrl(name.to_owned(), public_base.to_owned()),
            )?,
        };
        let fine = matches!(uri.scheme(), "https" | "http")
            && uri.host_str().is_some_and(|host| !host.is_empty())
            && uri.query().is_none()
            && uri.fragment().is_none()
            && uri.path().ends_with(&path);
        if fine {
            Ok(uri)
        } else {
            Err(OidcConfigError::BadRedirectUri(name.to_owned(), path))
        }
    }
}

/// Checks every table of `[auth.oidc]` (for startup, so a bad table is a startup error);
/// `public_base` is the installation's public URL.
pub fn check_oidc_config(
    providers: &BTreeMap<String, OidcProviderConfig>,
    public_base: &str,
) -> Result<(), OidcConfigError> {
    providers
        .iter()
        .try_for_each(|(name, config)| config.resolve(name, public_base).map(drop))
}

fn check_name(name: &str) -> Result<(), OidcConfigError> {
    let fine = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if fine {
        Ok(())
    } else {
        Err(OidcConfigError::BadName(name.to_owned()))
    }
}

fn normalize_issuer(name: &str, issuer: &Url) -> Result<String, OidcConfigError> {
    let bad = |why: &str| OidcConfigError::BadIssuer(name.to_owned(), why.to_owned());
    if !matches!(issuer.scheme(), "https" | "http") {
        return Err(bad("the scheme is not http or https"));
    }
    if issuer.query().is_some() || issuer.fragment().is_some() {
        return Err(bad("it has a query or fragment"));
    }
    if issuer.host_str().is_none_or(str::is_empty) {
        return Err(bad("it has no host"));
    }
    let text = issuer.as_str();
    let text = text.strip_suffix(DISCOVERY_SUFFIX).unwrap_or(text);
    Ok(text.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const BASE: &str = "https://scrape.example.com";

    fn table(text: &str) -> BTreeMap<String, OidcProviderConfig> {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn the_google_preset_needs_only_the_client() {
        let providers = table(
            "[google]\nclient_id = \"id.apps\"\nclient_secret = \"s3cret\"\n\
             redirect_uri = \"https://scrape.example.com/api/v1/auth/oidc/google/callback\"",
        );
        let google = &providers["google"];
        assert_eq!(google.scopes, ["email", "profile"]);
        let resolved = google.resolve("google", BASE).unwrap();
        assert_eq!(resolved.issuer, "https://accounts.google.com");
        assert_eq!(resolved.display_name, "Google");
    }

    #[test]
    fn any_other_provider_needs_its_issuer() {
        let providers = table("[corp]\nclient_id = \"x\"");
        assert_eq!(
            check_oidc_config(&providers, BASE),
            Err(OidcConfigError::MissingIssuer("corp".to_owned()))
        );
        assert!(
            OidcConfigError::MissingIssuer("corp".to_owned())
                .to_string()
                .contains("auth.oidc.corp.issuer")
        );
    }

    #[test]
    fn a_discovery_url_or_a_trailing_slash_becomes_the_issuer() {
        for written in [
            "https://id.example.com/realms/main",
            "https://id.example.com/realms/main/",
            "https://id.example.com/realms/main/.well-known/openid-configuration",
        ] {
            let providers = table(&format!(
                "[corp]\nclient_id = \"x\"\nissuer = \"{written}\"\ndisplay_name = \" Corp SSO \"\n\
                 redirect_uri = \"https://x.example/prefix/api/v1/auth/oidc/corp/callback\""
            ));
            let resolved = providers["corp"].resolve("corp", BASE).unwrap();
            assert_eq!(
                resolved.issuer, "https://id.example.com/realms/main",
                "{written}"
            );
            assert_eq!(resolved.display_name, "Corp SSO");
        }
    }

    #[test]
    fn bad_names_issuers_clients_and_scopes_name_their_key() {
        let config = |issuer: &str, client: &str, scopes: &str| {
            table(&format!(
                "[p]\nissuer = \"{issuer}\"\nclient_id = \"{client}\"\nscopes = {scopes}\n\
                 redirect_uri = \"https://x.example/api/v1/auth/oidc/p/callback\""
            ))
            .remove("p")
            .unwrap()
        };
        let good = config("https://id.example.com", "x", "[\"email\"]");
        for name in ["", "Google", "a b", "x/y", "ü", &"n".repeat(41), "../x"] {
            assert_eq!(
                good.resolve(name, BASE),
                Err(OidcConfigError::BadName(name.to_owned())),
                "{name:?}"
            );
        }
        assert!(!matches!(
            good.resolve(&"n".repeat(40), BASE),
            Err(OidcConfigError::BadName(_))
        ));
        for issuer in [
            "ftp://id.example.com",
            "https://id.example.com/?tenant=1",
            "https://id.example.com/#x",
        ] {
            let error = config(issuer, "x", "[]").resolve("p", BASE).unwrap_err();
            assert!(
                matches!(error, OidcConfigError::BadIssuer(ref name, _) if name == "p"),
                "{issuer}: {error}"
            );
        }
        assert_eq!(
            config("https://id.example.com", "  ", "[]").resolve("p", BASE),
            Err(OidcConfigError::MissingClientId("p".to_owned()))
        );
        for scope in ["", "email profile"] {
            assert_eq!(
                config("https://id.example.com", "x", &format!("[\"{scope}\"]")).resolve("p", BASE),
                Err(OidcConfigError::BadScope("p".to_owned(), scope.to_owned()))
            );
        }
    }

    #[test]
    fn the_redirect_uri_defaults_to_the_public_url_and_must_end_with_the_callback_path() {
        let with = |uri: Option<&str>, base: &str| {
            let line = uri.map_or(String::new(), |uri| format!("redirect_uri = \"{uri}\""));
            table(&format!("[google]\nclient_id = \"x\"\n{line}"))
                .remove("google")
                .unwrap()
                .resolve("google", base)
        };
        let path = "/api/v1/auth/oidc/google/callback".to_owned();
        for base in ["https://scrape.example.com", "https://scrape.example.com/"] {
            assert_eq!(
                with(None, base).unwrap().redirect_uri.as_str(),
                "https://scrape.example.com/api/v1/auth/oidc/google/callback"
            );
        }
        assert_eq!(
            with(None, "https://x.example/prefix")
                .unwrap()
                .redirect_uri
                .as_str(),
            "https://x.example/prefix/api/v1/auth/oidc/google/callback"
        );
        for base in ["", "not a url", "https://x.example/?q=1"] {
            let error = with(None, base).unwrap_err();
            assert!(
                matches!(
                    error,
                    OidcConfigError::BadPublicUrl(..) | OidcConfigError::BadRedirectUri(..)
                ),
                "{base:?}: {error}"
            );
        }
        for bad in [
            "https://x.example/api/v1/auth/oidc/other/callback",
            "https://x.example/api/v1/auth/oidc/google/callback?x=1",
            "https://x.example/api/v1/auth/oidc/google/callback#f",
            "ftp://x.example/api/v1/auth/oidc/google/callback",
            "https://x.example/api/v1/auth/oidc/google/callback/",
        ] {
            assert_eq!(
                with(Some(bad), BASE),
                Err(OidcConfigError::BadRedirectUri(
                    "google".to_owned(),
                    path.clone()
                )),
                "{bad}"
            );
        }
        // An explicit URI wins over the public URL.
        let fine = with(
            Some("http://127.0.0.1:8000/api/v1/auth/oidc/google/callback"),
            BASE,
        )
        .unwrap();
        assert_eq!(
            fine.redirect_uri.as_str(),
            "http://127.0.0.1:8000/api/v1/auth/oidc/google/callback"
        );
    }

    #[test]
    fn the_secret_is_masked_when_printed_and_empty_means_none() {
        let providers = table(
            "[google]\nclient_id = \"id\"\nclient_secret = \"hunter2-secret\"\n\
             [corp]\nclient_id = \"id\"\nissuer = \"https://id.example.com\"\nclient_secret = \"\"",
        );
        let printed = serde_json::to_string(&providers).unwrap();
        let debugged = format!("{providers:?}");
        for shown in [&printed, &debugged] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains(selextract_config::MASK), "{shown}");
        }
        assert!(providers["corp"].client_secret.is_none());
        assert_eq!(providers, providers.clone());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let error = toml::from_str::<BTreeMap<String, OidcProviderConfig>>(
            "[google]\nclient_id = \"x\"\nsecret = \"y\"",
        )
        .unwrap_err();
        assert!(error.to_string().contains("secret"), "{error}");
    }
}
