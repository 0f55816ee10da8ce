//! One configured OpenID provider as a relying party: the authorization request (state,
//! nonce, PKCE S256 challenge) and the callback's work (code exchange with the PKCE
//! verifier, ID token signature, issuer, audience, expiry and nonce checks, the access-token
//! hash, and the userinfo endpoint when the ID token carries no e-mail address).
//!
//! The provider's metadata and signing keys come from discovery, cached for
//! [`METADATA_TTL`]; an ID token signed by a key the cache does not know refreshes them once,
//! so a key rotation at the provider does not break logins for an hour.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdTokenClaims, CoreIdTokenVerifier,
    CoreProviderMetadata, CoreTokenResponse,
};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope, TokenResponse,
};
use selextract_config::ExposeSecret;
use serde::{Deserialize, Serialize};
use url::Url;

use super::config::{OidcConfigError, OidcProviderConfig};
use super::http::{HttpClient, error_chain};

/// How long discovered metadata and keys are reused.
const METADATA_TTL: Duration = Duration::from_secs(3600);

/// The client as discovery builds it: authorization endpoint set, token and userinfo
/// endpoints as the provider advertises them.
type DiscoveredClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Why a login through a provider failed. Messages carry no token or code.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// Discovery, the token or the userinfo endpoint could not be reached or answered
    /// nonsense: the provider's side, worth retrying later.
    #[error("the identity provider is unavailable: {0}")]
    Unavailable(String),
    /// The provider refused the code (expired, already used, wrong verifier) with an OAuth
    /// error code such as `invalid_grant`.
    #[error("the identity provider refused the login: {0}")]
    Refused(String),
    /// The ID token or userinfo failed a check (signature, issuer, audience, expiry, nonce,
    /// access-token hash, subject).
    #[error("the identity provider's answer failed verification: {0}")]
    Invalid(String),
    #[error(transparent)]
    Config(#[from] OidcConfigError),
}

/// What the callback needs from the start of a login: kept by the server in a signed
/// cookie, never in a URL it produces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingLogin {
    /// The `state` sent to the provider; the callback must bring it back.
    pub state: String,
    /// The `nonce` the ID token must carry.
    pub nonce: String,
    /// The PKCE code verifier whose S256 challenge went to the provider.
    pub pkce_verifier: String,
}

/// The start of a login: where to send the browser, and what to remember.
#[derive(Debug, Clone)]
pub struct LoginStart {
    pub authorize_url: Url,
    pub pending: PendingLogin,
}

/// Who the provider says logged in, after every check passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedIdentity {
    /// The provider's stable id for the account (`sub`): with the provider name, the key
    /// of the link to a local account.
    pub subject: String,
    /// The e-mail address the provider shared (ID token, else userinfo), if any.
    pub email: Option<String>,
    /// True only when the provider said `email_verified: true` for that address.
    pub email_verified: bool,
    /// The account's display name, if shared.
    pub name: Option<String>,
}

/// One provider of `[auth.oidc]`, ready to log users in.
#[derive(Debug)]
pub struct OidcClient {
    name: String,
    display_name: String,
    issuer: IssuerUrl,
    client_id: ClientId,
    client_secret: Option<ClientSecret>,
    scopes: Vec<Scope>,
    redirect_uri: RedirectUrl,
    http: HttpClient,
    metadata: Mutex<Option<(Instant, CoreProviderMetadata)>>,
}

