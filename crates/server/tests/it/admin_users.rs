//! `/api/v1/admin/users`: listing with filters and pages, reading and changing one user,
//! the last-administrator guard, and a disabled user refused at once on every process.

use axum::http::{Method, StatusCode};
use selextract_server::ServerConfig;
use selextract_store::{NewUser, Plan, Plans};
use serde_json::{Value, json};

use crate::support::{ALL_SCOPES, TestApp, TestUser, both_backends, request, send_via};

/// A configuration with three plans, so plan changes and plan filters mean something.
pub fn config_with_plans() -> ServerConfig {
    let mut plans = Plans::default();
    let base = plans
        .plans
        .values()
        .next()
        .cloned()
        .expect("a default plan");
    for (name, max_concurrent_runs, monthly) in [("free", 1, None), ("pro", 5, Some(1000))] {
        plans.plans.insert(
            name.to_owned(),
            Plan {
                max_concurrent_runs,
                monthly_compute_units: monthly,
                ..base.clone()
            },
        );
    }
    plans.billing_enabled = true;
    ServerConfig {
        plans,
        ..ServerConfig::default()
    }
}

/// An enabled administrator with a key holding every scope.
pub async fn admin(app: &TestApp, email: &str) -> TestUser {
    let user = app
        .store
        .create_user(NewUser {
            email: email.to_owned(),
            password_hash: None,
            is_admin: true,
            plan: "self-hosted".to_owned(),
            max_concurrent_runs: 8,
        })
        .await
        .unwrap();
    let key = app.key_for(&user.id, ALL_SCOPES, None).await;
    TestUser { id: user.id, key }
}

async fn put_user(
    app: &TestApp,
    key: &str,
    user_id: &str,
    body: Value,
) -> crate::support::TestResponse {
    app.call(
        Method::PUT,
        &format!("/api/v1/admin/users/{user_id}"),
        Some(key),
        Some(body),
    )
    .await
}

fn emails(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|user| user["email"].as_str().unwrap().to_owned())
        .collect()
}

both_backends!(an_admin_lists_users_with_filters_and_pages);
async fn an_admin_lists_users_with_filters_and_pages() {
    let app = TestApp::with_config(config_with_plans()).await;
    let root = admin(&app, "root@example.com").await;
    let alice = app.user_on_plan("alice@shop.example", "pro").await;
    app.user_on_plan("bob@shop.example", "free").await;
    app.user_on_plan("carol@other.example", "pro").await;
    // `_` and `%` are literal characters in the filter, not LIKE wildcards.
    app.user_on_plan("d_e%f@other.example", "free").await;
    app.store.set_user_disabled(&alice.id, true).await.unwrap();

    let all = app.get("/api/v1/admin/users", &root.key).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text());
    let all = all.json();
    assert_eq!(all["total_count"], 5);
    assert_eq!(
        emails(&all),
        [
            "root@example.com",
            "alice@shop.example",
            "bob@shop.example",
            "carol@other.example",
            "d_e%f@other.example"
        ],
        "oldest first"
    );
    let root_row = &all["items"][0];
    assert_eq!(root_row["is_admin"], true);
    assert_eq!(root_row["has_password"], false);
    assert!(root_row.get("password_hash").is_none(), "{root_row}");

    let cases: &[(&str, &[&str])] = &[
        (
            "email_contains=SHOP",
            &["alice@shop.example", "bob@shop.example"],
        ),
        ("email_contains=_", &["d_e%f@other.example"]),
        ("email_contains=%25", &["d_e%f@other.example"]),
        ("email_contains=nobody", &[]),
        ("plan=pro", &["alice@shop.example", "carol@other.example"]),
        ("plan=pro&disabled=false", &["carol@other.example"]),
        ("disabled=true", &["alice@shop.example"]),
        ("is_admin=true", &["root@example.com"]),
        (
            "is_admin=false&plan=free&email_contains=bob",
            &["bob@shop.example"],
        ),
        ("email_contains='%20OR%201=1--", &[]),
    ];
    for (query, expected) in cases {
        let page = app
            .get(&format!("/api/v1/admin/users?{query}"), &root.key)
            .await;
        assert_eq!(page.status, StatusCode::OK, "{query}: {}", page.text());
        let page = page.json();
        assert_eq!(emails(&page), *expected, "{query}");
        assert_eq!(page["total_count"], expected.len(), "{query}");
    }

    // Pages of two: 2 + 2 + 1, every user once.
    let mut seen = Vec::new();
    for number in 1..=3 {
        let page = app
            .get(
                &format!("/api/v1/admin/users?page={number}&page_size=2"),
                &root.key,
            )
            .await
            .json();
        assert_eq!(page["total_pages"], 3);
        assert_eq!(page["has_next"], number < 3);
        assert_eq!(page["has_prev"], number > 1);
        seen.extend(emails(&page));
    }
    assert_eq!(seen, emails(&all));

    for (query, field) in [
        ("disabled=yes", "disabled"),
        ("is_admin=1", "is_admin"),
        ("page=0", "page"),
        ("page_size=101", "page_size"),
    ] {
        let response = app
            .get(&format!("/api/v1/admin/users?{query}"), &root.key)
            .await;
        let error = response.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(error["details"][0]["field"], field, "{query}: {error}");
    }
    let long = "a".repeat(255);
    let response = app
        .get(
            &format!("/api/v1/admin/users?email_contains={long}"),
            &root.key,
        )
        .await;
    let error = response.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(error["details"][0]["field"], "email_contains");
}

