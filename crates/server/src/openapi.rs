//! The OpenAPI 3.1 document, built from the route table (`routes.rs`) plus the component
//! schemas below, so that every served route is documented and nothing else is.

use std::sync::OnceLock;

use serde_json::{Map, Value, json};

use crate::routes::{RouteDoc, Success, routes};

/// The OpenAPI 3.1 document served at `/api/v1/openapi.json`.
pub fn openapi() -> Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(build_document).clone()
}

fn build_document() -> Value {
    let mut paths = Map::new();
    for route in routes() {
        let doc = route.doc;
        let item = paths
            .entry(doc.path.to_owned())
            .or_insert_with(|| json!({}));
        if let Some(item) = item.as_object_mut() {
            item.insert(doc.method.as_str().to_ascii_lowercase(), operation(&doc));
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Selextract API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Web data extraction: tasks, runs, records and exports. Authenticate with \
                `Authorization: Bearer sk_…` or `X-API-Key: sk_…`. Every response carries `X-Request-ID`; \
                authenticated responses carry `X-RateLimit-Limit`, `X-RateLimit-Remaining` and \
                `X-RateLimit-Reset`. Errors use the `Error` envelope."
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "description": "An API key `sk_…`."},
                "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"}
            },
            "responses": {
                "Error": {
                    "description": "An error; `error` is a stable code.",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
                }
            },
            "schemas": schemas()
        }
    })
}

fn operation(doc: &RouteDoc) -> Value {
    let mut parameters: Vec<Value> = path_parameters(doc.path)
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect();
    parameters.extend(doc.query.iter().map(|(name, kind, description)| {
        json!({"name": name, "in": "query", "required": false, "description": description, "schema": {"type": kind}})
    }));
    let mut operation = json!({
        "operationId": doc.operation_id,
        "summary": doc.summary,
        "tags": [doc.tag],
        "parameters": parameters,
        "responses": responses(doc),
    });
    let Some(object) = operation.as_object_mut() else {
        return operation;
    };
    if let Some(schema) = doc.body {
        object.insert(
            "requestBody".to_owned(),
            json!({"required": schema != "StartRun", "content": {"application/json": {"schema": schema_ref(schema)}}}),
        );
    }
    let security = match doc.scope {
        Some(scope) => {
            json!([{"bearerAuth": [scope.as_str()]}, {"apiKeyHeader": [scope.as_str()]}])
        }
        None => json!([]),
    };
    object.insert("security".to_owned(), security);
    operation
}

fn path_parameters(path: &str) -> impl Iterator<Item = &str> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
}

