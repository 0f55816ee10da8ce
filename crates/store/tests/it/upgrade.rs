//! The upgrade suite: for every migration N ≥ 2, a database built at schema N-1 the way
//! release 0.1.0 built it (its migrations replayed through sqlx's `Migrator`) and holding a
//! realistic installation's data (`tests/fixtures/upgrade/schema-<N-1>.sql`: users with an
//! admin, hashed API keys, tasks, queued, running — leases expired, pages committed and
//! charged —, completed, failed, partial and cancelled runs, pages, logs, ledger) is migrated
//! to the current schema. Every count, run, balance and charge is unchanged, the per-user
//! queue counters equal what the runs say, and the queued and reclaimable runs are claimable
//! through the queue, within each user's cap. From schema 4 on the fixtures also hold the
//! accounts tables (sessions, tokens, identities, audit log, billing, pending object
//! deletions), kept row for row. Runs finished before migration 5 count as notified: an
//! upgraded installation sends no notification for its old runs.

use std::collections::BTreeSet;
use std::time::Duration;

use selextract_store::testing::{
    DataSnapshot, UpgradeFixture, applied_schema_version, data_snapshot, latest_migration,
    live_data_snapshot, owned_run_unchecked, query_int, queue_counters, queue_state_mismatches,
    queued_object_deletions, upgrade_fixtures,
};
use selextract_store::{
    Page, PageOutcome, RunState, SCHEMA_VERSION, SchemaVerdict, Store, TaskFilter,
};
use serde_json::Value;

use crate::support::{Backend, TestDatabase, both_backends};

/// No site is fetched by the store suite; the tasks' URLs only need to be URLs.
const SITE: &str = "http://127.0.0.1:9";

/// Migration 4 made deletion real: fixtures before it hold a soft-deleted task, which it
/// deletes; fixtures from it on hold the accounts tables and pending object deletions.
const ACCOUNTS_SCHEMA: i64 = 4;

/// Migration 5 added `runs.outcome_recorded_at`, set to `finished_at` for the runs already
/// finished, so that upgrading never notifies about old runs.
const OUTCOMES_SCHEMA: i64 = 5;

fn strings(value: &Value, what: &str) -> BTreeSet<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("{what} is not a list"))
        .iter()
        .map(|id| id.as_str().expect("an id").to_owned())
        .collect()
}

fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(since_epoch.as_millis()).unwrap()
}

both_backends!(every_migration_has_an_upgrade_fixture_of_the_schema_before_it);
async fn every_migration_has_an_upgrade_fixture_of_the_schema_before_it(backend: Backend) {
    let fixtures = upgrade_fixtures(backend);
    let schemas: Vec<i64> = fixtures.iter().map(|fixture| fixture.schema).collect();
    let expected: Vec<i64> = (1..latest_migration(backend)).collect();
    assert_eq!(schemas, expected);
    assert!(!schemas.is_empty(), "the store has only one migration");
    assert_eq!(latest_migration(backend), SCHEMA_VERSION);
}

both_backends!(upgrading_each_fixture_keeps_every_count_balance_and_queue_counter);
async fn upgrading_each_fixture_keeps_every_count_balance_and_queue_counter(backend: Backend) {
    for fixture in upgrade_fixtures(backend) {
        upgrade_keeps_the_data(backend, &fixture).await;
    }
}

/// The fixture's data as loaded matches what its `expected.json` says it holds.
fn check_expected_data(fixture: &UpgradeFixture, snapshot: &DataSnapshot) {
    let schema = fixture.schema;
    let expected = &fixture.expected;
    for (section, prefix) in [
        ("counts", "count"),
        ("runs", "runs"),
        ("balances", "balance"),
    ] {
        let entries = expected[section]
            .as_object()
            .unwrap_or_else(|| panic!("schema-{schema}.expected.json has no {section}"));
        for (name, value) in entries {
            let key = format!("{prefix}:{name}");
            assert_eq!(
                snapshot.get(&key),
                Some(value.to_string().as_str()),
                "fixture at schema {schema}: {key}"
            );
        }
    }
    let states: usize = expected["runs"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| usize::try_from(n.as_u64().unwrap()).unwrap())
        .sum();
    assert_eq!(
        Some(states.to_string().as_str()),
        snapshot.get("count:runs"),
        "fixture at schema {schema}: every run state is counted"
    );
}

