//! The audit log through the API: key creation and revocation and admin changes are
//! recorded with actor and client address; administrators read everything, with filters
//! and keyset pages; each user reads only their own account's entries; nothing in an entry
//! is a secret; and no route changes or removes an entry.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::admin_users::{admin, config_with_plans};
use crate::support::{TestApp, TestResponse, both_backends, from_peer, request};

async fn call_from(
    app: &TestApp,
    peer: &str,
    method: Method,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> TestResponse {
    app.send(from_peer(request(method, path, Some(key), body), peer))
        .await
}

fn items(page: &Value) -> &Vec<Value> {
    page["items"].as_array().unwrap()
}

fn events(page: &Value) -> Vec<&str> {
    items(page)
        .iter()
        .map(|entry| entry["event"].as_str().unwrap())
        .collect()
}

both_backends!(key_creation_and_revocation_are_audited_with_actor_and_address_and_no_key);
async fn key_creation_and_revocation_are_audited_with_actor_and_address_and_no_key() {
    let app = TestApp::new().await;
    let user = app.user("a@example.com").await;
    let created = call_from(
        &app,
        "203.0.113.7:4711",
        Method::POST,
        "/api/v1/api-keys",
        &user.key,
        Some(json!({"name": "ci ☃ <script>", "scopes": ["tasks:read"]})),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let created = created.json();
    let new_key = created["key"].as_str().unwrap().to_owned();
    let key_id = created["id"].as_str().unwrap().to_owned();
    let revoked = call_from(
        &app,
        "[2001:db8::1]:443",
        Method::DELETE,
        &format!("/api/v1/api-keys/{key_id}"),
        &user.key,
        None,
    )
    .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    // Revoking it again succeeds (revocation is idempotent) and records nothing more.
    let again = call_from(
        &app,
        "203.0.113.7:4711",
        Method::DELETE,
        &format!("/api/v1/api-keys/{key_id}"),
        &user.key,
        None,
    )
    .await;
    assert_eq!(again.status, StatusCode::NO_CONTENT);
    // Another user's key id, or an unknown one, is a 404 and records nothing.
    let other = app.user("b@example.com").await;
    let foreign = call_from(
        &app,
        "203.0.113.7:4711",
        Method::DELETE,
        &format!("/api/v1/api-keys/{key_id}"),
        &other.key,
        None,
    )
    .await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);
    let others = app.get("/api/v1/auth/audit", &other.key).await.json();
    assert!(items(&others).is_empty(), "{others}");

    let response = app.get("/api/v1/auth/audit", &user.key).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let page = response.json();
    assert_eq!(
        events(&page),
        ["api_key_revoked", "api_key_created"],
        "{page}"
    );
    let revoked = &page["items"][0];
    assert_eq!(revoked["user_id"], user.id.as_str());
    assert_eq!(revoked["actor"], user.id.as_str());
    assert_eq!(revoked["ip"], "2001:db8::1");
    assert_eq!(revoked["details"]["key_id"], key_id.as_str());
    let created_entry = &page["items"][1];
    assert_eq!(created_entry["ip"], "203.0.113.7");
    assert_eq!(created_entry["details"]["key_id"], key_id.as_str());
    assert_eq!(created_entry["details"]["name"], "ci ☃ <script>");
    assert_eq!(created_entry["details"]["scopes"], json!(["tasks:read"]));
    assert!(created_entry["created_at"].is_string());

    // No key material: neither the new key, nor its secret part, nor the caller's key.
    let text = response.text();
    let (_, secret) = new_key.rsplit_once('_').unwrap();
    let (_, caller_secret) = user.key.rsplit_once('_').unwrap();
    for needle in [new_key.as_str(), secret, user.key.as_str(), caller_secret] {
        assert!(!text.contains(needle), "the log holds {needle:?}: {text}");
    }
}

both_backends!(admins_read_every_entry_with_filters_and_others_are_refused);
async fn admins_read_every_entry_with_filters_and_others_are_refused() {
    let app = TestApp::with_config(config_with_plans()).await;
    let root = admin(&app, "root@example.com").await;
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    for who in [&alice, &bob] {
        let created = app
            .post(
                "/api/v1/api-keys",
                &who.key,
                json!({"name": "k", "scopes": ["tasks:read"]}),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED);
    }
    let changed = call_from(
        &app,
        "198.51.100.9:1",
        Method::PUT,
        &format!("/api/v1/admin/users/{}", alice.id),
        &root.key,
        Some(json!({"plan": "pro", "disabled": true})),
    )
    .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text());
    // A request that changes nothing records nothing.
    let unchanged = app
        .call(
            Method::PUT,
            &format!("/api/v1/admin/users/{}", alice.id),
            Some(&root.key),
            Some(json!({"plan": "pro"})),
        )
        .await;
    assert_eq!(unchanged.status, StatusCode::OK);

    let all = app.get("/api/v1/admin/audit", &root.key).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text());
    let all = all.json();
    assert_eq!(
        events(&all),
        ["admin_user_changed", "api_key_created", "api_key_created"],
        "newest first: {all}"
    );
    let change = &all["items"][0];
    assert_eq!(change["user_id"], alice.id.as_str());
    assert_eq!(change["actor"], root.id.as_str());
    assert_eq!(change["ip"], "198.51.100.9");
    assert_eq!(
        change["details"]["changes"],
        json!({"plan": {"from": "self-hosted", "to": "pro"}, "disabled": {"from": false, "to": true}})
    );
    assert_eq!(all["has_more"], false);
    assert_eq!(all["next_before"], Value::Null);

    let of_bob = app
        .get(
            &format!("/api/v1/admin/audit?user_id={}", bob.id),
            &root.key,
        )
        .await
        .json();
    assert_eq!(events(&of_bob), ["api_key_created"]);
    assert_eq!(of_bob["items"][0]["user_id"], bob.id.as_str());
    let changes = app
        .get("/api/v1/admin/audit?event=admin_user_changed", &root.key)
        .await
        .json();
    assert_eq!(events(&changes), ["admin_user_changed"]);
    let nothing = app
        .get("/api/v1/admin/audit?user_id=nobody", &root.key)
        .await
        .json();
    assert!(items(&nothing).is_empty());

    for who in [&alice, &bob] {
        let response = app.get("/api/v1/admin/audit", &who.key).await;
        // Alice is disabled by now: refused before the admin check.
        if who.id == alice.id {
            response.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
        } else {
            response.assert_error(StatusCode::FORBIDDEN, "forbidden");
        }
    }
}

