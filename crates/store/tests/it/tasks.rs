//! Tasks: CRUD, isolation between users, list filters, sorts and paging.

use selextract_store::{Page, RunState, TaskFilter, TaskSort};

use crate::support::{Backend, T0, both_backends, enqueue, task, test_store, user};

both_backends!(a_task_is_created_found_updated_and_deleted_by_its_owner);
async fn a_task_is_created_found_updated_and_deleted_by_its_owner(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 1).await;
    let created = task(&store, &alice, "books").await;
    let found = store
        .find_task(&alice.id, &created.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.name, "books");
    assert_eq!(found.spec, created.spec);

    let new_spec = serde_json::json!({"url": "http://127.0.0.1/v2"});
    let updated = store
        .update_task(&alice.id, &created.id, "books v2", &new_spec, 9)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((updated.name.as_str(), updated.priority), ("books v2", 9));
    assert_eq!(updated.spec, new_spec);
    assert!(updated.updated_at_ms >= created.updated_at_ms);

    assert!(
        store
            .delete_task(&alice.id, &created.id)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .find_task(&alice.id, &created.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .delete_task(&alice.id, &created.id)
            .await
            .unwrap()
            .is_none()
    );
    let edit_deleted = store
        .update_task(&alice.id, &created.id, "x", &new_spec, 1)
        .await
        .unwrap();
    assert!(edit_deleted.is_none());
}

both_backends!(another_user_cannot_find_update_delete_list_or_run_a_task);
async fn another_user_cannot_find_update_delete_list_or_run_a_task(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 1).await;
    let bob = user(&store, "bob@example.com", 1).await;
    let alices = task(&store, &alice, "alice's").await;

    assert!(
        store
            .find_task(&bob.id, &alices.id)
            .await
            .unwrap()
            .is_none()
    );
    let spec = serde_json::json!({});
    assert!(
        store
            .update_task(&bob.id, &alices.id, "mine", &spec, 1)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .delete_task(&bob.id, &alices.id)
            .await
            .unwrap()
            .is_none()
    );
    let bobs_list = store
        .list_tasks(&bob.id, &TaskFilter::default(), Page::new(1, 50))
        .await
        .unwrap();
    assert_eq!(bobs_list.total_count, 0);
    assert!(bobs_list.items.is_empty());
    assert!(
        store
            .enqueue_run(&bob.id, &alices.id, &spec, 5, 3)
            .await
            .is_err()
    );

    let run = store
        .enqueue_run(&alice.id, &alices.id, &spec, 5, 3)
        .await
        .unwrap();
    assert!(store.find_run(&bob.id, &run.id).await.unwrap().is_none());
    assert!(
        store
            .latest_run(&bob.id, &alices.id)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store
            .list_runs(&bob.id, &alices.id, Page::new(1, 10))
            .await
            .unwrap()
            .total_count,
        0
    );

    // Untouched for its owner.
    let still = store
        .find_task(&alice.id, &alices.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(still.name, "alice's");
    assert!(store.find_run(&alice.id, &run.id).await.unwrap().is_some());
}