fn responses(doc: &RouteDoc) -> Value {
    let mut responses = Map::new();
    let (status, success) = match doc.success {
        Success::Json(status, schema) => (
            status,
            json!({"description": "Success", "content": {"application/json": {"schema": schema_ref(schema)}}}),
        ),
        Success::Empty => (204, json!({"description": "Done; no content"})),
        Success::Download => (200, download_response()),
        Success::EventStream => (
            200,
            json!({
                "description": "Server-Sent Events: `state`, `progress`, `log`, and `done` with the final \
                    run, after which the stream ends. A stream that ends for another reason sends `end` \
                    with `{\"reason\"}` last: `idle` (the task had no run for the server's idle timeout, \
                    300 s by default), `task_deleted`, `key_revoked`, `key_expired` (the key that opened \
                    the stream stopped being valid; checked every second), `account_disabled` or \
                    `shutdown`. A user may hold 8 streams open at once (server setting): one more is \
                    refused with 429 `too_many_streams` and `Retry-After`; a stream's slot is given back \
                    when the client disconnects.",
                "content": {"text/event-stream": {"schema": {"type": "string"}}}
            }),
        ),
        Success::Text => (
            200,
            json!({"description": "Prometheus text format", "content": {"text/plain": {"schema": {"type": "string"}}}}),
        ),
        Success::Redirect(description) => (
            302,
            json!({"description": description, "headers": {"Location": {"schema": {"type": "string"}}}}),
        ),
        Success::Html => (
            200,
            json!({"description": "An HTML page (no script; strict Content-Security-Policy)", "content": {"text/html": {"schema": {"type": "string"}}}}),
        ),
        Success::Atom => (
            200,
            json!({"description": "An Atom 1.0 feed (RFC 4287)", "content": {"application/atom+xml": {"schema": {"type": "string"}}}}),
        ),
    };
    responses.insert(status.to_string(), success);
    let error = json!({"$ref": "#/components/responses/Error"});
    let mut errors: Vec<&str> = Vec::new();
    if doc.scope.is_some() {
        errors.extend(["400", "401", "403", "429", "500", "503"]);
    }
    if path_parameters(doc.path).next().is_some() {
        errors.push("404");
    }
    if doc.body.is_some() {
        errors.extend(["413", "422"]);
    } else if !doc.query.is_empty() {
        errors.push("422");
    }
    if matches!(
        doc.operation_id,
        "createTask" | "startRun" | "retryTask" | "previewTask"
    ) {
        errors.push("402");
    }
    // updateUser: the last enabled administrator cannot be disabled or demoted.
    if matches!(doc.operation_id, "cancelTask" | "retryTask" | "updateUser") {
        errors.push("409");
    }
    match doc.operation_id {
        "metrics" => errors.push("403"),
        "ready" => errors.push("503"),
        // The provider unreachable (502); the callback also: the sign-in cookie or state
        // (400), a refusal or closed signup (403), an address of another account (409).
        "startOidcLogin" => errors.extend(["500", "502"]),
        "finishOidcLogin" => errors.extend(["400", "403", "409", "500", "502"]),
        // Wrong password (401), locked (429), closed signup or unverified e-mail (403),
        // e-mail taken (409), malformed body (400).
        "signup" | "login" | "issueToken" => {
            errors.extend(["400", "401", "403", "409", "429", "500", "503"]);
        }
        "updateAccount" => errors.push("409"),
        // Billing: 404 billing_disabled while the provider is off (or no subscription), 409
        // for a checkout beside a live subscription or resuming one not cancelled, 502 when
        // the provider fails; the webhook is 401 for a bad signature, 400 for a bad payload.
        "getSubscription" | "listInvoices" => errors.push("404"),
        "createCheckout" | "resumeSubscription" => errors.extend(["404", "409", "502"]),
        "changeSubscriptionPlan" | "cancelSubscription" | "billingPortal" => {
            errors.extend(["404", "502"]);
        }
        "lemonSqueezyWebhook" => errors.extend(["400", "401", "404", "500", "503"]),
        _ => {}
    }
    for code in errors {
        responses.insert(code.to_owned(), error.clone());
    }
    Value::Object(responses)
}

