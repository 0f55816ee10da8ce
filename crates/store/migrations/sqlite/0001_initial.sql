-- Initial schema (SQLite). Ids are TEXT (UUID v7 strings), timestamps are INTEGER unix
-- milliseconds, booleans are INTEGER 0/1 and JSON is TEXT, so that the PostgreSQL schema
-- can use the same column meanings (TEXT / BIGINT) and the same statements.

CREATE TABLE users (
    id                  TEXT    PRIMARY KEY NOT NULL,
    email               TEXT    NOT NULL UNIQUE,
    password_hash       TEXT,
    is_admin            INTEGER NOT NULL DEFAULT 0,
    plan                TEXT    NOT NULL,
    max_concurrent_runs INTEGER NOT NULL,
    created_at          INTEGER NOT NULL,
    disabled            INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE api_keys (
    id           TEXT    PRIMARY KEY NOT NULL,
    user_id      TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    public_id    TEXT    NOT NULL UNIQUE,
    secret_hash  TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    scopes       TEXT    NOT NULL,
    expires_at   INTEGER,
    last_used_at INTEGER,
    revoked_at   INTEGER,
    created_at   INTEGER NOT NULL
);
CREATE INDEX api_keys_by_user ON api_keys (user_id, created_at);

CREATE TABLE tasks (
    id         TEXT    PRIMARY KEY NOT NULL,
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name       TEXT    NOT NULL,
    spec       TEXT    NOT NULL,
    priority   INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    deleted_at INTEGER
);
CREATE INDEX tasks_by_user ON tasks (user_id, created_at);

CREATE TABLE runs (
    id               TEXT    PRIMARY KEY NOT NULL,
    task_id          TEXT    NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    user_id          TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    state            TEXT    NOT NULL,
    reason           TEXT,
    priority         INTEGER NOT NULL,
    spec             TEXT    NOT NULL,
    attempt          INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    lease_owner      TEXT,
    lease_until      INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    queued_at        INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER,
    pages_done       INTEGER NOT NULL DEFAULT 0,
    pages_failed     INTEGER NOT NULL DEFAULT 0,
    pages_known      INTEGER NOT NULL DEFAULT 0,
    records          INTEGER NOT NULL DEFAULT 0,
    bytes            INTEGER NOT NULL DEFAULT 0,
    compute_units    INTEGER NOT NULL DEFAULT 0,
    error            TEXT
);
-- The claim walks the users that have queued runs and takes each user's head run from
-- this index (state, user) → priority DESC, queued_at, id; it also counts running runs.
CREATE INDEX runs_claim ON runs (state, user_id, priority DESC, queued_at, id);
CREATE INDEX runs_by_state_age ON runs (state, queued_at);
CREATE INDEX runs_by_user_state ON runs (user_id, state);
CREATE INDEX runs_by_task ON runs (task_id, queued_at);

CREATE TABLE run_pages (
    run_id       TEXT    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    page_key     TEXT    NOT NULL,
    seq          INTEGER NOT NULL,
    url          TEXT    NOT NULL,
    status       INTEGER,
    outcome      TEXT    NOT NULL,
    records      INTEGER NOT NULL,
    bytes        INTEGER NOT NULL,
    object_key   TEXT,
    first_record INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (run_id, page_key)
);
CREATE UNIQUE INDEX run_pages_by_seq ON run_pages (run_id, seq);

CREATE TABLE run_logs (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id  TEXT    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    ts      INTEGER NOT NULL,
    level   TEXT    NOT NULL,
    message TEXT    NOT NULL,
    fields  TEXT    NOT NULL
);
CREATE INDEX run_logs_by_run ON run_logs (run_id, id);

-- Append-only. Not cascaded from runs: the ledger is the billing record and must outlive
-- pruned runs, so run_id is a plain column.
CREATE TABLE ledger (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id         TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    run_id          TEXT,
    idempotency_key TEXT    NOT NULL UNIQUE,
    kind            TEXT    NOT NULL,
    amount          INTEGER NOT NULL CHECK (amount >= 0),
    mode            TEXT,
    created_at      INTEGER NOT NULL
);
CREATE INDEX ledger_by_user ON ledger (user_id, created_at);
CREATE INDEX ledger_by_run ON ledger (run_id);

CREATE TABLE workers (
    id           TEXT    PRIMARY KEY NOT NULL,
    host         TEXT    NOT NULL,
    pid          INTEGER NOT NULL,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    active_runs  INTEGER NOT NULL,
    processed    INTEGER NOT NULL
);

CREATE TABLE kv (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