both_backends!(deleting_a_task_deletes_its_runs_and_its_running_run_loses_its_lease);
async fn deleting_a_task_deletes_its_runs_and_its_running_run_loses_its_lease(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 5).await;
    let doomed = task(&store, &alice, "doomed").await;
    let kept = task(&store, &alice, "kept").await;
    let ids = enqueue(&store, &doomed, 5, 2).await;
    let kept_ids = enqueue(&store, &kept, 1, 1).await;
    let lease = std::time::Duration::from_secs(30);
    let running = store
        .claim_next_run("w1", lease, T0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(running.task_id, doomed.id);
    let report = store
        .delete_task(&alice.id, &doomed.id)
        .await
        .unwrap()
        .unwrap();
    let mut deleted = report.run_ids.clone();
    deleted.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(deleted, expected);
    assert_eq!(report.tasks, 1);

    for id in &ids {
        assert!(store.find_run(&alice.id, id).await.unwrap().is_none());
        assert!(store.find_run_any_user(id).await.unwrap().is_none());
    }
    // The worker of the running run learns at its next renewal that the run is gone, and
    // nothing it still tries to settle lands.
    let progress = selextract_store::Progress::default();
    assert_eq!(
        store
            .renew_lease(&running.id, "w1", lease, &progress, T0 + 1)
            .await
            .unwrap(),
        selextract_store::LeaseStatus::Lost
    );
    assert!(
        !store
            .finish_run(
                &running.id,
                "w1",
                RunState::Completed,
                "ok",
                None,
                &progress,
                T0 + 2
            )
            .await
            .unwrap()
    );
    // The other task's run is untouched and is what the queue hands out next.
    let next = store
        .claim_next_run("w2", lease, T0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next.id, kept_ids[0]);
    assert!(
        store
            .claim_next_run("w2", lease, T0)
            .await
            .unwrap()
            .is_none()
    );
}

/// Three tasks with distinct names, creation times and latest-run states.
async fn three_tasks(store: &selextract_store::Store) -> (String, [String; 3]) {
    let alice = user(store, "alice@example.com", 10).await;
    let apple = task(store, &alice, "Apple prices").await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let banana = task(store, &alice, "banana_feed").await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let cherry = task(store, &alice, "Cherry 100%").await;
    // apple: completed; banana: queued; cherry: never ran.
    enqueue(store, &apple, 5, 1).await;
    let claimed = store
        .claim_next_run("w", std::time::Duration::from_secs(30), T0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.task_id, apple.id);
    let done = selextract_store::Progress::default();
    assert!(
        store
            .finish_run(&claimed.id, "w", RunState::Completed, "ok", None, &done, T0)
            .await
            .unwrap()
    );
    enqueue(store, &banana, 5, 1).await;
    (alice.id, [apple.id, banana.id, cherry.id])
}

fn ids(page: &selextract_store::Paged<selextract_store::TaskSummary>) -> Vec<&str> {
    page.items
        .iter()
        .map(|summary| summary.task.id.as_str())
        .collect()
}

both_backends!(task_lists_filter_by_latest_run_state_name_and_creation_time);
async fn task_lists_filter_by_latest_run_state_name_and_creation_time(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let (user_id, [apple, banana, cherry]) = three_tasks(&store).await;
    let all = Page::new(1, 50);

    let completed = TaskFilter {
        status: Some(RunState::Completed),
        ..TaskFilter::default()
    };
    let listed = store.list_tasks(&user_id, &completed, all).await.unwrap();
    assert_eq!(ids(&listed), [apple.as_str()]);
    assert_eq!(listed.items[0].latest_run_state, Some(RunState::Completed));

    let queued = TaskFilter {
        status: Some(RunState::Queued),
        ..TaskFilter::default()
    };
    assert_eq!(
        ids(&store.list_tasks(&user_id, &queued, all).await.unwrap()),
        [banana.as_str()]
    );

    let by_name = TaskFilter {
        name_contains: Some("APPLE".to_owned()),
        ..TaskFilter::default()
    };
    assert_eq!(
        ids(&store.list_tasks(&user_id, &by_name, all).await.unwrap()),
        [apple.as_str()]
    );
    // LIKE wildcards in the text match literally.
    let percent = TaskFilter {
        name_contains: Some("0%".to_owned()),
        ..TaskFilter::default()
    };
    assert_eq!(
        ids(&store.list_tasks(&user_id, &percent, all).await.unwrap()),
        [cherry.as_str()]
    );
    let underscore = TaskFilter {
        name_contains: Some("_".to_owned()),
        ..TaskFilter::default()
    };
    assert_eq!(
        ids(&store.list_tasks(&user_id, &underscore, all).await.unwrap()),
        [banana.as_str()]
    );

    let banana_task = store.find_task(&user_id, &banana).await.unwrap().unwrap();
    let from_banana = TaskFilter {
        created_after_ms: Some(banana_task.created_at_ms),
        ..TaskFilter::default()
    };
    let listed = store.list_tasks(&user_id, &from_banana, all).await.unwrap();
    assert_eq!(ids(&listed), [cherry.as_str(), banana.as_str()]);
    let before_banana = TaskFilter {
        created_before_ms: Some(banana_task.created_at_ms),
        ..TaskFilter::default()
    };
    assert_eq!(
        ids(&store
            .list_tasks(&user_id, &before_banana, all)
            .await
            .unwrap()),
        [apple.as_str()]
    );
}

