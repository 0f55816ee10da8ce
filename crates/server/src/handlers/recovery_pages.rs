//! The pages the e-mailed links open: choose a new password (reset and the first
//! administrator's setup link), confirm an address, accept an invitation. Server-rendered,
//! no script, no external asset, no session needed.
//!
//! Each page is sent with a Content-Security-Policy that allows nothing but its own inline
//! style (by hash) and forms posting back to this origin, `Referrer-Policy: no-referrer`
//! (the token is in the URL) and `Cache-Control: no-store`. Values shown are HTML-escaped.
//! A token reaches a page only in the GET's query string and the POST's form body; it is
//! written back (into the form's hidden field) only after it was checked to be shaped like
//! one of ours, so a crafted "token" is never echoed. A GET never spends a token: mail
//! scanners that open links must not use them up, so each page is a form the person sends.

use std::sync::LazyLock;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use selextract_accounts::Email;
use selextract_accounts::password::{check_new_password, hash_password};
use selextract_store::{AccountTokenPurpose as Purpose, StoreError};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::audit::ClientIp;
use crate::error::ApiError;
use crate::handlers::account::{NewAccount, create_default_account, refuse_registered_email};
use crate::handlers::login::run_blocking;
use crate::handlers::recovery::{
    reset_password_with_token, spend_invitation, token_hash, verify_email_with_token,
};
use crate::routes::{Route, Success, def};
use crate::state::AppState;
use crate::time::now_ms;

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;\
padding:0 1rem;color:#222}label{display:block;margin:.8rem 0 .2rem}input{width:100%;\
padding:.4rem;box-sizing:border-box}button{margin-top:1rem;padding:.5rem 1rem}\
.error{color:#a00}";

/// The pages' Content-Security-Policy: the inline style by its hash, forms to this origin.
static CSP: LazyLock<HeaderValue> = LazyLock::new(|| {
    let digest = Sha256::digest(STYLE.as_bytes());
    let hash = base64::engine::general_purpose::STANDARD.encode(digest);
    let policy = format!(
        "default-src 'none'; style-src 'sha256-{hash}'; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'"
    );
    HeaderValue::from_str(&policy)
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
});

pub(crate) fn routes() -> Vec<Route> {
    use Method as M;
    use Success::Html;
    let token_query: &'static [crate::routes::QueryParam] =
        &[("token", "string", "The token of the e-mailed link.")];
    vec![
        def(
            M::GET,
            "/account/reset-password",
            "resetPasswordPage",
            "Page: choose a new password (reset or first-start link)",
        )
        .to(reset_page, token_query, None, Html),
        def(
            M::POST,
            "/account/reset-password",
            "resetPasswordForm",
            "Form: set the new password (form fields token, new_password, confirm_password)",
        )
        .to(reset_submit, &[], None, Html),
        def(
            M::GET,
            "/account/verify-email",
            "verifyEmailPage",
            "Page: confirm an e-mail address",
        )
        .to(verify_page, token_query, None, Html),
        def(
            M::POST,
            "/account/verify-email",
            "verifyEmailForm",
            "Form: confirm the address (form field token)",
        )
        .to(verify_submit, &[], None, Html),
        def(
            M::GET,
            "/account/accept-invitation",
            "invitationPage",
            "Page: create the invited account",
        )
        .to(invitation_page, token_query, None, Html),
        def(
            M::POST,
            "/account/accept-invitation",
            "invitationForm",
            "Form: create the invited account (form fields token, password, confirm_password)",
        )
        .to(invitation_submit, &[], None, Html),
    ]
}

#[derive(Debug, Deserialize)]
pub(crate) struct TokenQuery {
    #[serde(default)]
    token: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct PasswordForm {
    #[serde(default)]
    token: String,
    /// `new_password` on the reset form, `password` on the invitation form.
    #[serde(default, alias = "password")]
    new_password: String,
    #[serde(default)]
    confirm_password: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct TokenForm {
    #[serde(default)]
    token: String,
}

async fn reset_page(State(state): State<AppState>, Query(query): Query<TokenQuery>) -> Response {
    let token = query.token.unwrap_or_default();
    match live_token(
        &state,
        &token,
        &[Purpose::PasswordReset, Purpose::AdminSetup],
    )
    .await
    {
        Ok(Some(email)) => page(
            StatusCode::OK,
            "Choose a new password",
            &reset_form(&token, &email, None),
        ),
        Ok(None) => invalid_link_page(),
        Err(error) => error_page(error),
    }
}

async fn reset_submit(
    State(state): State<AppState>,
    ip: ClientIp,
    Form(form): Form<PasswordForm>,
) -> Response {
    if form.new_password != form.confirm_password {
        return reshow_reset(&state, &form.token, "The two passwords differ.").await;
    }
    match reset_password_with_token(&state, &form.token, &form.new_password, &ip).await {
        Ok(user) => page(
            StatusCode::OK,
            "Password set",
            &format!(
                "<p>The password of <strong>{}</strong> is set. Every earlier login of this \
                 account has ended; log in again with the new password.</p>",
                escape(&user.email)
            ),
        ),
        Err(ApiError::Validation(details)) => {
            let message = details.first().map_or_else(
                || "Choose another password.".to_owned(),
                |d| d.message.clone(),
            );
            reshow_reset(&state, &form.token, &message).await
        }
        Err(ApiError::TokenInvalid(_)) => invalid_link_page(),
        Err(error) => error_page(error),
    }
}

/// The reset form again, with `problem` above it, while the link is still live.
async fn reshow_reset(state: &AppState, token: &str, problem: &str) -> Response {
    match live_token(state, token, &[Purpose::PasswordReset, Purpose::AdminSetup]).await {
        Ok(Some(email)) => page(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Choose a new password",
            &reset_form(token, &email, Some(problem)),
        ),
        Ok(None) => invalid_link_page(),
        Err(error) => error_page(error),
    }
}

fn reset_form(token: &str, email: &str, problem: Option<&str>) -> String {
    format!(
        "{}<p>New password for <strong>{}</strong> (at least 10 characters).</p>\
         <form method=\"post\" action=\"/account/reset-password\">\
         <input type=\"hidden\" name=\"token\" value=\"{}\">\
         <label for=\"new_password\">New password</label>\
         <input id=\"new_password\" name=\"new_password\" type=\"password\" autocomplete=\"new-password\" required minlength=\"10\">\
         <label for=\"confirm_password\">Repeat it</label>\
         <input id=\"confirm_password\" name=\"confirm_password\" type=\"password\" autocomplete=\"new-password\" required minlength=\"10\">\
         <button type=\"submit\">Set password</button></form>",
        problem_html(problem),
        escape(email),
        escape(token),
    )
}

async fn verify_page(State(state): State<AppState>, Query(query): Query<TokenQuery>) -> Response {
    let token = query.token.unwrap_or_default();
    match live_token(&state, &token, &[Purpose::VerifyEmail]).await {
        Ok(Some(email)) => page(
            StatusCode::OK,
            "Confirm your address",
            &format!(
                "<p>Confirm that <strong>{}</strong> is your address.</p>\
                 <form method=\"post\" action=\"/account/verify-email\">\
                 <input type=\"hidden\" name=\"token\" value=\"{}\">\
                 <button type=\"submit\">Confirm</button></form>",
                escape(&email),
                escape(&token)
            ),
        ),
        Ok(None) => invalid_link_page(),
        Err(error) => error_page(error),
    }
}

async fn verify_submit(
    State(state): State<AppState>,
    ip: ClientIp,
    Form(form): Form<TokenForm>,
) -> Response {
    match verify_email_with_token(&state, &form.token, &ip).await {
        Ok(()) => page(
            StatusCode::OK,
            "Address confirmed",
            "<p>Your e-mail address is confirmed.</p>",
        ),
        Err(ApiError::TokenInvalid(_)) => invalid_link_page(),
        Err(error) => error_page(error),
    }
}

async fn invitation_page(
    State(state): State<AppState>,
    Query(query): Query<TokenQuery>,
) -> Response {
    let token = query.token.unwrap_or_default();
    match live_token(&state, &token, &[Purpose::Invitation]).await {
        Ok(Some(email)) => page(
            StatusCode::OK,
            "Create your account",
            &invitation_form(&token, &email, None),
        ),
        Ok(None) => invalid_link_page(),
        Err(error) => error_page(error),
    }
}

async fn invitation_submit(
    State(state): State<AppState>,
    ip: ClientIp,
    Form(form): Form<PasswordForm>,
) -> Response {
    let email = match live_token(&state, &form.token, &[Purpose::Invitation]).await {
        Ok(Some(email)) => email,
        Ok(None) => return invalid_link_page(),
        Err(error) => return error_page(error),
    };
    let problem = if form.new_password != form.confirm_password {
        Some("The two passwords differ.".to_owned())
    } else {
        check_new_password(&form.new_password)
            .err()
            .map(|e| e.to_string())
    };
    if let Some(problem) = problem {
        return page(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Create your account",
            &invitation_form(&form.token, &email, Some(&problem)),
        );
    }
    match accept_invitation(&state, &form.token, &email, &form.new_password, &ip).await {
        Ok(()) => page(
            StatusCode::OK,
            "Account created",
            &format!(
                "<p>The account <strong>{}</strong> is ready. Log in with this address and \
                 your password.</p>",
                escape(&email)
            ),
        ),
        Err(ApiError::SignupClosed(_)) => invalid_link_page(),
        Err(ApiError::EmailTaken) => page(
            StatusCode::CONFLICT,
            "Account exists",
            "<p>An account with this address exists already. Log in, or reset its password.</p>",
        ),
        Err(error) => error_page(error),
    }
}

/// Hashes the password, spends the invitation (for its own address), creates the account
/// on the default plan and marks the address verified (the invitation was read there).
async fn accept_invitation(
    state: &AppState,
    token: &str,
    email: &str,
    password: &str,
    ip: &ClientIp,
) -> Result<(), ApiError> {
    let email = Email::parse(email).map_err(|_| crate::handlers::recovery::invalid_link())?;
    let cost = state.config.auth.password.clone();
    let owned = password.to_owned();
    let password_hash = run_blocking(move || hash_password(&cost, &owned))
        .await?
        .map_err(|error| ApiError::InvalidRequest(error.to_string()))?;
    refuse_registered_email(state, email.as_str()).await?;
    spend_invitation(state, token, &email).await?;
    let user =
        create_default_account(state, email.as_str(), NewAccount::Password(password_hash)).await?;
    state
        .store
        .set_email_verified(&user.id, email.as_str(), now_ms())
        .await?;
    let event =
        crate::audit::Event::by_user(&user.id, "signup", serde_json::json!({"via": "invitation"}));
    crate::audit::record(state, ip, event).await;
    crate::metrics::user_registered();
    Ok(())
}

fn invitation_form(token: &str, email: &str, problem: Option<&str>) -> String {
    format!(
        "{}<p>You were invited to create an account for <strong>{}</strong>. Choose a \
         password (at least 10 characters).</p>\
         <form method=\"post\" action=\"/account/accept-invitation\">\
         <input type=\"hidden\" name=\"token\" value=\"{}\">\
         <label for=\"password\">Password</label>\
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"new-password\" required minlength=\"10\">\
         <label for=\"confirm_password\">Repeat it</label>\
         <input id=\"confirm_password\" name=\"confirm_password\" type=\"password\" autocomplete=\"new-password\" required minlength=\"10\">\
         <button type=\"submit\">Create account</button></form>",
        problem_html(problem),
        escape(email),
        escape(token),
    )
}

/// The address of the live token `token` when it has one of `purposes`; `None` for
/// anything else, including text not shaped like a token.
async fn live_token(
    state: &AppState,
    token: &str,
    purposes: &[Purpose],
) -> Result<Option<String>, StoreError> {
    let Ok(hash) = token_hash(token) else {
        return Ok(None);
    };
    Ok(state
        .store
        .find_live_account_token(&hash, now_ms())
        .await?
        .filter(|found| purposes.contains(&found.purpose))
        .map(|found| found.email))
}

fn problem_html(problem: Option<&str>) -> String {
    problem.map_or_else(String::new, |p| {
        format!("<p class=\"error\">{}</p>", escape(p))
    })
}

fn invalid_link_page() -> Response {
    page(
        StatusCode::BAD_REQUEST,
        "Link not valid",
        "<p>This link is invalid, was used already, or has expired. Ask for a new one.</p>",
    )
}

/// A failure behind the page: the cause goes to the log (through the API error), the page
/// says only that it failed.
fn error_page(error: impl Into<ApiError>) -> Response {
    let error = error.into();
    let (status, _) = error.status_and_code();
    if status.is_server_error() {
        tracing::warn!(error = %error, "an account page failed");
    }
    page(
        status,
        "Something went wrong",
        "<p>The request could not be completed. Try again in a moment.</p>",
    )
}

/// A whole HTML page with its security headers. `body` is trusted markup: every value in
/// it was escaped by the caller.
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\"><title>{title} · Selextract</title>\
         <style>{STYLE}</style></head><body><h1>{title}</h1>{body}</body></html>",
        title = escape(title),
    );
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CONTENT_SECURITY_POLICY, CSP.clone());
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    (status, headers, html).into_response()
}

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_both_quotes() {
        assert_eq!(
            escape("<script>alert('x')</script>&\"ü"),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;ü"
        );
    }

    #[test]
    fn the_policy_names_the_style_by_its_hash() {
        let policy = CSP.to_str().unwrap_or_default().to_owned();
        assert!(
            policy.starts_with("default-src 'none'; style-src 'sha256-"),
            "{policy}"
        );
        assert!(!policy.contains("unsafe"));
    }
}