fn download_response() -> Value {
    let binary = json!({"type": "string", "format": "binary"});
    json!({
        "description": "The records, streamed, as an attachment named `run-{id}.{format}`.",
        "content": {
            "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
            "application/jsonl": {"schema": {"type": "string"}},
            "text/csv": {"schema": {"type": "string"}},
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {"schema": binary}
        }
    })
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn paged(item: &str) -> Value {
    json!({
        "type": "object",
        "required": ["items", "total_count", "page", "page_size", "total_pages", "has_next", "has_prev"],
        "properties": {
            "items": {"type": "array", "items": schema_ref(item)},
            "total_count": {"type": "integer"},
            "page": {"type": "integer"},
            "page_size": {"type": "integer"},
            "total_pages": {"type": "integer"},
            "has_next": {"type": "boolean"},
            "has_prev": {"type": "boolean"}
        }
    })
}

fn schemas() -> Value {
    let timestamp = json!({"type": "string", "format": "date-time"});
    let nullable_timestamp = json!({"type": ["string", "null"], "format": "date-time"});
    let run_states = json!([
        "queued",
        "running",
        "completed",
        "failed",
        "cancelled",
        "partial"
    ]);
    let mut schemas = json!({
        "Error": {
            "type": "object",
            "required": ["error", "message", "details", "request_id"],
            "properties": {
                "error": {"type": "string", "description": "Stable snake_case code, e.g. validation_failed."},
                "message": {"type": "string"},
                "details": {"type": "array", "items": {
                    "type": "object",
                    "properties": {"field": {"type": "string"}, "message": {"type": "string"}}
                }},
                "request_id": {"type": ["string", "null"]}
            }
        },
        "TaskInput": {
            "type": "object",
            "description": "A task spec v1 (canonical), or the original platform's API shape \
                ({name, task_type, config}), or the original worker's shape ({url, fields, pagination}); \
                plus optional top-level `priority` (1-10) and `start` (default true).",
            "additionalProperties": true
        },
        "StartRun": {
            "type": "object",
            "properties": {"priority": {"type": "integer", "minimum": 1, "maximum": 10}}
        },
        "Progress": {
            "type": "object",
            "properties": {
                "pages_done": {"type": "integer"},
                "pages_failed": {"type": "integer"},
                "pages_known": {"type": "integer"},
                "records": {"type": "integer"},
                "bytes": {"type": "integer"},
                "compute_units": {"type": "integer"}
            }
        },
        "Run": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "task_id": {"type": "string"},
                "state": {"type": "string", "enum": run_states},
                "reason": {"type": ["string", "null"]},
                "priority": {"type": "integer"},
                "attempt": {"type": "integer"},
                "max_attempts": {"type": "integer"},
                "cancel_requested": {"type": "boolean"},
                "queued_at": timestamp,
                "started_at": nullable_timestamp,
                "finished_at": nullable_timestamp,
                "progress": schema_ref("Progress"),
                "error": {"type": ["string", "null"]}
            }
        },
        "Task": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "name": {"type": "string"},
                "priority": {"type": "integer"},
                "spec": {"type": "object", "description": "The task spec v1, canonical form."},
                "input_shape": {"type": "string", "enum": ["canonical", "original_api", "original_worker"],
                    "description": "Only on the response to the request that sent the spec."},
                "created_at": timestamp,
                "updated_at": timestamp,
                "latest_run": {"oneOf": [schema_ref("Run"), {"type": "null"}]},
                "next_run_at": {"type": ["string", "null"], "format": "date-time",
                    "description": "The schedule's next fire; null when unscheduled, paused or disabled."}
            }
        },
        "TaskSummary": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "name": {"type": "string"},
                "priority": {"type": "integer"},
                "status": {"type": ["string", "null"], "description": "The latest run's state."},
                "latest_run_id": {"type": ["string", "null"]},
                "created_at": timestamp,
                "updated_at": timestamp,
                "next_run_at": {"type": ["string", "null"], "format": "date-time",
                    "description": "The schedule's next fire; null when unscheduled, paused or disabled."}
            }
        },
        "TaskList": paged("TaskSummary"),
        "RunList": paged("Run"),
        "LogLine": {
            "type": "object",
            "properties": {
                "time": timestamp,
                "level": {"type": "string"},
                "message": {"type": "string"},
                "fields": {}
            }
        },
        "LogList": paged("LogLine"),
        "RecordPage": {
            "type": "object",
            "required": ["items", "offset", "limit", "total_count"],
            "properties": {
                "items": {"type": "array", "items": {"type": "object"}},
                "offset": {"type": "integer"},
                "limit": {"type": "integer"},
                "total_count": {"type": "integer"}
            }
        },
        "Preview": {
            "type": "object",
            "properties": {
                "records": {"type": "array", "items": {"type": "object"}},
                "diagnostics": {"type": ["object", "null"]},
                "page": {"type": "object", "properties": {
                    "url": {"type": "string"},
                    "final_url": {"type": ["string", "null"]},
                    "status": {"type": ["integer", "null"]},
                    "outcome": {"type": "string", "description": "How the page went: `ok`, `http_{status}`, \
                        `timeout`, or a stable error class such as `blocked_address` or `records_too_large` \
                        (a value, record or the page's records exceeded the server's size limits; `records` \
                        is then empty). A page that fails is still a 200: the failure is the preview's \
                        answer, as it would be one page's outcome in a run."},
                    "error": {"type": ["string", "null"], "description": "What went wrong, when `outcome` is an error class."}
                }},
                "compute_units": {"type": "integer"}
            }
        },
        "NewApiKey": {
            "type": "object",
            "required": ["name", "scopes"],
            "properties": {
                "name": {"type": "string"},
                "scopes": {"type": "array", "items": {"type": "string",
                    "enum": ["tasks:read", "tasks:write", "results:read", "keys:write", "billing:read"]},
                    "description": "Only scopes the calling key holds (otherwise 403 insufficient_scope)."},
                "expires_at": {"type": "string", "format": "date-time",
                    "description": "When the new key stops working. A key never outlives the key that \
                        created it: when the calling key expires, the new key's expiry is the earlier of \
                        this value and the caller's, and the caller's when this is omitted."}
            }
        },
        "ApiKey": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "name": {"type": "string"},
                "prefix": {"type": "string"},
                "scopes": {"type": "array", "items": {"type": "string"}},
                "expires_at": nullable_timestamp,
                "last_used_at": nullable_timestamp,
                "revoked_at": nullable_timestamp,
                "created_at": timestamp
            }
        },
        "ApiKeyCreated": {
            "allOf": [schema_ref("ApiKey"), {
                "type": "object",
                "properties": {"key": {"type": "string", "description": "The full key; shown only here."}}
            }]
        },
        "ApiKeyList": paged("ApiKey"),
        "Health": {
            "type": "object",
            "properties": {"status": {"type": "string"}, "version": {"type": "string"}}
        },
        "Ready": {
            "type": "object",
            "properties": {
                "status": {"type": "string"},
                "version": {"type": "string"},
                "checks": {"type": "object"}
            }
        },
        "AdminWorkers": {
            "type": "object",
            "properties": {
                "items": {"type": "array", "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "host": {"type": "string"},
                        "pid": {"type": "integer"},
                        "started_at": timestamp,
                        "uptime_seconds": {"type": "number"},
                        "heartbeat_age_seconds": {"type": "number"},
                        "active_runs": {"type": "integer"},
                        "processed": {"type": "integer"}
                    }
                }},
                "live_within_seconds": {"type": "integer"}
            }
        },
        "AdminQueue": {
            "type": "object",
            "properties": {
                "depth": {"type": "object", "additionalProperties": {"type": "integer"}},
                "oldest_queued_age_seconds": {"type": ["number", "null"]},
                "last_hour": {"type": "object", "properties": {
                    "finished": {"type": "object", "additionalProperties": {"type": "integer"}},
                    "finished_total": {"type": "integer"},
                    "success_rate": {"type": ["number", "null"]}
                }},
                "compute_units_today": {"type": "integer"}
            }
        },
        "OpenApi": {"type": "object"}
    });
    if let Value::Object(map) = &mut schemas {
        map.extend(crate::handlers::account::schemas());
        map.extend(crate::handlers::billing::schemas());
        map.extend(crate::handlers::admin_users::schemas());
        map.extend(crate::handlers::audit::schemas());
        map.extend(crate::handlers::deliveries::schemas());
        map.extend(crate::handlers::changes::schemas());
        map.extend(crate::handlers::schedules::schemas());
        map.extend(crate::handlers::analytics::schemas());
        map.extend(crate::handlers::recovery::schemas());
        map.extend(crate::handlers::oidc::schemas());
    }
    schemas
}