both_backends!(a_user_sees_only_their_own_entries_and_not_an_admins_address);
async fn a_user_sees_only_their_own_entries_and_not_an_admins_address() {
    let app = TestApp::with_config(config_with_plans()).await;
    let root = admin(&app, "root@example.com").await;
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    for who in [&alice, &bob, &root] {
        let created = app
            .post(
                "/api/v1/api-keys",
                &who.key,
                json!({"name": "k", "scopes": ["tasks:read"]}),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED);
    }
    let changed = call_from(
        &app,
        "198.51.100.9:1",
        Method::PUT,
        &format!("/api/v1/admin/users/{}", alice.id),
        &root.key,
        Some(json!({"plan": "pro"})),
    )
    .await;
    assert_eq!(changed.status, StatusCode::OK);

    let own = app.get("/api/v1/auth/audit", &alice.key).await.json();
    assert_eq!(events(&own), ["admin_user_changed", "api_key_created"]);
    for entry in items(&own) {
        assert_eq!(entry["user_id"], alice.id.as_str(), "{entry}");
    }
    // The change was made by the administrator: Alice sees who, not from where.
    assert_eq!(own["items"][0]["actor"], root.id.as_str());
    assert_eq!(own["items"][0]["ip"], Value::Null);

    let bobs = app.get("/api/v1/auth/audit", &bob.key).await.json();
    assert_eq!(events(&bobs), ["api_key_created"]);
    // Asking for someone else's entries is refused, not silently narrowed.
    let response = app
        .get(
            &format!("/api/v1/auth/audit?user_id={}", alice.id),
            &bob.key,
        )
        .await;
    let error = response.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(error["details"][0]["field"], "user_id");
}

