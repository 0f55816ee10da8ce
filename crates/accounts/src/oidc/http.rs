//! The HTTP client `openidconnect` talks through: the workspace's reqwest, so the crate's
//! own `reqwest` feature (an older major version) is not compiled in.
//!
//! It follows no redirects (the library's advice against request forgery: a discovery or
//! token response that redirects is an error), bounds every exchange in time, and reads at
//! most [`MAX_BODY_BYTES`] of a response, so a hostile or broken issuer cannot stall a
//! login or fill memory.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use openidconnect::{AsyncHttpClient, HttpRequest, HttpResponse};

/// Discovery documents, JWKS, token and userinfo responses are a few kilobytes.
const MAX_BODY_BYTES: usize = 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Why an exchange with the provider failed (no body, no token in the message).
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("could not build the HTTP client: {0}")]
    Client(String),
    #[error("request to the provider failed: {0}")]
    Request(String),
    #[error("the provider's response is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
}

/// A reqwest client configured for talking to OpenID providers.
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
}

impl HttpClient {
    pub fn new() -> Result<HttpClient, HttpError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // Logins are minutes apart: an idle pooled connection would rarely be reused,
            // and one the provider closed meanwhile could fail the next exchange.
            .pool_max_idle_per_host(0)
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("selextract/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| HttpError::Client(error_chain(&error)))?;
        Ok(HttpClient { client })
    }

    async fn execute(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let request = reqwest::Request::try_from(request)
            .map_err(|error| HttpError::Request(error_chain(&error)))?;
        let mut response = self
            .client
            .execute(request)
            .await
            .map_err(|error| HttpError::Request(error_chain(&error)))?;
        let mut builder = http_response(response.status());
        if let Some(headers) = builder.headers_mut() {
            *headers = response.headers().clone();
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| HttpError::Request(error_chain(&error)))?
        {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(HttpError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        builder
            .body(body)
            .map_err(|error| HttpError::Request(error.to_string()))
    }
}

fn http_response(status: reqwest::StatusCode) -> openidconnect::http::response::Builder {
    openidconnect::http::Response::builder().status(status.as_u16())
}

impl<'c> AsyncHttpClient<'c> for HttpClient {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.execute(request))
    }
}

/// An error and its sources on one line (reqwest's own message is only the outermost).
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
