//! The API's one error type and its single table of stable codes and statuses (SPEC §7).
//!
//! Every failure a client can see is an [`ApiError`]; its body is always the envelope
//! `{"error", "message", "details", "request_id"}`. 5xx bodies are generic: the cause is
//! logged here, once, and never sent.

use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use selextract_store::StoreError;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::request_id::current_request_id;

/// One problem with one input value, named by its JSON path (`fields[2].selector`) or by the
/// query parameter (`sort`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorDetail {
    pub field: String,
    pub message: String,
}

impl ErrorDetail {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorDetail {
            field: field.into(),
            message: message.into(),
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the request is invalid; see details")]
    Validation(Vec<ErrorDetail>),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("this API key lacks the `{0}` scope")]
    InsufficientScope(&'static str),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    /// The run is queued or running and cannot be deleted yet.
    #[error("{0}")]
    RunActive(String),
    /// Unknown e-mail or wrong password: one message for both.
    #[error("the e-mail address or password is wrong")]
    InvalidCredentials,
    /// Too many failed logins; refused (even with the right password) until the lock ends.
    #[error("too many failed logins; retry in {retry_after_secs} s")]
    AccountLocked { retry_after_secs: u64 },
    #[error("{0}")]
    SignupClosed(String),
    #[error("an account with this e-mail address exists already")]
    EmailTaken,
    #[error("the e-mail address of this account is not verified yet")]
    EmailNotVerified,
    /// A cookie-authenticated request that changes state without the CSRF token.
    #[error("missing or wrong X-CSRF-Token header")]
    CsrfFailed,
    /// A refresh token or other presented token that is unknown, spent, expired or revoked.
    #[error("{0}")]
    TokenInvalid(String),
    /// An OpenID sign-in whose cookie is missing, forged, expired or for another state.
    #[error("{0}")]
    OidcStateInvalid(String),
    /// The OpenID provider refused, or its answer failed a check.
    #[error("{0}")]
    OidcRefused(String),
    /// The OpenID provider could not be reached or answered nonsense.
    #[error("{0}")]
    OidcUnavailable(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("insufficient compute units: {needed} needed, {available} available")]
    InsufficientComputeUnits { needed: u64, available: i64 },
    #[error("rate limit exceeded; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// The caller or the process is at its cap of open event streams.
    #[error("{0}")]
    TooManyStreams(String),
    #[error("{0}")]
    Maintenance(String),
    #[error("{0}")]
    Unavailable(String),
    /// A route that sends e-mail on a server without `[smtp] host`.
    #[error("e-mail is not configured on this server (smtp.host); ask the operator")]
    MailNotConfigured,
    /// A billing route while `[billing.lemon_squeezy]` is off.
    #[error("billing is not enabled on this server")]
    BillingDisabled,
    /// The payment provider failed or refused a call (the cause is logged, not sent).
    #[error("the payment provider could not be reached or refused the request; try again later")]
    BillingProvider,
    #[error("internal server error")]
    Internal(#[source] BoxError),
}

impl ApiError {
    /// The one table: variant → (HTTP status, stable `error` code).
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Validation(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            ApiError::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::InsufficientScope(_) => (StatusCode::FORBIDDEN, "insufficient_scope"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::RunActive(_) => (StatusCode::CONFLICT, "run_active"),
            ApiError::InvalidCredentials => (StatusCode::UNAUTHORIZED, "invalid_credentials"),
            ApiError::AccountLocked { .. } => (StatusCode::TOO_MANY_REQUESTS, "account_locked"),
            ApiError::SignupClosed(_) => (StatusCode::FORBIDDEN, "signup_closed"),
            ApiError::EmailTaken => (StatusCode::CONFLICT, "email_taken"),
            ApiError::EmailNotVerified => (StatusCode::FORBIDDEN, "email_not_verified"),
            ApiError::CsrfFailed => (StatusCode::FORBIDDEN, "csrf_failed"),
            ApiError::TokenInvalid(_) => (StatusCode::UNAUTHORIZED, "token_invalid"),
            ApiError::OidcStateInvalid(_) => (StatusCode::BAD_REQUEST, "oidc_state_invalid"),
            ApiError::OidcRefused(_) => (StatusCode::FORBIDDEN, "oidc_refused"),
            ApiError::OidcUnavailable(_) => (StatusCode::BAD_GATEWAY, "oidc_provider_unavailable"),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::InsufficientComputeUnits { .. } => {
                (StatusCode::PAYMENT_REQUIRED, "insufficient_compute_units")
            }
            ApiError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::TooManyStreams(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_streams"),
            ApiError::Maintenance(_) => (StatusCode::SERVICE_UNAVAILABLE, "maintenance"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::MailNotConfigured => (StatusCode::SERVICE_UNAVAILABLE, "mail_not_configured"),
            ApiError::BillingDisabled => (StatusCode::NOT_FOUND, "billing_disabled"),
            ApiError::BillingProvider => (StatusCode::BAD_GATEWAY, "billing_provider_error"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// Wraps any error as a 500 whose cause is logged but never sent.
    pub fn internal(error: impl Into<BoxError>) -> Self {
        ApiError::Internal(error.into())
    }

    pub fn not_found(what: &str) -> Self {
        ApiError::NotFound(format!("{what} not found"))
    }

    fn details(&self) -> Vec<ErrorDetail> {
        match self {
            ApiError::Validation(details) => details.clone(),
            ApiError::InsufficientScope(scope) => {
                vec![ErrorDetail::new("scope", format!("requires `{scope}`"))]
            }
            _ => Vec::new(),
        }
    }

    fn retry_after_secs(&self) -> Option<u64> {
        match self {
            ApiError::RateLimited { retry_after_secs }
            | ApiError::AccountLocked { retry_after_secs } => Some((*retry_after_secs).max(1)),
            // Streams last minutes; retrying at once would only be refused again.
            ApiError::TooManyStreams(_) => Some(10),
            ApiError::Unavailable(_) => Some(5),
            ApiError::Maintenance(_) => Some(60),
            _ => None,
        }
    }
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: &'static str,
    message: String,
    details: Vec<ErrorDetail>,
    request_id: Option<&'a str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let request_id = current_request_id();
        match &self {
            ApiError::Internal(cause) => {
                tracing::error!(request_id = request_id.as_deref(), error = %error_chain(cause.as_ref()), "request failed");
            }
            ApiError::Unavailable(cause) => {
                tracing::warn!(request_id = request_id.as_deref(), error = %cause, "dependency unavailable");
            }
            _ => {}
        }
        let message = match &self {
            // The cause of a 5xx stays in the log.
            ApiError::Internal(_) => "internal server error".to_owned(),
            ApiError::Unavailable(_) => {
                "a backing service is unavailable; retry shortly".to_owned()
            }
            other => other.to_string(),
        };
        let envelope = Envelope {
            error: code,
            message,
            details: self.details(),
            request_id: request_id.as_deref(),
        };
        let mut response = (status, axum::Json(envelope)).into_response();
        let headers = response.headers_mut();
        if let Some(seconds) = self.retry_after_secs() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if matches!(self, ApiError::Unauthorized(_)) {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        if error.is_unavailable() {
            return ApiError::Unavailable(error.to_string());
        }
        match error {
            StoreError::Conflict(what) => ApiError::Conflict(what),
            StoreError::NotFound(what) => ApiError::NotFound(what),
            StoreError::InvalidArgument(what) => ApiError::InvalidRequest(what),
            other => ApiError::internal(other),
        }
    }
}

impl From<selextract_spec::ValidationErrors> for ApiError {
    fn from(errors: selextract_spec::ValidationErrors) -> Self {
        ApiError::Validation(
            errors
                .0
                .into_iter()
                .map(|e| ErrorDetail::new(e.path, e.message))
                .collect(),
        )
    }
}

/// A JSON request body whose every failure (too large, unreadable, malformed) comes out in
/// the error envelope. Any `Content-Type` is accepted: the body is JSON by contract, and
/// `curl -d` sends a form type by default.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(request, state).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Like [`ApiJson`], but an empty body is `None` (for routes whose body is optional).
#[derive(Debug)]
pub struct OptionalJson<T>(pub Option<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(request, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(None));
        }
        parse_json(&bytes).map(|value| OptionalJson(Some(value)))
    }
}

async fn read_body<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge("the request body is larger than the limit".to_owned())
            } else {
                ApiError::InvalidRequest(format!(
                    "could not read the request body: {}",
                    rejection.body_text()
                ))
            }
        })
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|error| ApiError::InvalidRequest(format!("malformed JSON body: {error}")))
}

/// Query parameters whose parse failures come out in the error envelope.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| ApiQuery(value))
            .map_err(|rejection| {
                ApiError::InvalidRequest(format!("invalid query string: {}", rejection.body_text()))
            })
    }
}
