//! Webhooks pass the fetcher's URL guard: private, loopback and metadata addresses are
//! refused unless allowed, by IP literal and by name, and the refusal is recorded.

use std::sync::Arc;

use selextract_mail::Mailer;
use selextract_store::testing::{Backend, test_store};
use selextract_store::{DeliveryState, RunState};
use serde_json::json;

use crate::support::{
    Behaviour, EverythingIsLoopback, Receiver, config, deps, finished_run, task, user,
};

selextract_store::both_backends!(webhooks_to_private_addresses_are_refused_and_recorded);
async fn webhooks_to_private_addresses_are_refused_and_recorded(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let allowed = Receiver::start(Behaviour::Always(200)).await;
    let private = Receiver::start(Behaviour::Always(200)).await;
    // Only `allowed` is excepted; `private` listens on loopback like any internal service.
    let config = config(&[&allowed]);
    let alice = user(&store, "alice@example.com").await;
    let port = private.addr.port();
    let targets = [
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        format!("http://127.0.0.1:{port}/"),
        format!("http://localhost:{port}/"),
        format!("http://internal.example:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        "file:///etc/passwd".to_owned(),
    ];
    let mut ids = Vec::new();
    for (i, target) in targets.iter().enumerate() {
        let task = task(
            &store,
            &alice,
            &format!("t{i}"),
            json!({"webhook_url": target, "on": ["completed"]}),
        )
        .await;
        ids.extend(finished_run(&store, &task, RunState::Completed, None, &config).await);
    }
    let good = task(
        &store,
        &alice,
        "good",
        json!({"webhook_url": allowed.url("/"), "on": ["completed"]}),
    )
    .await;
    let good_ids = finished_run(&store, &good, RunState::Completed, None, &config).await;

    let mut deps = deps("p1", Mailer::disabled());
    deps.resolver = Some(Arc::new(EverythingIsLoopback));
    let mut config = config;
    config.concurrency = 16;
    assert_eq!(
        selextract_notify::deliver_due_once(&store, &config, &deps)
            .await
            .unwrap(),
        7
    );

    assert!(
        private.hits().is_empty(),
        "no request reached the private receiver"
    );
    for (id, target) in ids.iter().zip(&targets) {
        let (delivery, attempts) = store.get_delivery(&alice.id, id).await.unwrap().unwrap();
        assert_eq!(delivery.state, DeliveryState::Failed, "{target}");
        assert_eq!(attempts.len(), 1);
        let error = attempts[0].error.as_deref().unwrap();
        assert!(error.starts_with("refused: "), "{target}: {error}");
        assert_eq!(attempts[0].status_code, None);
    }
    let (delivered, _) = store
        .get_delivery(&alice.id, &good_ids[0])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(delivered.state, DeliveryState::Delivered);
    assert_eq!(allowed.hits().len(), 1);
}
