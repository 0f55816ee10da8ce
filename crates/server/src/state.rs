//! What every handler can reach: the store, the results, the fetchers for previews, the
//! queue waker, the configuration and the in-process caches.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use selextract_config::{ExposeSecret, SecretString};
use selextract_fetch::Fetcher;
use selextract_results::ResultStore;
use selextract_store::{Store, StoreError};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::auth::KeyCache;
use crate::config::ServerConfig;
use crate::event_streams::EventStreams;
use crate::metrics::ActiveUsersGauge;
use crate::rate_limit::{InMemoryRateLimiter, RateLimiter};
use crate::signing::Signing;

/// Shared by all requests; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub results: ResultStore,
    /// The HTTP fetcher used by `POST /preview`.
    pub http: Arc<dyn Fetcher>,
    /// The browser fetcher for previews of `browser` tasks, when this process has one.
    pub browser: Option<Arc<dyn Fetcher>>,
    /// Woken on every enqueue so that an idle embedded worker claims at once.
    pub waker: Arc<Notify>,
    pub config: Arc<ServerConfig>,
    /// Renders `/metrics`; the CLI installs the matching recorder globally.
    pub metrics: PrometheusHandle,
    pub rate_limiter: Arc<dyn RateLimiter>,
    pub(crate) keys: Arc<KeyCache>,
    /// Open event streams, under the caps of `config.event_streams`.
    pub(crate) event_streams: Arc<EventStreams>,
    /// When `selextract_active_users` was last counted.
    pub(crate) active_users: Arc<ActiveUsersGauge>,
    /// Sends account mail (reset, verification, invitations); refuses when `[smtp]` has no
    /// host.
    pub(crate) mailer: Arc<selextract_mail::Mailer>,
    /// Cancelled when the server shuts down, so long-lived responses (SSE) end and graceful
    /// shutdown does not wait for them forever.
    pub(crate) shutdown: CancellationToken,
    /// `[auth] secret` when the operator set one (see [`crate::signing`]).
    pub(crate) auth_secret: Option<Arc<SecretString>>,
    /// The installation's signing keys, loaded on first use.
    pub(crate) signing: Arc<tokio::sync::OnceCell<Arc<Signing>>>,
    /// `[notifications]`: the retry window a redelivery gets.
    pub(crate) notify: Arc<selextract_notify::NotifyConfig>,
    /// Derives users' webhook signing secrets; the installation key is loaded on first use.
    pub(crate) webhook_secrets: Arc<tokio::sync::OnceCell<selextract_notify::WebhookSecrets>>,
    /// The `[auth.oidc]` providers, built on first use (handlers/oidc.rs).
    pub(crate) oidc: Arc<tokio::sync::OnceCell<Arc<selextract_accounts::oidc::OidcProviders>>>,
}

impl AppState {
    pub fn new(
        store: Store,
        results: ResultStore,
        http: Arc<dyn Fetcher>,
        waker: Arc<Notify>,
        config: ServerConfig,
        metrics: PrometheusHandle,
    ) -> Self {
        let event_streams = Arc::new(EventStreams::new(&config.event_streams));
        AppState {
            store,
            results,
            http,
            browser: None,
            waker,
            config: Arc::new(config),
            metrics,
            rate_limiter: Arc::new(InMemoryRateLimiter::default()),
            keys: Arc::new(KeyCache::default()),
            event_streams,
            active_users: Arc::new(ActiveUsersGauge::default()),
            mailer: Arc::new(selextract_mail::Mailer::disabled()),
            shutdown: CancellationToken::new(),
            auth_secret: None,
            signing: Arc::new(tokio::sync::OnceCell::new()),
            oidc: Arc::new(tokio::sync::OnceCell::new()),
            notify: Arc::new(selextract_notify::NotifyConfig::default()),
            webhook_secrets: Arc::new(tokio::sync::OnceCell::new()),
        }
    }

    /// Uses `[notifications]` (the retry window of redeliveries).
    pub fn with_notify_config(mut self, config: selextract_notify::NotifyConfig) -> Self {
        self.notify = Arc::new(config);
        self
    }

    /// The installation's webhook secrets (the key generated into the store by the first
    /// process that needs it): loaded once per process.
    pub(crate) async fn webhook_secrets(
        &self,
    ) -> Result<selextract_notify::WebhookSecrets, StoreError> {
        self.webhook_secrets
            .get_or_try_init(|| selextract_notify::WebhookSecrets::load(&self.store))
            .await
            .cloned()
    }

    /// Signs with `[auth] secret` instead of the secret generated into the store.
    pub fn with_auth_secret(mut self, secret: Option<SecretString>) -> Self {
        self.auth_secret = secret.map(Arc::new);
        self.signing = Arc::new(tokio::sync::OnceCell::new());
        self
    }

    /// The installation's signing keys (JWT, CSRF, signed cookies): loaded once per process.
    pub async fn signing(&self) -> Result<Arc<Signing>, StoreError> {
        self.signing
            .get_or_try_init(|| async {
                let configured = self.auth_secret.as_deref().map(ExposeSecret::expose_secret);
                Signing::load(&self.store, configured).await.map(Arc::new)
            })
            .await
            .cloned()
    }

    /// Adds a browser fetcher for previews of `browser` and `auto` tasks.
    pub fn with_browser(mut self, browser: Arc<dyn Fetcher>) -> Self {
        self.browser = Some(browser);
        self
    }

    /// Event streams open in this process now.
    pub fn open_event_streams(&self) -> usize {
        self.event_streams.open_streams()
    }

    /// Database polls of a task's latest run made by this process's event streams so far: a
    /// count that shows how often quiet streams read the store, whatever the clock says.
    pub fn event_stream_polls(&self) -> u64 {
        self.event_streams.polls()
    }

    /// Sends account mail through `mailer` (built from `[smtp]`).
    pub fn with_mailer(mut self, mailer: selextract_mail::Mailer) -> Self {
        self.mailer = Arc::new(mailer);
        self
    }

    /// Sends account mail through a sender shared with other parts of the process (the
    /// notification loop).
    pub fn with_shared_mailer(mut self, mailer: Arc<selextract_mail::Mailer>) -> Self {
        self.mailer = mailer;
        self
    }

    /// Replaces the in-memory rate limiter (e.g. with a shared one).
    pub fn with_rate_limiter(mut self, limiter: Arc<dyn RateLimiter>) -> Self {
        self.rate_limiter = limiter;
        self
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
