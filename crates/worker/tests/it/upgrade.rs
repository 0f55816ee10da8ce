//! An upgrade with work in flight, end to end: a database at each older schema holding an
//! installation's data (the store's upgrade fixtures: queued runs, runs whose worker died
//! with pages committed and charged, finished runs) is migrated, then a current worker runs
//! the queue. The queued runs run, the lost ones are reclaimed and resume after their
//! committed pages, and no page is committed or charged twice: every balance is what it was
//! before the upgrade minus the new pages' charges.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use selextract_fetch::{HttpFetcher, HttpFetcherConfig};
use selextract_results::ResultStore;
use selextract_store::testing::{
    UpgradeFixture, data_snapshot, live_data_snapshot, owned_run_unchecked, queue_state_mismatches,
    upgrade_fixtures,
};
use selextract_store::{LedgerKind, Plans, RunState, Store};
use selextract_testkit::FixtureSite;
use selextract_worker::{WorkerConfig, WorkerDeps};
use serde_json::Value;

use crate::support::{Backend, RunningWorker, TestDatabase, both_backends, product_titles, titles};

/// Upper bound for any wait here: only reached when the behaviour under test is broken.
const GIVE_UP_AFTER: Duration = Duration::from_secs(90);

fn ids(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .expect("a list of run ids")
        .iter()
        .map(|id| id.as_str().expect("a run id").to_owned())
        .collect()
}

both_backends!(after_an_upgrade_queued_runs_run_and_lost_runs_resume_without_double_charges);
async fn after_an_upgrade_queued_runs_run_and_lost_runs_resume_without_double_charges(
    backend: Backend,
) {
    for fixture in upgrade_fixtures(backend) {
        upgrade_then_work(backend, &fixture).await;
    }
}

/// The runs of `store` as `id → (user id, state)`.
async fn runs_by_id(store: &Store, ids: &BTreeSet<String>) -> BTreeMap<String, RunState> {
    let mut states = BTreeMap::new();
    for id in ids {
        let run = store.find_run_any_user(id).await.unwrap().unwrap();
        states.insert(id.clone(), run.state);
    }
    states
}

