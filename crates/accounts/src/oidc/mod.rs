//! Login through OpenID Connect (Google or any issuer found by discovery) as a relying
//! party, with the `openidconnect` crate: the one part of this crate that does IO (HTTP to
//! the provider: discovery, keys, token exchange, userinfo).
//!
//! - [`config`]: `[auth.oidc.<name>]` tables and the `google` preset.
//! - [`client`]: one provider — authorization request, callback verification.
//! - [`http`]: the reqwest client the library talks through.
//!
//! What to do with a verified identity (find the linked account, link by a verified e-mail,
//! create an account) is the server's and the store's business: this module only says who
//! logged in, and whether the provider vouches for the e-mail address.

pub mod client;
pub mod config;
mod http;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use client::{LoginStart, OidcClient, OidcError, PendingLogin, VerifiedIdentity};
pub use config::{
    GOOGLE_ISSUER, OidcConfigError, OidcProviderConfig, callback_path, check_oidc_config,
};

/// Every provider of `[auth.oidc]`, by name.
#[derive(Debug, Default, Clone)]
pub struct OidcProviders {
    clients: BTreeMap<String, Arc<OidcClient>>,
}

impl OidcProviders {
    /// Clients for every table of an installation whose public URL is `public_base` (no
    /// request is made yet).
    pub fn new(
        config: &BTreeMap<String, OidcProviderConfig>,
        public_base: &str,
    ) -> Result<OidcProviders, OidcError> {
        let clients = config
            .iter()
            .map(|(name, table)| {
                let client = OidcClient::new(name, table, public_base)?;
                Ok((name.clone(), Arc::new(client)))
            })
            .collect::<Result<_, OidcError>>()?;
        Ok(OidcProviders { clients })
    }

    pub fn get(&self, name: &str) -> Option<Arc<OidcClient>> {
        self.clients.get(name).cloned()
    }

    /// The providers in name order, for a login page's buttons.
    pub fn iter(&self) -> impl Iterator<Item = &OidcClient> {
        self.clients.values().map(Arc::as_ref)
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }
}
