//! The route table and OpenAPI component schemas of `/api/v1/auth/…` (the handlers are in
//! `account.rs` and `login.rs`).

use axum::http::Method;
use serde_json::{Map, Value, json};

use super::{delete_account, get_me, logout, signup, update_me};
use crate::auth::Scope;
use crate::handlers::login;
use crate::routes::{Route, Success, def};

pub(crate) fn routes() -> Vec<Route> {
    use Method as M;
    use Success::{Empty, Json};
    vec![
        def(
            M::POST,
            "/api/v1/auth/signup",
            "signup",
            "Create an account (per the signup policy) and start a session",
        )
        .to(signup, &[], Some("Signup"), Json(201, "Account")),
        def(
            M::POST,
            "/api/v1/auth/login",
            "login",
            "Log in with e-mail and password: session cookies",
        )
        .to(login::login, &[], Some("Login"), Json(200, "Account")),
        def(
            M::POST,
            "/api/v1/auth/token",
            "issueToken",
            "A JWT access token and a rotating refresh token, for a password or a refresh token",
        )
        .to(
            login::issue_token,
            &[],
            Some("TokenRequest"),
            Json(200, "TokenResponse"),
        ),
        def(
            M::POST,
            "/api/v1/auth/logout",
            "logout",
            "End this session or token family (or all of them: everywhere)",
        )
        .scope(Scope::TasksRead)
        .to(logout, &[], Some("Logout"), Empty),
        def(
            M::GET,
            "/api/v1/auth/me",
            "getAccount",
            "The caller's account",
        )
        .scope(Scope::TasksRead)
        .to(get_me, &[], None, Json(200, "Account")),
        def(
            M::PUT,
            "/api/v1/auth/me",
            "updateAccount",
            "Change display name, e-mail or password (session or JWT only)",
        )
        .scope(Scope::TasksRead)
        .to(update_me, &[], Some("AccountUpdate"), Json(200, "Account")),
        def(
            M::DELETE,
            "/api/v1/auth/account",
            "deleteAccount",
            "Delete the account and all its data (session or JWT, and the password)",
        )
        .scope(Scope::TasksRead)
        .to(delete_account, &[], Some("AccountDeletion"), Empty),
    ]
}

pub(crate) fn schemas() -> Map<String, Value> {
    let timestamp = json!({"type": "string", "format": "date-time"});
    let nullable_timestamp = json!({"type": ["string", "null"], "format": "date-time"});
    let schemas = json!({
        "Account": {
            "type": "object",
            "required": ["id", "email", "plan", "is_admin", "email_verified", "created_at"],
            "properties": {
                "id": {"type": "string"},
                "email": {"type": "string"},
                "display_name": {"type": ["string", "null"]},
                "plan": {"type": "string"},
                "is_admin": {"type": "boolean"},
                "email_verified": {"type": "boolean"},
                "created_at": timestamp,
                "last_login_at": nullable_timestamp
            }
        },
        "Signup": {
            "type": "object",
            "required": ["email", "password"],
            "properties": {
                "email": {"type": "string"},
                "password": {"type": "string", "description": "10 characters to 1024 bytes."},
                "display_name": {"type": "string"},
                "invite_token": {"type": "string", "description": "Required when signup is invite_only."}
            }
        },
        "Login": {
            "type": "object",
            "required": ["email", "password"],
            "properties": {"email": {"type": "string"}, "password": {"type": "string"}}
        },
        "Logout": {
            "type": "object",
            "properties": {"everywhere": {"type": "boolean", "description": "End every session and token family of the account."}}
        },
        "AccountUpdate": {
            "type": "object",
            "properties": {
                "display_name": {"type": ["string", "null"]},
                "email": {"type": "string", "description": "Needs current_password; the new address is unverified."},
                "current_password": {"type": "string"},
                "new_password": {"type": "string", "description": "Needs current_password; ends the account's other sessions and token families."}
            }
        },
        "AccountDeletion": {
            "type": "object",
            "required": ["password"],
            "properties": {"password": {"type": "string"}}
        },
        "TokenRequest": {
            "type": "object",
            "required": ["grant_type"],
            "description": "`{grant_type: password, email, password}` or `{grant_type: refresh_token, refresh_token}`.",
            "properties": {
                "grant_type": {"type": "string", "enum": ["password", "refresh_token"]},
                "email": {"type": "string"},
                "password": {"type": "string"},
                "refresh_token": {"type": "string"}
            }
        },
        "TokenResponse": {
            "type": "object",
            "required": ["access_token", "token_type", "expires_in", "refresh_token"],
            "properties": {
                "access_token": {"type": "string", "description": "A JWT; send as `Authorization: Bearer …`."},
                "token_type": {"type": "string", "enum": ["Bearer"]},
                "expires_in": {"type": "integer", "description": "Seconds."},
                "refresh_token": {"type": "string", "description": "Single use: each use returns a new one."}
            }
        }
    });
    match schemas {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}
