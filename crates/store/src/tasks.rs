//! Tasks: saved definitions, always read and written through their owner's id so that one
//! user never reaches another user's rows.

use sqlx::AssertSqlSafe;

use crate::db::{RowExt, escape_like, new_id, now_ms, with_pool};
use crate::{
    NewTask, Page, Paged, RunState, Store, StoreError, Task, TaskFilter, TaskSort, TaskSummary,
};

/// Joins each task to its latest run (by enqueue time, then id).
const TASKS_WITH_LATEST_RUN: &str = "FROM tasks t LEFT JOIN runs lr ON lr.id = \
     (SELECT r.id FROM runs r WHERE r.task_id = t.id ORDER BY r.queued_at DESC, r.id DESC LIMIT 1)";

/// The columns `task_from_row` reads, table-qualified: named instead of `*` for the reason
/// given at `runs::run_columns`.
macro_rules! task_columns {
    () => {
        "tasks.id, tasks.user_id, tasks.name, tasks.spec, tasks.priority, tasks.created_at, tasks.updated_at"
    };
}

impl Store {
    pub async fn create_task(&self, new: NewTask) -> Result<Task, StoreError> {
        let id = new_id();
        let spec = new.spec.to_string();
        let now = now_ms();
        with_pool!(&self.db, |pool| {
            let row = sqlx::query(concat!(
                "INSERT INTO tasks (id, user_id, name, spec, priority, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING ",
                task_columns!()
            ))
            .bind(&id)
            .bind(&new.user_id)
            .bind(&new.name)
            .bind(&spec)
            .bind(i64::from(new.priority))
            .bind(now)
            .fetch_one(pool)
            .await?;
            task_from_row(&row)
        })
    }

    /// The user's task, unless it does not exist, is another user's, or was deleted.
    pub async fn find_task(
        &self,
        user_id: &str,
        task_id: &str,
    ) -> Result<Option<Task>, StoreError> {
        with_pool!(&self.db, |pool| {
            sqlx::query(concat!(
                "SELECT ",
                task_columns!(),
                " FROM tasks WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL"
            ))
            .bind(task_id)
            .bind(user_id)
            .fetch_optional(pool)
            .await?
            .map(|row| task_from_row(&row))
            .transpose()
        })
    }

    /// One page of the user's (not deleted) tasks matching `filter`, in its order, with the
    /// number of matching tasks across all pages.
    pub async fn list_tasks(
        &self,
        user_id: &str,
        filter: &TaskFilter,
        page: Page,
    ) -> Result<Paged<TaskSummary>, StoreError> {
        let (conditions, binds) = task_list_conditions(filter);
        let direction = if filter.descending { "DESC" } else { "ASC" };
        let sort_key = match filter.sort {
            TaskSort::CreatedAt => "t.created_at",
            TaskSort::UpdatedAt => "t.updated_at",
            TaskSort::Name => "LOWER(t.name)",
            TaskSort::Status => "COALESCE(lr.state, '')",
        };
        let next = binds.len() + 2;
        // Every fragment spliced in is a constant chosen above; values are bound.
        let count_sql = format!("SELECT COUNT(*) AS n {TASKS_WITH_LATEST_RUN} WHERE {conditions}");
        let list_sql = format!(
            "SELECT t.id, t.user_id, t.name, t.spec, t.priority, t.created_at, t.updated_at, \
             lr.id AS latest_run_id, lr.state AS latest_run_state {TASKS_WITH_LATEST_RUN} \
             WHERE {conditions} ORDER BY {sort_key} {direction}, t.id {direction} LIMIT ${next} OFFSET ${}",
            next + 1
        );
        with_pool!(&self.db, |pool| {
            let mut count = sqlx::query(AssertSqlSafe(count_sql)).bind(user_id);
            let mut list = sqlx::query(AssertSqlSafe(list_sql)).bind(user_id);
            for value in &binds {
                count = match value {
                    Bind::Text(text) => count.bind(text.as_str()),
                    Bind::Int(int) => count.bind(*int),
                };
                list = match value {
                    Bind::Text(text) => list.bind(text.as_str()),
                    Bind::Int(int) => list.bind(*int),
                };
            }
            let total_count = count.fetch_one(pool).await?.uint("n")?;
            let items = list
                .bind(page.limit())
                .bind(page.offset())
                .fetch_all(pool)
                .await?
                .iter()
                .map(task_summary_from_row)
                .collect::<Result<_, _>>()?;
            Ok(Paged { items, total_count })
        })
    }

    /// Replaces the task's name, spec and priority; `None` when the user has no such task.
    pub async fn update_task(
        &self,
        user_id: &str,
        task_id: &str,
        name: &str,
        spec: &serde_json::Value,
        priority: u8,
    ) -> Result<Option<Task>, StoreError> {
        let spec = spec.to_string();
        let now = now_ms();
        with_pool!(&self.db, |pool| {
            sqlx::query(concat!(
                "UPDATE tasks SET name = $1, spec = $2, priority = $3, updated_at = $4 \
                 WHERE id = $5 AND user_id = $6 AND deleted_at IS NULL RETURNING ",
                task_columns!()
            ))
            .bind(name)
            .bind(&spec)
            .bind(i64::from(priority))
            .bind(now)
            .bind(task_id)
            .bind(user_id)
            .fetch_optional(pool)
            .await?
            .map(|row| task_from_row(&row))
            .transpose()
        })
    }
}

enum Bind {
    Text(String),
    Int(i64),
}

/// The WHERE clause of a task listing (`$1` is the user id) and the values for `$2`, `$3`, ….
fn task_list_conditions(filter: &TaskFilter) -> (String, Vec<Bind>) {
    let mut conditions = vec![
        "t.user_id = $1".to_owned(),
        "t.deleted_at IS NULL".to_owned(),
    ];
    let mut binds = Vec::new();
    let mut add = |condition: &str, value: Bind| {
        binds.push(value);
        conditions.push(condition.replace('?', &format!("${}", binds.len() + 1)));
    };
    if let Some(status) = filter.status {
        add("lr.state = ?", Bind::Text(status.as_str().to_owned()));
    }
    if let Some(after) = filter.created_after_ms {
        add("t.created_at >= ?", Bind::Int(after));
    }
    if let Some(before) = filter.created_before_ms {
        add("t.created_at < ?", Bind::Int(before));
    }
    if let Some(text) = filter
        .name_contains
        .as_deref()
        .filter(|text| !text.is_empty())
    {
        let pattern = format!("%{}%", escape_like(&text.to_ascii_lowercase()));
        add("LOWER(t.name) LIKE ? ESCAPE '\\'", Bind::Text(pattern));
    }
    (conditions.join(" AND "), binds)
}

pub(crate) fn task_from_row(row: &impl RowExt) -> Result<Task, StoreError> {
    Ok(Task {
        id: row.text("id")?,
        user_id: row.text("user_id")?,
        name: row.text("name")?,
        spec: row.json("spec")?,
        priority: row.uint("priority")?,
        created_at_ms: row.int("created_at")?,
        updated_at_ms: row.int("updated_at")?,
    })
}

fn task_summary_from_row(row: &impl RowExt) -> Result<TaskSummary, StoreError> {
    let latest_run_state = match row.opt_text("latest_run_state")? {
        None => None,
        Some(text) => Some(
            text.parse::<RunState>()
                .map_err(|error| StoreError::Corrupt(error.to_string()))?,
        ),
    };
    Ok(TaskSummary {
        task: task_from_row(row)?,
        latest_run_id: row.opt_text("latest_run_id")?,
        latest_run_state,
    })
}
