//! A fresh store with a user and a scheduled task, and helpers to read ticks.

use chrono::{DateTime, TimeZone, Utc};
use selextract_schedule::CronSchedule;
use selextract_scheduler::{SchedulerConfig, fresh_cursor};
use selextract_store::{
    NewTask, NewUser, ScheduleRecord, ScheduleTick, ScheduleTiming, Store, Task, User,
};

pub use selextract_store::both_backends;
pub use selextract_store::testing::{Backend, TestDatabase, test_store};

pub struct Env {
    pub store: Store,
    pub user: User,
    _db: TestDatabase,
}

impl Env {
    pub async fn start(backend: Backend) -> Env {
        Env::start_with_plan(backend, "self-hosted").await
    }

    pub async fn start_with_plan(backend: Backend, plan: &str) -> Env {
        let (store, db) = test_store(backend).await;
        let user = store
            .create_user(NewUser {
                email: "alice@example.com".to_owned(),
                password_hash: None,
                is_admin: false,
                plan: plan.to_owned(),
                max_concurrent_runs: 4,
            })
            .await
            .unwrap();
        Env {
            store,
            user,
            _db: db,
        }
    }

    /// A task whose spec carries `schedule`, with its schedule row started at `start`.
    pub async fn scheduled_task(&self, schedule: serde_json::Value, start: DateTime<Utc>) -> Task {
        let spec = serde_json::json!({
            "url": "http://127.0.0.1/",
            "fields": [{"name": "title", "selector": "h1"}],
            "schedule": schedule,
        });
        let task = self
            .store
            .create_task(NewTask {
                user_id: self.user.id.clone(),
                name: "scheduled".to_owned(),
                spec,
                priority: 5,
            })
            .await
            .unwrap();
        let cron_text = schedule["cron"].as_str().unwrap();
        let zone = schedule["timezone"].as_str().unwrap_or("UTC");
        let cron = CronSchedule::parse(cron_text, zone).unwrap();
        let timing = ScheduleTiming {
            cron: cron_text.to_owned(),
            timezone: zone.to_owned(),
            enabled: true,
        };
        assert!(
            self.store
                .upsert_task_schedule(
                    &self.user.id,
                    &task.id,
                    &timing,
                    &fresh_cursor(&cron, start)
                )
                .await
                .unwrap()
        );
        task
    }

    pub async fn schedule(&self, task: &Task) -> ScheduleRecord {
        self.store
            .find_task_schedule(&self.user.id, &task.id)
            .await
            .unwrap()
            .unwrap()
    }

    pub async fn ticks(&self, task: &Task) -> Vec<ScheduleTick> {
        self.store
            .list_schedule_ticks_any_user(&task.id)
            .await
            .unwrap()
    }
}

pub fn config() -> SchedulerConfig {
    SchedulerConfig::default()
}

pub fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

/// A store and a way to add users on any plan (the grants tests).
pub struct TestEnv {
    pub store: Store,
    _db: TestDatabase,
}

impl TestEnv {
    pub async fn start(backend: Backend) -> TestEnv {
        let (store, db) = test_store(backend).await;
        TestEnv { store, _db: db }
    }

    pub async fn user(&self, email: &str, plan: &str, max_concurrent_runs: u32) -> User {
        self.store
            .create_user(NewUser {
                email: email.to_owned(),
                password_hash: None,
                is_admin: false,
                plan: plan.to_owned(),
                max_concurrent_runs,
            })
            .await
            .unwrap()
    }
}