both_backends!(task_lists_sort_by_each_key_in_both_directions);
async fn task_lists_sort_by_each_key_in_both_directions(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let (user_id, [apple, banana, cherry]) = three_tasks(&store).await;
    let all = Page::new(1, 50);
    let sorted = |sort, descending| TaskFilter {
        sort,
        descending,
        ..TaskFilter::default()
    };

    let newest_first = store
        .list_tasks(&user_id, &sorted(TaskSort::CreatedAt, true), all)
        .await
        .unwrap();
    assert_eq!(
        ids(&newest_first),
        [cherry.as_str(), banana.as_str(), apple.as_str()]
    );
    let oldest_first = store
        .list_tasks(&user_id, &sorted(TaskSort::CreatedAt, false), all)
        .await
        .unwrap();
    assert_eq!(
        ids(&oldest_first),
        [apple.as_str(), banana.as_str(), cherry.as_str()]
    );

    // Names sort ignoring case: Apple < banana < Cherry.
    let by_name = store
        .list_tasks(&user_id, &sorted(TaskSort::Name, false), all)
        .await
        .unwrap();
    assert_eq!(
        ids(&by_name),
        [apple.as_str(), banana.as_str(), cherry.as_str()]
    );
    let by_name_desc = store
        .list_tasks(&user_id, &sorted(TaskSort::Name, true), all)
        .await
        .unwrap();
    assert_eq!(
        ids(&by_name_desc),
        [cherry.as_str(), banana.as_str(), apple.as_str()]
    );

    // Status: never ran ("") < completed < queued.
    let by_status = store
        .list_tasks(&user_id, &sorted(TaskSort::Status, false), all)
        .await
        .unwrap();
    assert_eq!(
        ids(&by_status),
        [cherry.as_str(), apple.as_str(), banana.as_str()]
    );

    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    store
        .update_task(&user_id, &apple, "Apple prices", &serde_json::json!({}), 5)
        .await
        .unwrap()
        .unwrap();
    let recently_updated = store
        .list_tasks(&user_id, &sorted(TaskSort::UpdatedAt, true), all)
        .await
        .unwrap();
    assert_eq!(recently_updated.items[0].task.id, apple);
}

both_backends!(task_list_pages_carry_the_total_count);
async fn task_list_pages_carry_the_total_count(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 1).await;
    for n in 0..7 {
        task(&store, &alice, &format!("task {n}")).await;
    }
    let filter = TaskFilter {
        sort: TaskSort::Name,
        descending: false,
        ..TaskFilter::default()
    };
    let first = store
        .list_tasks(&alice.id, &filter, Page::new(1, 3))
        .await
        .unwrap();
    let third = store
        .list_tasks(&alice.id, &filter, Page::new(3, 3))
        .await
        .unwrap();
    let beyond = store
        .list_tasks(&alice.id, &filter, Page::new(4, 3))
        .await
        .unwrap();
    assert_eq!(
        (first.total_count, third.total_count, beyond.total_count),
        (7, 7, 7)
    );
    let names = |page: &selextract_store::Paged<selextract_store::TaskSummary>| {
        page.items
            .iter()
            .map(|s| s.task.name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&first), ["task 0", "task 1", "task 2"]);
    assert_eq!(names(&third), ["task 6"]);
    assert!(beyond.items.is_empty());
}