both_backends!(a_non_admin_is_refused_on_every_admin_user_route_and_changes_nothing);
async fn a_non_admin_is_refused_on_every_admin_user_route_and_changes_nothing() {
    let app = TestApp::with_config(config_with_plans()).await;
    let root = admin(&app, "root@example.com").await;
    let user = app.user("user@example.com").await;
    app.get("/api/v1/admin/users", &user.key)
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    app.get(&format!("/api/v1/admin/users/{}", root.id), &user.key)
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    // Not even for themselves: a user cannot promote their own account.
    for target in [&user.id, &root.id] {
        put_user(
            &app,
            &user.key,
            target,
            json!({"is_admin": true, "plan": "pro"}),
        )
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
        put_user(&app, &user.key, target, json!({"disabled": true}))
            .await
            .assert_error(StatusCode::FORBIDDEN, "forbidden");
    }
    let stored = app.store.find_user_by_id(&user.id).await.unwrap().unwrap();
    assert!(!stored.is_admin);
    assert_eq!(stored.plan, "self-hosted");
    let stored_root = app.store.find_user_by_id(&root.id).await.unwrap().unwrap();
    assert!(!stored_root.disabled);
    // Without a key at all: 401.
    app.call(Method::GET, "/api/v1/admin/users", None, None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
}

both_backends!(an_admin_reads_and_changes_a_user_and_bad_input_names_its_field);
async fn an_admin_reads_and_changes_a_user_and_bad_input_names_its_field() {
    let app = TestApp::with_config(config_with_plans()).await;
    let root = admin(&app, "root@example.com").await;
    let user = app.user_on_plan("user@example.com", "free").await;

    let read = app
        .get(&format!("/api/v1/admin/users/{}", user.id), &root.key)
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.text());
    assert_eq!(read.json()["plan"], "free");
    app.get("/api/v1/admin/users/no-such-user", &root.key)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");

    app.get("/api/v1/admin/users", &user.key)
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    let changed = put_user(
        &app,
        &root.key,
        &user.id,
        json!({"plan": "pro", "is_admin": true}),
    )
    .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text());
    let changed = changed.json();
    assert_eq!(changed["plan"], "pro");
    assert_eq!(changed["is_admin"], true);
    assert_eq!(changed["max_concurrent_runs"], 5, "the plan's cap");
    let stored = app.store.find_user_by_id(&user.id).await.unwrap().unwrap();
    assert_eq!((stored.plan.as_str(), stored.is_admin), ("pro", true));
    // The promoted user's key now reaches the admin routes (no stale cached flags).
    assert_eq!(
        app.get("/api/v1/admin/users", &user.key).await.status,
        StatusCode::OK
    );

    let bad_plan = put_user(
        &app,
        &root.key,
        &user.id,
        json!({"plan": "platinum'; DROP TABLE users;--"}),
    )
    .await;
    let error = bad_plan.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(error["details"][0]["field"], "plan", "{error}");
    assert!(
        error["details"][0]["message"]
            .as_str()
            .unwrap()
            .contains("pro"),
        "names the configured plans: {error}"
    );
    let empty = put_user(&app, &root.key, &user.id, json!({})).await;
    let error = empty.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(error["details"][0]["field"], "body");
    // Fields the route does not change are refused, not ignored.
    put_user(&app, &root.key, &user.id, json!({"email": "x@example.com"}))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    put_user(&app, &root.key, &user.id, json!({"disabled": "yes"}))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    // A refused body changed nothing.
    let stored = app.store.find_user_by_id(&user.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.plan.as_str(), stored.email.as_str()),
        ("pro", "user@example.com")
    );
    put_user(&app, &root.key, "no-such-user", json!({"plan": "pro"}))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");

    // A read-only key of an administrator reads but does not change.
    let reader = app.key_for(&root.id, &["tasks:read"], None).await;
    assert_eq!(
        app.get("/api/v1/admin/users", &reader).await.status,
        StatusCode::OK
    );
    put_user(&app, &reader, &user.id, json!({"plan": "free"}))
        .await
        .assert_error(StatusCode::FORBIDDEN, "insufficient_scope");
}

