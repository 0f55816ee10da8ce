//! How a failed OpenID sign-in answers: the error envelope, or a small page when a browser
//! navigated here (the usual case), with the sign-in cookie cleared once the callback was
//! reached.

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// A browser navigation (the usual way here) gets a page; API clients get the envelope.
pub(super) fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

/// A failed sign-in: the error envelope (or a small page for a browser), with the sign-in
/// cookie cleared when the callback was reached.
#[derive(Debug)]
pub(super) struct OidcFailure {
    error: ApiError,
    clear_cookie: Option<HeaderValue>,
    html: bool,
}

impl OidcFailure {
    pub(super) fn new(error: ApiError, clear_cookie: Option<HeaderValue>, html: bool) -> Self {
        OidcFailure {
            error,
            clear_cookie,
            html,
        }
    }
}

impl IntoResponse for OidcFailure {
    fn into_response(self) -> Response {
        let (status, code) = self.error.status_and_code();
        let message = if status.is_server_error() {
            "the sign-in failed on our side; try again later".to_owned()
        } else {
            self.error.to_string()
        };
        let mut response = self.error.into_response();
        if self.html {
            let page = format!(
                "<!doctype html><meta charset=\"utf-8\"><title>Sign-in failed</title>\
                 <h1>Sign-in failed</h1><p>{}</p><p><code>{code}</code></p><p><a href=\"/\">Back</a></p>",
                escape_html(&message)
            );
            let (mut parts, _) = response.into_parts();
            parts.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            parts.headers.remove(header::CONTENT_LENGTH);
            response = Response::from_parts(parts, page.into());
        }
        if let Some(clear) = self.clear_cookie {
            response.headers_mut().append(header::SET_COOKIE, clear);
        }
        response
    }
}

fn escape_html(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}