both_backends!(audit_pages_go_backwards_by_id_without_gaps_or_repeats);
async fn audit_pages_go_backwards_by_id_without_gaps_or_repeats() {
    let app = TestApp::new().await;
    let user = app.user("a@example.com").await;
    for n in 0..7 {
        let created = app
            .post(
                "/api/v1/api-keys",
                &user.key,
                json!({"name": format!("key {n}"), "scopes": ["tasks:read"]}),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED);
    }
    let mut names = Vec::new();
    let mut before: Option<i64> = None;
    let mut pages = 0;
    loop {
        let path = match before {
            None => "/api/v1/auth/audit?limit=3".to_owned(),
            Some(id) => format!("/api/v1/auth/audit?limit=3&before={id}"),
        };
        let page = app.get(&path, &user.key).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        let page = page.json();
        pages += 1;
        names.extend(
            items(&page)
                .iter()
                .map(|entry| entry["details"]["name"].as_str().unwrap().to_owned()),
        );
        if page["has_more"] == false {
            assert_eq!(page["next_before"], Value::Null);
            break;
        }
        before = Some(page["next_before"].as_i64().unwrap());
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..7).rev().map(|n| format!("key {n}")).collect();
    assert_eq!(names, expected);

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("before=-1", "before"),
        ("before=9999999999999999999999", "before"),
        ("event=Login", "event"),
        ("event=login%27%20OR%201=1", "event"),
    ] {
        let response = app
            .get(&format!("/api/v1/auth/audit?{query}"), &user.key)
            .await;
        let error = response.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(error["details"][0]["field"], field, "{query}");
    }
    let filtered = app
        .get("/api/v1/auth/audit?event=api_key_revoked", &user.key)
        .await
        .json();
    assert!(items(&filtered).is_empty());
}

both_backends!(no_route_changes_or_removes_an_entry_and_they_outlive_the_account);
async fn no_route_changes_or_removes_an_entry_and_they_outlive_the_account() {
    let app = TestApp::with_config(config_with_plans()).await;
    let root = admin(&app, "root@example.com").await;
    let user = app.user("a@example.com").await;
    let created = app
        .post(
            "/api/v1/api-keys",
            &user.key,
            json!({"name": "k", "scopes": ["tasks:read"]}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let before = app.get("/api/v1/admin/audit", &root.key).await.json();
    let id = before["items"][0]["id"].as_i64().unwrap();
    for method in [Method::PUT, Method::DELETE, Method::POST, Method::PATCH] {
        for path in [
            "/api/v1/admin/audit".to_owned(),
            format!("/api/v1/admin/audit/{id}"),
            "/api/v1/auth/audit".to_owned(),
            format!("/api/v1/auth/audit/{id}"),
        ] {
            let response = app
                .call(method.clone(), &path, Some(&root.key), Some(json!({})))
                .await;
            assert!(
                matches!(
                    response.status,
                    StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_FOUND
                ),
                "{method} {path}: {}",
                response.status
            );
        }
    }
    // The account goes; its entries stay (no foreign key), readable by administrators,
    // anonymised like its ledger entries (the deletion's one change to audit rows).
    let report = app
        .store
        .delete_user_and_data(&user.id)
        .await
        .unwrap()
        .unwrap();
    let anonymous = report.anonymised_as.unwrap();
    let after = app.get("/api/v1/admin/audit", &root.key).await.json();
    let ids = |page: &serde_json::Value| -> Vec<(i64, String)> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["id"].as_i64().unwrap(),
                    e["event"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    assert_eq!(ids(&after), ids(&before));
    assert_eq!(after["items"][0]["user_id"], anonymous.as_str());
    assert!(!after.to_string().contains(&user.id));
}