impl OidcClient {
    /// A client for the table `name` of an installation whose public URL is `public_base`.
    /// Makes no request: discovery happens at the first login.
    pub fn new(
        name: &str,
        config: &OidcProviderConfig,
        public_base: &str,
    ) -> Result<OidcClient, OidcError> {
        let resolved = config.resolve(name, public_base)?;
        let issuer = IssuerUrl::new(resolved.issuer.clone())
            .map_err(|error| OidcConfigError::BadIssuer(name.to_owned(), error.to_string()))?;
        let redirect_uri = RedirectUrl::from_url(resolved.redirect_uri);
        let http = HttpClient::new().map_err(|error| OidcError::Unavailable(error.to_string()))?;
        Ok(OidcClient {
            name: name.to_owned(),
            display_name: resolved.display_name,
            issuer,
            client_id: ClientId::new(config.client_id.trim().to_owned()),
            client_secret: config
                .client_secret
                .as_ref()
                .map(|secret| ClientSecret::new(secret.expose_secret().to_owned())),
            scopes: config.scopes.iter().cloned().map(Scope::new).collect(),
            redirect_uri,
            http,
            metadata: Mutex::new(None),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn display_name(&self) -> &str {
        &self.display_name
    }

    pub fn issuer(&self) -> &str {
        self.issuer.as_str()
    }

    pub fn redirect_uri(&self) -> &str {
        self.redirect_uri.as_str()
    }

    /// Builds the authorization request: a random state, nonce and PKCE verifier (S256).
    pub async fn begin_login(&self) -> Result<LoginStart, OidcError> {
        let client = self.client(false).await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        for scope in &self.scopes {
            request = request.add_scope(scope.clone());
        }
        let (authorize_url, state, nonce) = request.url();
        Ok(LoginStart {
            authorize_url,
            pending: PendingLogin {
                state: state.secret().clone(),
                nonce: nonce.secret().clone(),
                pkce_verifier: verifier.secret().clone(),
            },
        })
    }

    /// Exchanges the callback's `code` and verifies what comes back against `pending`. The
    /// caller has already checked that the callback's `state` is `pending.state`.
    pub async fn finish_login(
        &self,
        code: &str,
        pending: &PendingLogin,
    ) -> Result<VerifiedIdentity, OidcError> {
        let client = self.client(false).await?;
        let tokens = exchange_code(&client, &self.http, code, pending).await?;
        let nonce = Nonce::new(pending.nonce.clone());
        let claims = match verify_id_token(&client, &tokens, &nonce) {
            // Perhaps a key the cached set does not hold yet: rediscover once.
            Err(ClaimsVerificationError::SignatureVerification(_)) => {
                let fresh = self.client(true).await?;
                verify_id_token(&fresh, &tokens, &nonce)
            }
            other => other,
        }
        .map_err(|error| OidcError::Invalid(error_chain(&error)))?;
        let mut identity = VerifiedIdentity {
            subject: claims.subject().as_str().to_owned(),
            email: claims.email().map(|email| email.as_str().to_owned()),
            email_verified: claims.email_verified() == Some(true),
            name: claims
                .name()
                .and_then(|name| name.get(None))
                .map(|name| name.as_str().to_owned()),
        };
        if identity.email.is_none() {
            self.add_userinfo(&client, &tokens, &mut identity).await?;
        }
        Ok(identity)
    }

    /// Providers that follow the code flow strictly (oidc-provider by default) put the
    /// scope's claims only in the userinfo response; its `sub` must be the ID token's.
    async fn add_userinfo(
        &self,
        client: &DiscoveredClient,
        tokens: &CoreTokenResponse,
        identity: &mut VerifiedIdentity,
    ) -> Result<(), OidcError> {
        let Ok(request) = client.user_info(
            tokens.access_token().clone(),
            Some(openidconnect::SubjectIdentifier::new(
                identity.subject.clone(),
            )),
        ) else {
            return Ok(()); // No userinfo endpoint: no e-mail address.
        };
        let info: openidconnect::core::CoreUserInfoClaims = request
            .request_async(&self.http)
            .await
            .map_err(|error| match error {
                openidconnect::UserInfoError::ClaimsVerification(error) => {
                    OidcError::Invalid(error_chain(&error))
                }
                other => OidcError::Unavailable(error_chain(&other)),
            })?;
        identity.email = info.email().map(|email| email.as_str().to_owned());
        identity.email_verified = identity.email.is_some() && info.email_verified() == Some(true);
        if identity.name.is_none() {
            identity.name = info
                .name()
                .and_then(|name| name.get(None))
                .map(|name| name.as_str().to_owned());
        }
        Ok(())
    }

    /// The client over the provider's metadata, discovered now when there is none cached,
    /// it is older than [`METADATA_TTL`], or `refresh` asks for it.
    async fn client(&self, refresh: bool) -> Result<DiscoveredClient, OidcError> {
        let metadata = match self.cached_metadata(refresh) {
            Some(metadata) => metadata,
            None => {
                let metadata =
                    CoreProviderMetadata::discover_async(self.issuer.clone(), &self.http)
                        .await
                        .map_err(|error| OidcError::Unavailable(error_chain(&error)))?;
                if let Ok(mut cache) = self.metadata.lock() {
                    *cache = Some((Instant::now(), metadata.clone()));
                }
                metadata
            }
        };
        Ok(CoreClient::from_provider_metadata(
            metadata,
            self.client_id.clone(),
            self.client_secret.clone(),
        )
        .set_redirect_uri(self.redirect_uri.clone()))
    }

    fn cached_metadata(&self, refresh: bool) -> Option<CoreProviderMetadata> {
        if refresh {
            return None;
        }
        let cache = self.metadata.lock().ok()?;
        cache
            .as_ref()
            .filter(|(fetched, _)| fetched.elapsed() < METADATA_TTL)
            .map(|(_, metadata)| metadata.clone())
    }
}

async fn exchange_code(
    client: &DiscoveredClient,
    http: &HttpClient,
    code: &str,
    pending: &PendingLogin,
) -> Result<CoreTokenResponse, OidcError> {
    let request = client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .map_err(|_| OidcError::Unavailable("the provider has no token endpoint".to_owned()))?
        .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()));
    request
        .request_async(http)
        .await
        .map_err(|error| match error {
            RequestTokenError::ServerResponse(response) => {
                // Only the OAuth error code: its description is the provider's free text.
                OidcError::Refused(response.error().to_string())
            }
            other => OidcError::Unavailable(error_chain(&other)),
        })
}

/// Signature, issuer, audience, expiry, nonce; then the access-token hash when the token
/// carries one (so the access token used for userinfo is the one issued with it).
fn verify_id_token(
    client: &DiscoveredClient,
    tokens: &CoreTokenResponse,
    nonce: &Nonce,
) -> Result<CoreIdTokenClaims, ClaimsVerificationError> {
    let id_token = tokens
        .id_token()
        .ok_or_else(|| ClaimsVerificationError::Other("no ID token in the response".to_owned()))?;
    let verifier: CoreIdTokenVerifier<'_> = client.id_token_verifier();
    let claims = id_token.claims(&verifier, nonce)?;
    if let Some(expected) = claims.access_token_hash() {
        let algorithm = id_token
            .signing_alg()
            .map_err(ClaimsVerificationError::SignatureVerification)?;
        let key = id_token
            .signing_key(&verifier)
            .map_err(ClaimsVerificationError::SignatureVerification)?;
        let actual = AccessTokenHash::from_token(tokens.access_token(), algorithm, key)
            .map_err(|error| ClaimsVerificationError::Other(error.to_string()))?;
        if actual != *expected {
            return Err(ClaimsVerificationError::Other(
                "the access token does not match the ID token's at_hash".to_owned(),
            ));
        }
    }
    Ok(claims.clone())
}