async fn upgrade_keeps_the_data(backend: Backend, fixture: &UpgradeFixture) {
    let schema = fixture.schema;
    let db = TestDatabase::create(backend).await;
    let store = fixture.load(&db, SITE).await;
    assert_eq!(applied_schema_version(&store).await.unwrap(), schema);
    let before = data_snapshot(&store).await.unwrap();
    check_expected_data(fixture, &before);
    // Tasks deleted when deletion was soft go for real in migration 4, their runs' result
    // objects queued for removal (next to the removals a later fixture has pending);
    // everything else is kept as it was.
    let before_live = live_data_snapshot(&store).await.unwrap();
    let soft_deleted_runs = soft_deleted_run_ids(&store).await;
    if schema < ACCOUNTS_SCHEMA {
        assert!(
            !soft_deleted_runs.is_empty(),
            "the fixture at schema {schema} has a soft-deleted task with runs"
        );
    } else {
        assert!(
            soft_deleted_runs.is_empty(),
            "schema {schema} deletes for real, yet the fixture has a soft-deleted task"
        );
    }
    let mut object_deletions = soft_deleted_runs;
    if schema >= ACCOUNTS_SCHEMA {
        object_deletions.extend(queued_object_deletions(&store).await.unwrap());
    }
    let account_counts = check_account_counts(fixture, &store, "as loaded").await;

    // A database built by 0.1.0's migrator reads as behind (not as a mismatch), and
    // migrating applies exactly the migrations after the fixture's schema.
    let status = store.schema_status().await.unwrap();
    assert_eq!(
        status.verdict,
        SchemaVerdict::Behind,
        "schema {schema}: {status:?}"
    );
    let report = store
        .migrate()
        .await
        .unwrap_or_else(|error| panic!("migrating the fixture at schema {schema}: {error}"));
    let applied: Vec<i64> = report
        .applied
        .iter()
        .map(|(version, _, _)| *version)
        .collect();
    assert_eq!(applied, ((schema + 1)..=SCHEMA_VERSION).collect::<Vec<_>>());
    let status = store.schema_status().await.unwrap();
    assert_eq!(
        status.verdict,
        SchemaVerdict::Current,
        "schema {schema}: {status:?}"
    );
    assert_eq!(
        applied_schema_version(&store).await.unwrap(),
        latest_migration(backend),
        "upgrading from schema {schema}"
    );

    // Nothing the data says changed: counts, run states and counters, balances, charges.
    let after = data_snapshot(&store).await.unwrap();
    assert_eq!(before_live, after, "upgrading from schema {schema}");
    assert_eq!(
        queued_object_deletions(&store)
            .await
            .unwrap()
            .into_iter()
            .collect::<BTreeSet<_>>(),
        object_deletions,
        "schema {schema}: the soft-deleted task's runs are queued for object removal, \
         the pending removals stay"
    );
    assert_eq!(
        check_account_counts(fixture, &store, "after migrating").await,
        account_counts
    );
    read_back_through_the_store(&store, schema, &after).await;
    if schema < OUTCOMES_SCHEMA {
        old_runs_count_as_notified(&store, schema).await;
    }

    // The queue counters are the truth recomputed from runs and users, and what the
    // fixture is known to hold.
    assert_eq!(
        queue_state_mismatches(&store).await.unwrap(),
        Vec::<String>::new(),
        "upgrading from schema {schema}"
    );
    let counters = queue_counters(&store).await.unwrap();
    let expected = fixture.expected["queue_counters"].as_object().unwrap();
    assert_eq!(
        counters.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "upgrading from schema {schema}: users with queue counters"
    );
    for (email, want) in expected {
        let got = &counters[email];
        let want = (
            want["running"].as_i64().unwrap(),
            want["queued"].as_i64().unwrap(),
            want["max_running"].as_i64().unwrap(),
            want["disabled"].as_i64().unwrap(),
            want["head"].as_str().map(str::to_owned),
        );
        assert_eq!(
            got, &want,
            "upgrading from schema {schema}: counters of {email}"
        );
    }

    // The runs whose worker died come back (or fail on their last attempt), then every run
    // a user's cap allows is claimable; the rest stay queued.
    let now = now_ms();
    let report = store.requeue_expired_runs(now).await.unwrap();
    let requeued: BTreeSet<String> = report.requeued.into_iter().collect();
    let failed: BTreeSet<String> = report.failed.into_iter().collect();
    assert_eq!(
        requeued,
        strings(&fixture.expected["requeued"], "requeued"),
        "upgrading from schema {schema}"
    );
    assert_eq!(
        failed,
        strings(&fixture.expected["failed_on_requeue"], "failed_on_requeue"),
        "upgrading from schema {schema}"
    );
    assert!(report.cancelled.is_empty());
    // The runs the requeue failed are the ones whose outcome (notifications) is still to
    // be recorded, and only they.
    let without_outcome: BTreeSet<String> = store
        .runs_without_outcome(100)
        .await
        .unwrap()
        .into_iter()
        .map(|run| run.id)
        .collect();
    assert_eq!(without_outcome, failed, "upgrading from schema {schema}");

    let mut claimed = BTreeSet::new();
    while let Some(run) = store
        .claim_next_run("upgrade-test", Duration::from_secs(30), now)
        .await
        .unwrap()
    {
        assert!(
            claimed.insert(run.id.clone()),
            "upgrading from schema {schema}: run {} claimed twice",
            run.id
        );
        assert_eq!(run.lease_owner.as_deref(), Some("upgrade-test"));
        assert!(claimed.len() <= 20, "the claims never stop");
    }
    assert_eq!(
        claimed,
        strings(
            &fixture.expected["claimed_after_requeue"],
            "claimed_after_requeue"
        ),
        "upgrading from schema {schema}"
    );
    let mut queued_now = BTreeSet::new();
    for id in after
        .values
        .keys()
        .filter_map(|key| key.strip_prefix("run:"))
    {
        let run = store.find_run_any_user(id).await.unwrap().unwrap();
        if run.state == RunState::Queued {
            queued_now.insert(id.to_owned());
        }
    }
    assert_eq!(
        queued_now,
        strings(&fixture.expected["still_queued"], "still_queued"),
        "upgrading from schema {schema}"
    );
    assert_eq!(
        queue_state_mismatches(&store).await.unwrap(),
        Vec::<String>::new(),
        "upgrading from schema {schema}: counters after the claims"
    );
}

