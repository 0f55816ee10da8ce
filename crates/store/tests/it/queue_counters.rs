//! The per-user queue counters the claim reads (`user_queue_state`): every operation that
//! changes a run's state keeps them equal to the real counts, alone and under concurrency.

use std::time::Duration;

use selextract_store::testing::queue_state_mismatches;
use selextract_store::{Progress, RunState, Store, StoreError, Task, User};

use crate::support::{Backend, T0, both_backends, task, test_store, user};

const LEASE: Duration = Duration::from_secs(30);

/// A small deterministic pseudo-random sequence (xorshift), so a failure replays exactly.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        usize::try_from(self.0 % n as u64).unwrap()
    }
}

async fn assert_counters_exact(store: &Store, after: &str) {
    let mismatches = queue_state_mismatches(store).await.unwrap();
    assert!(
        mismatches.is_empty(),
        "after {after}: {}",
        mismatches.join("\n")
    );
}

both_backends!(counters_equal_the_real_counts_after_a_random_mix_of_operations);
async fn counters_equal_the_real_counts_after_a_random_mix_of_operations(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut users: Vec<User> = Vec::new();
    for n in 0..4 {
        users.push(user(&store, &format!("u{n}@example.com"), 1 + n % 3).await);
    }
    let mut tasks: Vec<Task> = Vec::new();
    for (n, owner) in users.iter().enumerate() {
        for k in 0..3 {
            tasks.push(task(&store, owner, &format!("t{n}-{k}")).await);
        }
    }
    let mut now = T0;
    let mut operations = std::collections::BTreeMap::<&str, usize>::new();
    // (user id, run id) of every run enqueued.
    let mut runs: Vec<(String, String)> = Vec::new();
    for step in 0..400 {
        now += 1_000;
        let op = match rng.below(12) {
            0..=3 => {
                let task = &tasks[rng.below(tasks.len())];
                let priority = u8::try_from(rng.below(3)).unwrap() * 5;
                let max_attempts = 1 + u32::try_from(rng.below(2)).unwrap();
                match store
                    .enqueue_run(&task.user_id, &task.id, &task.spec, priority, max_attempts)
                    .await
                {
                    Ok(run) => runs.push((run.user_id, run.id)),
                    // The task was deleted by an earlier step.
                    Err(StoreError::NotFound(_)) => {}
                    Err(error) => panic!("enqueue: {error}"),
                }
                "enqueue"
            }
            4 | 5 => {
                let worker = format!("w{}", rng.below(3));
                let lease = if rng.below(2) == 0 {
                    LEASE
                } else {
                    Duration::from_secs(1)
                };
                store.claim_next_run(&worker, lease, now).await.unwrap();
                "claim"
            }
            6 => {
                if let Some(run) = running_run(&store, &runs, &mut rng).await {
                    let state =
                        [RunState::Completed, RunState::Failed, RunState::Cancelled][rng.below(3)];
                    let worker = run.lease_owner.unwrap();
                    store
                        .finish_run(
                            &run.id,
                            &worker,
                            state,
                            "done",
                            None,
                            &Progress::default(),
                            now,
                        )
                        .await
                        .unwrap();
                }
                "finish"
            }
            7 => {
                if let Some(run) = running_run(&store, &runs, &mut rng).await {
                    let worker = run.lease_owner.unwrap();
                    store.release_run(&run.id, &worker).await.unwrap();
                }
                "release"
            }
            8 => {
                store.requeue_expired_runs(now).await.unwrap();
                "requeue expired"
            }
            9 => {
                if !runs.is_empty() {
                    let (owner, run_id) = &runs[rng.below(runs.len())];
                    store.request_cancel(owner, run_id).await.unwrap();
                }
                "cancel"
            }
            10 if rng.below(4) == 0 => {
                // Deleting a task deletes its runs: only the first half of the tasks is ever
                // deleted, so runs of every end state remain for the final check.
                let task = &tasks[rng.below(tasks.len() / 2)];
                store.delete_task(&task.user_id, &task.id).await.unwrap();
                "delete task"
            }
            _ => {
                let owner = &users[rng.below(users.len())];
                if rng.below(2) == 0 {
                    let cap = 1 + u32::try_from(rng.below(3)).unwrap();
                    store
                        .set_user_plan(&owner.id, "self-hosted", cap)
                        .await
                        .unwrap();
                    "change cap"
                } else {
                    let disabled = rng.below(3) == 0;
                    store.set_user_disabled(&owner.id, disabled).await.unwrap();
                    "disable/enable"
                }
            }
        };
        *operations.entry(op).or_default() += 1;
        assert_counters_exact(&store, &format!("step {step} ({op})")).await;
    }
    // The mix really exercised every path, and left work in several states.
    assert_eq!(operations.len(), 9, "{operations:?}");
    let depth = store.queue_depth().await.unwrap();
    assert!(
        depth["queued"] > 0 && depth["cancelled"] > 0 && depth["completed"] > 0,
        "{depth:?}"
    );
}

both_backends!(counters_stay_exact_under_concurrent_claimers_and_finishers);
async fn counters_stay_exact_under_concurrent_claimers_and_finishers(backend: Backend) {
    let (store, db) = test_store(backend).await;
    let mut tasks = Vec::new();
    for n in 0..3 {
        let owner = user(&store, &format!("c{n}@example.com"), 2).await;
        tasks.push(task(&store, &owner, "t").await);
    }
    for (n, task) in tasks.iter().enumerate() {
        for k in 0..20 {
            let priority = u8::try_from((n + k) % 3).unwrap();
            store
                .enqueue_run(&task.user_id, &task.id, &task.spec, priority, 3)
                .await
                .unwrap();
        }
    }
    let mut handles = Vec::new();
    for claimer in 0..4 {
        // Two stores (pools), as two worker processes would have.
        let store = if claimer % 2 == 0 {
            store.clone()
        } else {
            db.connect().await.unwrap()
        };
        handles.push(tokio::spawn(async move {
            let worker = format!("w{claimer}");
            let mut done = 0;
            let mut idle = 0;
            while idle < 20 {
                match store.claim_next_run(&worker, LEASE, T0).await.unwrap() {
                    Some(run) => {
                        idle = 0;
                        let finished = if done % 5 == 0 {
                            store.release_run(&run.id, &worker).await.unwrap()
                        } else {
                            store
                                .finish_run(
                                    &run.id,
                                    &worker,
                                    RunState::Completed,
                                    "ok",
                                    None,
                                    &Progress::default(),
                                    T0,
                                )
                                .await
                                .unwrap()
                        };
                        assert!(finished);
                        done += 1;
                    }
                    None => {
                        idle += 1;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
            done
        }));
    }
    let mut total = 0;
    for handle in handles {
        total += handle.await.unwrap();
    }
    // 60 runs complete; every fifth claim was released and claimed again.
    assert!(total >= 60, "{total} claims");
    let depth = store.queue_depth().await.unwrap();
    assert_eq!(depth["completed"], 60, "{depth:?}");
    assert_counters_exact(&store, "the concurrent claimers").await;
}

/// A random run of those enqueued, if it is running now.
async fn running_run(
    store: &Store,
    runs: &[(String, String)],
    rng: &mut Rng,
) -> Option<selextract_store::Run> {
    if runs.is_empty() {
        return None;
    }
    // Several tries, so that most finish and release steps find a running run.
    for _ in 0..8 {
        let (_, run_id) = &runs[rng.below(runs.len())];
        let run = store.find_run_any_user(run_id).await.unwrap()?;
        if run.state == RunState::Running {
            return Some(run);
        }
    }
    None
}
