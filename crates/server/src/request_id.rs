//! `X-Request-ID` on every response: a valid incoming id is echoed, otherwise a UUID v7 is
//! made. The id is also visible to code running inside the request (error envelopes) through
//! a task-local, so no handler has to thread it through.

use axum::body::Body;
use axum::body::HttpBody as _;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being handled, when called inside one.
pub(crate) fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// An incoming id is kept when it is short and made of safe characters, so a client can
/// correlate its own logs without being able to inject anything into ours.
fn acceptable(value: &HeaderValue) -> Option<&str> {
    let text = value.to_str().ok()?;
    let ok = !text.is_empty()
        && text.len() <= 128
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    ok.then_some(text)
}

pub(crate) async fn assign_request_id(mut request: Request, next: Next) -> Response {
    let id = match request.headers().get(&X_REQUEST_ID).and_then(acceptable) {
        Some(id) => id.to_owned(),
        None => uuid::Uuid::now_v7().to_string(),
    };
    if let Ok(value) = HeaderValue::from_str(&id) {
        request.headers_mut().insert(X_REQUEST_ID.clone(), value);
    }
    let method = request.method().clone();
    let mut response = REQUEST_ID
        .scope(id.clone(), async move {
            let response = next.run(request).await;
            envelope_for_method_not_allowed(response, &method)
        })
        .await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(X_REQUEST_ID.clone(), value);
    }
    response
}

/// axum answers a known path with an unknown method by an empty 405; give it the envelope
/// like every other error.
fn envelope_for_method_not_allowed(response: Response, method: &Method) -> Response {
    if response.status() != StatusCode::METHOD_NOT_ALLOWED || !is_empty(response.body()) {
        return response;
    }
    let allow = response.headers().get(axum::http::header::ALLOW).cloned();
    let mut replaced =
        ApiError::MethodNotAllowed(format!("method {method} is not allowed on this route"))
            .into_response();
    if let Some(allow) = allow {
        replaced
            .headers_mut()
            .insert(axum::http::header::ALLOW, allow);
    }
    replaced
}

fn is_empty(body: &Body) -> bool {
    body.size_hint().exact() == Some(0)
}