both_backends!(the_last_enabled_admin_cannot_be_disabled_or_demoted_not_even_by_themselves);
async fn the_last_enabled_admin_cannot_be_disabled_or_demoted_not_even_by_themselves() {
    let app = TestApp::with_config(config_with_plans()).await;
    let root = admin(&app, "root@example.com").await;
    let user = app.user("user@example.com").await;

    for body in [
        json!({"disabled": true}),
        json!({"is_admin": false}),
        json!({"is_admin": false, "disabled": true}),
        // A refused change takes the rest of the body with it.
        json!({"disabled": true, "plan": "pro"}),
    ] {
        let response = put_user(&app, &root.key, &root.id, body.clone()).await;
        let error = response.assert_error(StatusCode::CONFLICT, "conflict");
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("last enabled administrator"),
            "{body}: {error}"
        );
    }
    let stored = app.store.find_user_by_id(&root.id).await.unwrap().unwrap();
    assert!(stored.is_admin && !stored.disabled);
    assert_eq!(stored.plan, "self-hosted");

    // With a second administrator, the first may step down; then the second is the last.
    assert_eq!(
        put_user(&app, &root.key, &user.id, json!({"is_admin": true}))
            .await
            .status,
        StatusCode::OK
    );
    let demoted = put_user(&app, &root.key, &root.id, json!({"is_admin": false})).await;
    assert_eq!(demoted.status, StatusCode::OK, "{}", demoted.text());
    // The demoted caller is refused at once, on this process.
    app.get("/api/v1/admin/users", &root.key)
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    put_user(&app, &user.key, &user.id, json!({"disabled": true}))
        .await
        .assert_error(StatusCode::CONFLICT, "conflict");
    // A disabled administrator does not count: disabling the other admin while only one is
    // enabled is refused, whoever asks.
    assert_eq!(
        put_user(
            &app,
            &user.key,
            &root.id,
            json!({"is_admin": true, "disabled": true})
        )
        .await
        .status,
        StatusCode::OK
    );
    put_user(&app, &user.key, &user.id, json!({"is_admin": false}))
        .await
        .assert_error(StatusCode::CONFLICT, "conflict");
}

