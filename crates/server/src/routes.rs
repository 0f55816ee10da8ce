//! The route table: one declaration per operation, from which both the axum router
//! ([`crate::router`]) and the OpenAPI paths ([`crate::openapi`]) are built, so the served
//! routes and the document cannot drift apart.

use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter, on};

use crate::admin;
use crate::auth::Scope;
use crate::handlers::{account, events, keys, preview, results, runs, system, tasks};
use crate::state::AppState;

/// What a successful response carries, for the document.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Success {
    /// JSON described by a component schema.
    Json(u16, &'static str),
    /// `204 No Content`.
    Empty,
    /// A file download in the requested export format.
    Download,
    /// `text/event-stream`.
    EventStream,
    /// Prometheus text.
    Text,
    /// A server-rendered HTML page (the account pages e-mailed links open).
    Html,
    /// A redirect (`302`/`303` with `Location`), described by the text.
    Redirect(&'static str),
    /// An Atom 1.0 feed (`application/atom+xml`).
    Atom,
}

/// A query parameter: name, JSON schema type, description.
pub(crate) type QueryParam = (&'static str, &'static str, &'static str);

/// One operation's documentation.
#[derive(Debug, Clone)]
pub(crate) struct RouteDoc {
    pub method: Method,
    pub path: &'static str,
    pub operation_id: &'static str,
    pub summary: &'static str,
    pub tag: &'static str,
    /// The scope an API key needs; `None` for unauthenticated system routes.
    pub scope: Option<Scope>,
    pub query: &'static [QueryParam],
    /// Component schema of the JSON request body, when there is one.
    pub body: Option<&'static str>,
    pub success: Success,
}

pub(crate) struct Route {
    pub doc: RouteDoc,
    pub handler: MethodRouter<AppState>,
}

const PAGING: &[QueryParam] = &[
    ("page", "integer", "Page number, from 1 (default 1)."),
    (
        "page_size",
        "integer",
        "Items per page, 1 to 100 (default 20).",
    ),
];
const TASK_FILTERS: &[QueryParam] = &[
    ("page", "integer", "Page number, from 1 (default 1)."),
    (
        "page_size",
        "integer",
        "Items per page, 1 to 100 (default 20).",
    ),
    (
        "status",
        "string",
        "Only tasks whose latest run is in this state.",
    ),
    (
        "created_after",
        "string",
        "RFC 3339; only tasks created at or after.",
    ),
    (
        "created_before",
        "string",
        "RFC 3339; only tasks created before.",
    ),
    (
        "name_contains",
        "string",
        "Only tasks whose name contains this text (case-insensitive).",
    ),
    (
        "sort",
        "string",
        "created_at, updated_at, name or status (default created_at).",
    ),
    ("order", "string", "asc or desc (default desc)."),
];
const FORMAT: &[QueryParam] = &[(
    "format",
    "string",
    "json, jsonl, csv or xlsx (default: the task's output_format).",
)];
const RECORD_RANGE: &[QueryParam] = &[
    (
        "offset",
        "integer",
        "Index of the first record (default 0).",
    ),
    (
        "limit",
        "integer",
        "Records to return, 1 to 1000 (default 100).",
    ),
];

pub(crate) struct Def {
    method: Method,
    path: &'static str,
    operation_id: &'static str,
    summary: &'static str,
    tag: &'static str,
    scope: Option<Scope>,
}

pub(crate) fn def(
    method: Method,
    path: &'static str,
    operation_id: &'static str,
    summary: &'static str,
) -> Def {
    let tag = if path.starts_with("/api/v1/api-keys") {
        "keys"
    } else if path.starts_with("/api/v1/runs") || path.ends_with("/runs") && method == Method::GET {
        "runs"
    } else if path.starts_with("/api/v1/tasks") {
        "tasks"
    } else if path.starts_with("/api/v1/preview") {
        "preview"
    } else if path.starts_with("/api/v1/admin") {
        "admin"
    } else if path.starts_with("/api/v1/billing") {
        "billing"
    } else if path.starts_with("/api/v1/analytics") {
        "analytics"
    } else if path.starts_with("/api/v1/auth") {
        "auth"
    } else {
        "system"
    };
    Def {
        method,
        path,
        operation_id,
        summary,
        tag,
        scope: None,
    }
}

impl Def {
    pub(crate) fn scope(mut self, scope: Scope) -> Self {
        self.scope = Some(scope);
        self
    }

    pub(crate) fn to<H, T>(
        self,
        handler: H,
        query: &'static [QueryParam],
        body: Option<&'static str>,
        success: Success,
    ) -> Route
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = match self.method {
            Method::POST => MethodFilter::POST,
            Method::PUT => MethodFilter::PUT,
            Method::DELETE => MethodFilter::DELETE,
            _ => MethodFilter::GET,
        };
        Route {
            doc: RouteDoc {
                method: self.method,
                path: self.path,
                operation_id: self.operation_id,
                summary: self.summary,
                tag: self.tag,
                scope: self.scope,
                query,
                body,
                success,
            },
            handler: on(filter, handler),
        }
    }
}

/// Every route the server serves.
pub(crate) fn routes() -> Vec<Route> {
    use Method as M;
    use Scope::{KeysWrite, ResultsRead, TasksRead, TasksWrite};
    use Success::{Download, Empty, EventStream, Json, Text};
    let mut routes = vec![
        // tasks
        def(M::GET, "/api/v1/tasks", "listTasks", "List tasks")
            .scope(TasksRead)
            .to(tasks::list_tasks, TASK_FILTERS, None, Json(200, "TaskList")),
        def(
            M::POST,
            "/api/v1/tasks",
            "createTask",
            "Create a task (and start its first run unless start is false)",
        )
        .scope(TasksWrite)
        .to(
            tasks::create_task,
            &[],
            Some("TaskInput"),
            Json(201, "Task"),
        ),
        def(M::GET, "/api/v1/tasks/{id}", "getTask", "Get a task")
            .scope(TasksRead)
            .to(tasks::get_task, &[], None, Json(200, "Task")),
        def(
            M::PUT,
            "/api/v1/tasks/{id}",
            "replaceTask",
            "Replace a task's spec",
        )
        .scope(TasksWrite)
        .to(
            tasks::replace_task,
            &[],
            Some("TaskInput"),
            Json(200, "Task"),
        ),
        def(
            M::DELETE,
            "/api/v1/tasks/{id}",
            "deleteTask",
            "Delete a task with its runs, logs and stored records",
        )
        .scope(TasksWrite)
        .to(tasks::delete_task, &[], None, Empty),
        def(
            M::POST,
            "/api/v1/tasks/{id}/runs",
            "startRun",
            "Start a new run of a task",
        )
        .scope(TasksWrite)
        .to(tasks::start_run, &[], Some("StartRun"), Json(201, "Run")),
        def(
            M::POST,
            "/api/v1/tasks/{id}/cancel",
            "cancelTask",
            "Cancel the task's latest unfinished run",
        )
        .scope(TasksWrite)
        .to(tasks::cancel_task, &[], None, Json(200, "Run")),
        def(
            M::POST,
            "/api/v1/tasks/{id}/retry",
            "retryTask",
            "Re-run the latest failed, partial or cancelled run",
        )
        .scope(TasksWrite)
        .to(tasks::retry_task, &[], None, Json(201, "Run")),
        def(
            M::GET,
            "/api/v1/tasks/{id}/logs",
            "getTaskLogs",
            "Log lines of the task's latest run",
        )
        .scope(TasksRead)
        .to(runs::task_logs, PAGING, None, Json(200, "LogList")),
        def(
            M::GET,
            "/api/v1/tasks/{id}/results",
            "getTaskResults",
            "Download the latest run's records",
        )
        .scope(ResultsRead)
        .to(results::task_results, FORMAT, None, Download),
        def(
            M::GET,
            "/api/v1/tasks/{id}/download",
            "downloadTaskResults",
            "Alias of getTaskResults",
        )
        .scope(ResultsRead)
        .to(results::task_results, FORMAT, None, Download),
        def(
            M::GET,
            "/api/v1/tasks/{id}/events",
            "streamTaskEvents",
            "Live progress of the latest run (SSE)",
        )
        .scope(TasksRead)
        .to(events::task_events, &[], None, EventStream),
        // runs
        def(
            M::GET,
            "/api/v1/tasks/{id}/runs",
            "listTaskRuns",
            "List a task's runs, newest first",
        )
        .scope(TasksRead)
        .to(runs::list_task_runs, PAGING, None, Json(200, "RunList")),
        def(M::GET, "/api/v1/runs/{id}", "getRun", "Get a run")
            .scope(TasksRead)
            .to(runs::get_run, &[], None, Json(200, "Run")),
        def(
            M::DELETE,
            "/api/v1/runs/{id}",
            "deleteRun",
            "Delete a finished run with its logs and stored records",
        )
        .scope(TasksWrite)
        .to(runs::delete_run, &[], None, Empty),
        def(
            M::GET,
            "/api/v1/runs/{id}/records",
            "getRunRecords",
            "A range of a run's records",
        )
        .scope(ResultsRead)
        .to(
            results::run_records,
            RECORD_RANGE,
            None,
            Json(200, "RecordPage"),
        ),
        def(
            M::GET,
            "/api/v1/runs/{id}/results",
            "getRunResults",
            "Download a run's records",
        )
        .scope(ResultsRead)
        .to(results::run_results, FORMAT, None, Download),
        def(
            M::GET,
            "/api/v1/runs/{id}/logs",
            "getRunLogs",
            "A run's log lines",
        )
        .scope(TasksRead)
        .to(runs::run_logs, PAGING, None, Json(200, "LogList")),
        // preview
        def(
            M::POST,
            "/api/v1/preview",
            "previewTask",
            "Run a task on its first page only",
        )
        .scope(TasksWrite)
        .to(
            preview::preview,
            &[],
            Some("TaskInput"),
            Json(200, "Preview"),
        ),
        // keys
        def(M::GET, "/api/v1/api-keys", "listApiKeys", "List API keys")
            .scope(KeysWrite)
            .to(keys::list_keys, PAGING, None, Json(200, "ApiKeyList")),
        def(
            M::POST,
            "/api/v1/api-keys",
            "createApiKey",
            "Create an API key (the key is shown once)",
        )
        .scope(KeysWrite)
        .to(
            keys::create_key,
            &[],
            Some("NewApiKey"),
            Json(201, "ApiKeyCreated"),
        ),
        def(
            M::DELETE,
            "/api/v1/api-keys/{id}",
            "revokeApiKey",
            "Revoke an API key",
        )
        .scope(KeysWrite)
        .to(keys::revoke_key, &[], None, Empty),
        // admin (admin users only; the scope only authenticates the key)
        def(
            M::GET,
            "/api/v1/admin/workers",
            "listWorkers",
            "Live workers (admin only)",
        )
        .scope(TasksRead)
        .to(admin::list_workers, &[], None, Json(200, "AdminWorkers")),
        def(
            M::GET,
            "/api/v1/admin/queue",
            "getQueue",
            "Queue depth, oldest wait, last hour's outcomes, compute units today (admin only)",
        )
        .scope(TasksRead)
        .to(admin::queue, &[], None, Json(200, "AdminQueue")),
        // system
        def(
            M::GET,
            "/api/v1/openapi.json",
            "getOpenApi",
            "This document",
        )
        .to(system::openapi_document, &[], None, Json(200, "OpenApi")),
        def(M::GET, "/health", "health", "Liveness").to(
            system::health,
            &[],
            None,
            Json(200, "Health"),
        ),
        def(
            M::GET,
            "/ready",
            "ready",
            "Readiness: database, results storage, queue",
        )
        .to(system::ready, &[], None, Json(200, "Ready")),
        def(
            M::GET,
            "/metrics",
            "metrics",
            "Prometheus metrics (allow-listed clients or bearer token)",
        )
        .to(system::metrics, &[], None, Text),
    ];
    routes.extend(account::routes());
    routes.extend(crate::handlers::recovery::routes());
    routes.extend(crate::handlers::admin_users::routes());
    routes.extend(crate::handlers::audit::routes());
    routes.extend(crate::handlers::deliveries::routes());
    routes.extend(crate::handlers::schedules::routes());
    routes.extend(crate::handlers::changes::routes());
    routes.extend(crate::handlers::analytics::routes());
    routes.extend(crate::handlers::billing::routes());
    routes.extend(crate::handlers::oidc::routes());
    routes
}