async fn upgrade_then_work(backend: Backend, fixture: &UpgradeFixture) {
    let schema = fixture.schema;
    let site = FixtureSite::start().await;
    let db = TestDatabase::create(backend).await;
    let store = fixture.load(&db, &site.url("")).await;
    // What users can reach: migration 4 deletes tasks that were soft-deleted.
    let before = live_data_snapshot(&store).await.unwrap();
    store
        .migrate()
        .await
        .unwrap_or_else(|error| panic!("migrating the fixture at schema {schema}: {error}"));

    let dir = tempfile::tempdir().unwrap();
    let results = ResultStore::local(&dir.path().join("results")).unwrap();
    let http = HttpFetcher::new(HttpFetcherConfig {
        allowed_private_addrs: vec![site.addr()],
        ..HttpFetcherConfig::default()
    })
    .unwrap();
    let deps = WorkerDeps {
        store: store.clone(),
        results: results.clone(),
        http: Arc::new(http),
        browser: None,
        waker: Arc::new(tokio::sync::Notify::new()),
    };
    let config = WorkerConfig {
        worker_id: "upgraded-worker".to_owned(),
        host: "test-host".to_owned(),
        concurrency: 4,
        lease: Duration::from_secs(30),
        heartbeat_interval: Duration::from_millis(100),
        poll_interval: Duration::from_millis(50),
        grace_period: Duration::from_secs(10),
        engine_concurrency: 8,
        rates: Default::default(),
        plans: Plans::default(),
        ..WorkerConfig::default()
    };

    let expected = &fixture.expected;
    let requeued = ids(&expected["requeued"]);
    let to_complete: BTreeSet<String> = ids(&expected["claimed_after_requeue"])
        .union(&ids(&expected["worker_also_completes"]))
        .cloned()
        .collect();
    let lost_for_good = ids(&expected["failed_on_requeue"]);
    let never_claimable = ids(&expected["worker_leaves_queued"]);

    let worker = RunningWorker::spawn(config, deps);
    let deadline = tokio::time::Instant::now() + GIVE_UP_AFTER;
    loop {
        let states = runs_by_id(&store, &to_complete).await;
        if states.values().all(|state| state.is_terminal()) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "schema {schema}: gave up waiting for the runs to finish: {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    worker.stop().await;

    let after = data_snapshot(&store).await.unwrap();
    let mut new_charges: BTreeMap<String, i64> = BTreeMap::new();
    for id in &to_complete {
        let run = store.find_run_any_user(id).await.unwrap().unwrap();
        assert_eq!(
            run.state,
            RunState::Completed,
            "schema {schema}: run {id}: {run:?}"
        );
        let resumed = requeued.contains(id);
        assert_eq!(
            run.attempt,
            if resumed { 2 } else { 1 },
            "schema {schema}: run {id}"
        );
        assert_eq!(run.progress.pages_done, 5, "schema {schema}: run {id}");
        assert_eq!(run.progress.records, 50, "schema {schema}: run {id}");
        assert_eq!(run.progress.compute_units, 5, "schema {schema}: run {id}");

        // Each catalogue page once, in order, whether an old worker committed it before the
        // upgrade or the new worker after it.
        let pages = store
            .run_pages(&owned_run_unchecked(&store, id).await.unwrap().unwrap())
            .await
            .unwrap();
        let keys: Vec<&str> = pages.iter().map(|page| page.page_key.as_str()).collect();
        assert_eq!(
            keys,
            ["s0-p0", "s0-p1", "s0-p2", "s0-p3", "s0-p4"],
            "schema {schema}: run {id}"
        );
        let seqs: Vec<u64> = pages.iter().map(|page| page.seq).collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5], "schema {schema}: run {id}");
        let firsts: Vec<u64> = pages.iter().map(|page| page.first_record).collect();
        assert_eq!(firsts, [0, 10, 20, 30, 40], "schema {schema}: run {id}");

        // One charge per page, under that page's key: none twice.
        let charges = store
            .ledger_entries_for_run(&owned_run_unchecked(&store, id).await.unwrap().unwrap())
            .await
            .unwrap();
        let charge_keys: BTreeSet<String> = charges
            .iter()
            .map(|entry| entry.idempotency_key.clone())
            .collect();
        let page_keys: BTreeSet<String> = keys
            .iter()
            .map(|key| selextract_store::page_charge_key(id, key))
            .collect();
        assert_eq!(charge_keys, page_keys, "schema {schema}: run {id}");
        assert_eq!(charges.len(), 5, "schema {schema}: run {id}");
        assert!(
            charges
                .iter()
                .all(|entry| entry.kind == LedgerKind::Charge && entry.amount == 1),
            "schema {schema}: run {id}: {charges:?}"
        );
        let charged_before: i64 = before
            .get(&format!("charged:{id}"))
            .unwrap()
            .parse()
            .unwrap();
        *new_charges.entry(run.user_id.clone()).or_default() += 5 - charged_before;

        if !resumed {
            // A run the new worker did from the start: its records are all in the results.
            let objects: Vec<String> = pages
                .into_iter()
                .filter_map(|page| page.object_key)
                .collect();
            let records: Vec<_> = {
                use futures::TryStreamExt;
                results.stream_records(objects).try_collect().await.unwrap()
            };
            assert_eq!(
                titles(&records),
                product_titles(50),
                "schema {schema}: run {id}"
            );
        }
    }
    for id in &lost_for_good {
        let run = store.find_run_any_user(id).await.unwrap().unwrap();
        assert_eq!(run.state, RunState::Failed, "schema {schema}: run {id}");
        assert_eq!(run.reason.as_deref(), Some("worker_lost_max_attempts"));
    }
    for (id, state) in runs_by_id(&store, &never_claimable).await {
        assert_eq!(state, RunState::Queued, "schema {schema}: run {id}");
    }

    // Every other run is as it was; every balance is the old one minus the new charges.
    let touched: BTreeSet<&String> = to_complete.iter().chain(&lost_for_good).collect();
    for (key, value) in &before.values {
        let Some(id) = key.strip_prefix("run:") else {
            continue;
        };
        if !touched.contains(&id.to_owned()) {
            assert_eq!(
                after.get(key),
                Some(value.as_str()),
                "schema {schema}: {key}"
            );
        }
    }
    let emails = user_emails(&store, &before).await;
    for (key, value) in &before.values {
        let Some(email) = key.strip_prefix("balance:") else {
            continue;
        };
        let user_id = &emails[email];
        let charged = new_charges.get(user_id).copied().unwrap_or(0);
        let want = value.parse::<i64>().unwrap() - charged;
        assert_eq!(
            store.compute_unit_balance(user_id).await.unwrap(),
            want,
            "schema {schema}: balance of {email}"
        );
        assert_eq!(after.get(key), Some(want.to_string().as_str()));
    }
    let ledger_before: i64 = before.get("count:ledger").unwrap().parse().unwrap();
    let total_new: i64 = new_charges.values().sum();
    assert_eq!(
        after.get("count:ledger"),
        Some((ledger_before + total_new).to_string().as_str()),
        "schema {schema}: one ledger row per new page"
    );
    assert_eq!(
        queue_state_mismatches(&store).await.unwrap(),
        Vec::<String>::new()
    );
}

/// `email → user id` for every user with a balance line in the snapshot.
async fn user_emails(
    store: &Store,
    snapshot: &selextract_store::testing::DataSnapshot,
) -> BTreeMap<String, String> {
    let mut emails = BTreeMap::new();
    for key in snapshot.values.keys() {
        if let Some(email) = key.strip_prefix("balance:") {
            let user = store.find_user_by_email(email).await.unwrap().unwrap();
            emails.insert(email.to_owned(), user.id);
        }
    }
    emails
}