/// The runs of tasks soft-deleted (schemas before 4).
async fn soft_deleted_run_ids(store: &Store) -> BTreeSet<String> {
    let snapshot = data_snapshot(store).await.unwrap();
    let mut ids = BTreeSet::new();
    for id in snapshot
        .values
        .keys()
        .filter_map(|key| key.strip_prefix("run:"))
    {
        // Fixture ids are UUIDs: nothing to escape.
        let soft_deleted = query_int(
            store,
            &format!(
                "SELECT CAST(COUNT(*) AS BIGINT) FROM runs r JOIN tasks t ON t.id = r.task_id \
                 WHERE r.id = '{id}' AND t.deleted_at IS NOT NULL"
            ),
        )
        .await
        .unwrap();
        if soft_deleted > 0 {
            ids.insert(id.to_owned());
        }
    }
    ids
}

/// Checks the rows of the tables schema 4 added against the fixture's `account_counts`
/// (required from schema 4 on) and returns them.
async fn check_account_counts(
    fixture: &UpgradeFixture,
    store: &Store,
    when: &str,
) -> Vec<(String, i64)> {
    let schema = fixture.schema;
    let Some(expected) = fixture.expected.get("account_counts") else {
        assert!(
            schema < ACCOUNTS_SCHEMA,
            "schema-{schema}.expected.json has no account_counts"
        );
        return Vec::new();
    };
    let mut counts = Vec::new();
    for (table, want) in expected.as_object().unwrap() {
        let got = query_int(
            store,
            &format!("SELECT CAST(COUNT(*) AS BIGINT) FROM {table}"),
        )
        .await
        .unwrap();
        assert_eq!(
            Some(got),
            want.as_i64(),
            "fixture at schema {schema}, {when}: rows of {table}"
        );
        assert!(got > 0, "fixture at schema {schema}: {table} is empty");
        counts.push((table.clone(), got));
    }
    counts
}

