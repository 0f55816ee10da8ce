//! `/api/v1/api-keys` and the key format helpers the CLI uses.

use axum::http::{Method, StatusCode};
use selextract_server::keys::{generate_api_key, hash_secret, parse_api_key};
use serde_json::json;

use crate::support::{ALL_SCOPES, TestApp, both_backends};

#[test]
fn generated_keys_parse_back_and_store_only_the_hash_of_the_secret() {
    let (full, public_id, hash) = generate_api_key();
    assert!(full.starts_with("sk_"));
    let (parsed_public, secret) = parse_api_key(&full).expect("parses");
    assert_eq!(parsed_public, public_id);
    assert_eq!(public_id.len(), 12);
    assert_eq!(secret.len(), 32);
    assert_eq!(hash, hash_secret(secret));
    assert_eq!(hash.len(), 64);
    assert!(!hash.contains(secret));
    let (other, _, _) = generate_api_key();
    assert_ne!(full, other);
    assert_eq!(parse_api_key("sk_abc_def"), None);
    assert_eq!(parse_api_key(&full.replace("sk_", "pk_")), None);
}

both_backends!(a_created_key_is_shown_once_and_works_with_its_scopes);
async fn a_created_key_is_shown_once_and_works_with_its_scopes() {
    let app = TestApp::new().await;
    let user = app.user("a@example.com").await;
    let response = app
        .post("/api/v1/api-keys", &user.key, json!({"name": "reader", "scopes": ["tasks:read"], "expires_at": "2999-01-01T00:00:00Z"}))
        .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
    let created = response.json();
    let key = created["key"].as_str().expect("the full key");
    assert_eq!(created["scopes"], json!(["tasks:read"]));
    assert_eq!(created["expires_at"], "2999-01-01T00:00:00.000Z");
    assert!(key.starts_with(created["prefix"].as_str().unwrap()));

    let listed = app.get("/api/v1/api-keys", &user.key).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert!(
        !listed.text().contains(key),
        "the secret never appears again"
    );
    let listed = listed.json();
    assert_eq!(listed["total_count"], 2);
    assert!(
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k.get("key").is_none())
    );

    assert_eq!(app.get("/api/v1/tasks", key).await.status, StatusCode::OK);
    let refused = app.post("/api/v1/tasks", key, json!({})).await;
    refused.assert_error(StatusCode::FORBIDDEN, "insufficient_scope");
}

both_backends!(key_creation_validates_scopes_names_and_expiry);
async fn key_creation_validates_scopes_names_and_expiry() {
    let app = TestApp::new().await;
    let user = app.user("a@example.com").await;
    let response = app
        .post("/api/v1/api-keys", &user.key, json!({"name": "", "scopes": ["tasks:read", "admin"], "expires_at": "2000-01-01T00:00:00Z"}))
        .await;
    let error = response.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let fields: Vec<_> = error["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["name", "scopes[1]", "expires_at"]);
}

both_backends!(a_key_cannot_create_a_key_with_scopes_it_does_not_hold);
async fn a_key_cannot_create_a_key_with_scopes_it_does_not_hold() {
    let app = TestApp::new().await;
    let user = app.user("a@example.com").await;
    let key_admin = app
        .key_for(&user.id, &["keys:write", "tasks:read"], None)
        .await;
    let response = app
        .post(
            "/api/v1/api-keys",
            &key_admin,
            json!({"name": "x", "scopes": ["tasks:write"]}),
        )
        .await;
    response.assert_error(StatusCode::FORBIDDEN, "insufficient_scope");
    let response = app
        .post(
            "/api/v1/api-keys",
            &key_admin,
            json!({"name": "x", "scopes": ["tasks:read"]}),
        )
        .await;
    assert_eq!(response.status, StatusCode::CREATED);
}

both_backends!(revoking_an_unknown_key_is_not_found);
async fn revoking_an_unknown_key_is_not_found() {
    let app = TestApp::new().await;
    let user = app.user("a@example.com").await;
    app.call(
        Method::DELETE,
        "/api/v1/api-keys/nope",
        Some(&user.key),
        None,
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "not_found");
}

both_backends!(using_a_key_records_when_it_was_last_used);
async fn using_a_key_records_when_it_was_last_used() {
    let app = TestApp::new().await;
    let user = app.user("a@example.com").await;
    let before = app.store.list_api_keys(&user.id).await.unwrap();
    assert!(before[0].last_used_at_ms.is_none());
    app.get("/api/v1/tasks", &user.key).await;
    let after = app.store.list_api_keys(&user.id).await.unwrap();
    assert!(after[0].last_used_at_ms.is_some());
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

both_backends!(a_key_minted_by_an_expiring_key_never_outlives_it);
async fn a_key_minted_by_an_expiring_key_never_outlives_it() {
    let app = TestApp::new().await;
    let user = app.user("a@example.com").await;
    let parent_expiry = chrono::Utc::now().timestamp_millis() + 3_600_000;
    let parent = app.key_for(&user.id, ALL_SCOPES, Some(parent_expiry)).await;

    let mint = |body: serde_json::Value, key: String| {
        let app = &app;
        async move {
            let response = app.post("/api/v1/api-keys", &key, body).await;
            assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
            response.json()
        }
    };
    // No expiry asked for: the caller's.
    let unbounded = mint(
        json!({"name": "child", "scopes": ["tasks:read", "keys:write"]}),
        parent.clone(),
    )
    .await;
    assert_eq!(unbounded["expires_at"], rfc3339(parent_expiry));
    // A later expiry asked for: still the caller's.
    let later = mint(
        json!({"name": "later", "scopes": ["tasks:read"], "expires_at": "9999-12-31T23:59:59Z"}),
        parent.clone(),
    )
    .await;
    assert_eq!(later["expires_at"], rfc3339(parent_expiry));
    // An earlier expiry is kept.
    let earlier_expiry = parent_expiry - 60_000;
    let earlier = mint(
        json!({"name": "earlier", "scopes": ["tasks:read"], "expires_at": rfc3339(earlier_expiry)}),
        parent.clone(),
    )
    .await;
    assert_eq!(earlier["expires_at"], rfc3339(earlier_expiry));
    // The bound carries down the chain: the child mints a grandchild that dies with it.
    let child = unbounded["key"].as_str().unwrap().to_owned();
    let grandchild = mint(
        json!({"name": "grandchild", "scopes": ["tasks:read"]}),
        child,
    )
    .await;
    assert_eq!(grandchild["expires_at"], rfc3339(parent_expiry));

    // What the store holds is what the response said.
    let stored = app.store.list_api_keys(&user.id).await.unwrap();
    for (name, expiry) in [
        ("child", parent_expiry),
        ("later", parent_expiry),
        ("earlier", earlier_expiry),
        ("grandchild", parent_expiry),
    ] {
        let key = stored.iter().find(|k| k.name == name).unwrap();
        assert_eq!(key.expires_at_ms, Some(expiry), "{name}");
    }
}

both_backends!(a_key_without_expiry_mints_keys_with_the_expiry_they_ask_for_or_none);
async fn a_key_without_expiry_mints_keys_with_the_expiry_they_ask_for_or_none() {
    let app = TestApp::new().await;
    let user = app.user("a@example.com").await;
    let response = app
        .post(
            "/api/v1/api-keys",
            &user.key,
            json!({"name": "forever", "scopes": ["tasks:read"]}),
        )
        .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
    assert_eq!(response.json()["expires_at"], serde_json::Value::Null);
}