both_backends!(a_user_disabled_through_the_api_is_refused_at_once_on_every_process);
/// Process A (the app, default 1 s credential check) disables the user; A refuses the
/// user's cached key on the very next request, and so does process B (which compares the
/// credential revision on every request). Enabling brings the key back on both.
async fn a_user_disabled_through_the_api_is_refused_at_once_on_every_process() {
    let app = TestApp::with_config(config_with_plans()).await;
    let mut other_config = config_with_plans();
    other_config.credential_check_interval = std::time::Duration::ZERO;
    let other = app.sibling(other_config);
    let root = admin(&app, "root@example.com").await;
    let user = app.user("user@example.com").await;
    let bystander = app.user("bystander@example.com").await;
    let on_other = |key: String| {
        let other = other.clone();
        async move {
            send_via(
                &other,
                request(Method::GET, "/api/v1/tasks", Some(&key), None),
            )
            .await
        }
    };
    // Both processes have verified and cached the keys.
    assert_eq!(
        app.get("/api/v1/tasks", &user.key).await.status,
        StatusCode::OK
    );
    assert_eq!(on_other(user.key.clone()).await.status, StatusCode::OK);

    let disabled = put_user(&app, &root.key, &user.id, json!({"disabled": true})).await;
    assert_eq!(disabled.status, StatusCode::OK, "{}", disabled.text());
    assert_eq!(disabled.json()["disabled"], true);
    app.get("/api/v1/tasks", &user.key)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    on_other(user.key.clone())
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(
        on_other(bystander.key.clone()).await.status,
        StatusCode::OK,
        "other users are untouched"
    );

    let enabled = put_user(&app, &root.key, &user.id, json!({"disabled": false})).await;
    assert_eq!(enabled.status, StatusCode::OK, "{}", enabled.text());
    assert_eq!(
        app.get("/api/v1/tasks", &user.key).await.status,
        StatusCode::OK
    );
    assert_eq!(on_other(user.key.clone()).await.status, StatusCode::OK);
}

both_backends!(a_disabled_users_session_and_access_token_stop_at_once_too);
/// The process that disables compares the credential revision only once an hour here, so
/// only its own "recheck now" can make it refuse the user's cached JWT family and session
/// on the very next request; the sibling compares on every request.
async fn a_disabled_users_session_and_access_token_stop_at_once_too() {
    let mut config = crate::login_support::accounts_config();
    config.credential_check_interval = std::time::Duration::from_secs(3600);
    let app = TestApp::with_config(config).await;
    let other = app.sibling(crate::login_support::accounts_config());
    let root = admin(&app, "root@example.com").await;
    let password = crate::login_support::PASSWORD;
    let user_id = crate::login_support::user_with_password(&app, "u@example.com", password).await;
    let browser = crate::login_support::login(&app, "u@example.com", password).await;
    let (access, _) = crate::login_support::token_login(&app, "u@example.com", password).await;
    let with_session = || browser.request(Method::GET, "/api/v1/auth/me", None, true);
    let with_token = || request(Method::GET, "/api/v1/auth/me", Some(&access), None);
    // Both processes have seen (and cached what they cache of) both credentials.
    for router in [&app.router, &other] {
        assert_eq!(
            send_via(router, with_session()).await.status,
            StatusCode::OK
        );
        assert_eq!(send_via(router, with_token()).await.status, StatusCode::OK);
    }

    let disabled = put_user(&app, &root.key, &user_id, json!({"disabled": true})).await;
    assert_eq!(disabled.status, StatusCode::OK, "{}", disabled.text());
    for router in [&app.router, &other] {
        send_via(router, with_session())
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
        send_via(router, with_token())
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
}

both_backends!(a_plan_change_grants_the_new_plans_month_once);
async fn a_plan_change_grants_the_new_plans_month_once() {
    let app = TestApp::with_config(config_with_plans()).await;
    let root = admin(&app, "root@example.com").await;
    let user = app.user_on_plan("user@example.com", "free").await;
    assert_eq!(app.store.compute_unit_balance(&user.id).await.unwrap(), 0);
    for (plan, balance) in [("pro", 1000), ("free", 1000), ("pro", 1000)] {
        let response = put_user(&app, &root.key, &user.id, json!({"plan": plan})).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text());
        assert_eq!(
            app.store.compute_unit_balance(&user.id).await.unwrap(),
            balance,
            "after moving to {plan}: one grant a month, not one a move"
        );
    }
}