/// What migration 5 did to the data: every run finished before it has its outcome recorded
/// at its end (no notification is sent for it), the others have none yet, and every user's
/// webhook secret is at its first version.
async fn old_runs_count_as_notified(store: &Store, schema: i64) {
    let finished = query_int(
        store,
        "SELECT CAST(COUNT(*) AS BIGINT) FROM runs WHERE finished_at IS NOT NULL",
    )
    .await
    .unwrap();
    assert!(
        finished > 0,
        "schema {schema}: the fixture has finished runs"
    );
    let recorded_at_their_end = query_int(
        store,
        "SELECT CAST(COUNT(*) AS BIGINT) FROM runs \
         WHERE finished_at IS NOT NULL AND outcome_recorded_at = finished_at",
    )
    .await
    .unwrap();
    assert_eq!(
        recorded_at_their_end, finished,
        "schema {schema}: finished runs have outcome_recorded_at = finished_at"
    );
    let unfinished_with_outcome = query_int(
        store,
        "SELECT CAST(COUNT(*) AS BIGINT) FROM runs \
         WHERE finished_at IS NULL AND outcome_recorded_at IS NOT NULL",
    )
    .await
    .unwrap();
    assert_eq!(
        unfinished_with_outcome, 0,
        "schema {schema}: unfinished runs have no outcome"
    );
    assert_eq!(
        store
            .runs_without_outcome(100)
            .await
            .unwrap()
            .into_iter()
            .map(|run| run.id)
            .collect::<Vec<_>>(),
        Vec::<String>::new(),
        "schema {schema}: an upgrade leaves no old run to notify about"
    );
    let other_versions = query_int(
        store,
        "SELECT CAST(COUNT(*) AS BIGINT) FROM users WHERE webhook_secret_version <> 1",
    )
    .await
    .unwrap();
    assert_eq!(
        other_versions, 0,
        "schema {schema}: webhook secret versions"
    );
}

/// Every row of the fixture reads back through the store's own API after the upgrade (so
/// the fixture holds rows as the store writes them: JSON specs and scopes, states, reasons,
/// flags), and what the API answers agrees with the snapshot.
async fn read_back_through_the_store(store: &Store, schema: i64, snapshot: &DataSnapshot) {
    let mut users = 0;
    for email in snapshot
        .values
        .keys()
        .filter_map(|key| key.strip_prefix("balance:"))
    {
        let user = store
            .find_user_by_email(email)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("schema {schema}: no user {email}"));
        users += 1;
        let balance = store.compute_unit_balance(&user.id).await.unwrap();
        assert_eq!(
            snapshot.get(&format!("balance:{email}")),
            Some(balance.to_string().as_str()),
            "schema {schema}: balance of {email}"
        );
        for key in store.list_api_keys(&user.id).await.unwrap() {
            let found = store
                .find_api_key_by_public_id(&key.public_id)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                found.secret_hash.len(),
                64,
                "schema {schema}: a SHA-256 hex hash"
            );
            assert!(!found.scopes.is_empty());
        }
        let tasks = store
            .list_tasks(&user.id, &TaskFilter::default(), Page::new(1, 100))
            .await
            .unwrap();
        for summary in tasks.items {
            let runs = store
                .list_runs(&user.id, &summary.task.id, Page::new(1, 100))
                .await
                .unwrap();
            assert_eq!(
                summary.latest_run_id,
                runs.items.first().map(|run| run.id.clone()),
                "schema {schema}: task {}",
                summary.task.id
            );
        }
    }
    assert_eq!(
        snapshot.get("count:users"),
        Some(users.to_string().as_str())
    );
    let admins = query_int(
        store,
        "SELECT CAST(COUNT(*) AS BIGINT) FROM users WHERE is_admin = 1",
    )
    .await
    .unwrap();
    assert_eq!(admins, 1, "schema {schema}: one admin");
    let mut runs = 0;
    for id in snapshot
        .values
        .keys()
        .filter_map(|key| key.strip_prefix("run:"))
    {
        let run = store.find_run_any_user(id).await.unwrap().unwrap();
        runs += 1;
        let pages = store
            .run_pages(&owned_run_unchecked(store, id).await.unwrap().unwrap())
            .await
            .unwrap();
        assert_eq!(
            snapshot.get(&format!("pages:{id}")),
            Some(pages.len().to_string().as_str()),
            "schema {schema}: pages of run {id}"
        );
        let charged: u64 = store
            .ledger_entries_for_run(&owned_run_unchecked(store, id).await.unwrap().unwrap())
            .await
            .unwrap()
            .iter()
            .map(|entry| entry.amount)
            .sum();
        assert_eq!(
            run.progress.compute_units, charged,
            "schema {schema}: run {id} counts the compute units charged to it"
        );
        let ok_pages = pages
            .iter()
            .filter(|page| page.outcome == PageOutcome::Ok)
            .count();
        assert_eq!(
            run.progress.pages_done,
            u64::try_from(ok_pages).unwrap(),
            "schema {schema}: run {id} counts its committed pages"
        );
        store
            .list_run_logs(
                &owned_run_unchecked(store, id).await.unwrap().unwrap(),
                Page::new(1, 100),
            )
            .await
            .unwrap();
    }
    assert_eq!(snapshot.get("count:runs"), Some(runs.to_string().as_str()));
}
