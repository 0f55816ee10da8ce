//! A PostgreSQL outage seen from the API: while the connection is cut (by a proxy in front
//! of the server), requests that need the database answer 503 `unavailable` with
//! `Retry-After` and `/ready` reports the database down; once it is restored both recover
//! by themselves, with nothing lost.

use axum::http::{Method, StatusCode, header};
use selextract_fetch::HttpFetcherConfig;
use selextract_server::ServerConfig;
use selextract_testkit::TcpCutProxy;

use crate::support::{Backend, TestApp, TestDatabase, catalogue_spec, request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_a_database_outage_the_api_answers_503_with_retry_after_and_recovers() {
    let db = TestDatabase::create(Backend::Postgres).await;
    db.migrated_store().await;
    let proxy = TcpCutProxy::start(db.postgres_addr().unwrap())
        .await
        .unwrap();
    let store = db.connect_through(Some(proxy.addr())).await.unwrap();
    let app = TestApp::build_on(
        db,
        store,
        tempfile::tempdir().unwrap(),
        ServerConfig::default(),
        HttpFetcherConfig::default(),
    );
    let user = app.user("a@example.com").await;
    let created = app
        .post(
            "/api/v1/tasks",
            &user.key,
            catalogue_spec("http://127.0.0.1:9/"),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());

    proxy.cut();
    let listing = app.get("/api/v1/tasks", &user.key).await;
    assert_eq!(
        listing.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        listing.text()
    );
    assert_eq!(listing.json()["error"], "unavailable");
    assert!(
        listing.headers.contains_key(header::RETRY_AFTER),
        "{:?}",
        listing.headers
    );
    let creating = app
        .post(
            "/api/v1/tasks",
            &user.key,
            catalogue_spec("http://127.0.0.1:9/"),
        )
        .await;
    assert_eq!(creating.status, StatusCode::SERVICE_UNAVAILABLE);
    let ready = app.send(request(Method::GET, "/ready", None, None)).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.json()["checks"]["database"]["status"], "unavailable");
    // Liveness does not depend on the database.
    let health = app.send(request(Method::GET, "/health", None, None)).await;
    assert_eq!(health.status, StatusCode::OK);

    proxy.restore();
    let ready = app.send(request(Method::GET, "/ready", None, None)).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text());
    let listing = app.get("/api/v1/tasks", &user.key).await;
    assert_eq!(listing.status, StatusCode::OK, "{}", listing.text());
    assert_eq!(listing.json()["total_count"], 1, "{}", listing.text());
}
