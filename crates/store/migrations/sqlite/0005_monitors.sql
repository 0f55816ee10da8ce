-- Schedules, change detection and notifications (issue 12, SPEC §4 scheduler and §5).
-- Sections are owned by the module that uses them (named in each header).

-- ===== scheduler (store/schedules.rs) =====
-- One row per schedule: a task's (id = task id) or an installation job's
-- (id = "system:<job>", task_id and user_id NULL). The cron text and zone are copied from
-- the task's spec when the task is written. `cursor_local` is the last wall-clock fire
-- (format "%Y-%m-%dT%H:%M:%S" in the schedule's zone) that was processed; `next_fire_at`
-- the instant of the next one (NULL: never fires). A tick is claimed by moving the cursor
-- with a compare-and-set in the transaction that records it, so exactly one process
-- records each tick.
CREATE TABLE schedules (
    id           TEXT    PRIMARY KEY NOT NULL,
    task_id      TEXT    REFERENCES tasks (id) ON DELETE CASCADE,
    user_id      TEXT    REFERENCES users (id) ON DELETE CASCADE,
    cron         TEXT    NOT NULL,
    timezone     TEXT    NOT NULL,
    enabled      INTEGER NOT NULL DEFAULT 1,
    paused_at    INTEGER,
    cursor_local TEXT    NOT NULL,
    next_fire_at INTEGER,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX schedules_due ON schedules (next_fire_at);
CREATE INDEX schedules_by_user ON schedules (user_id);

-- Every tick with its outcome: started (run_id set), skipped_overlap, missed,
-- insufficient_compute_units, skipped_nonexistent_time (a wall-clock time a DST change
-- skipped; scheduled_at NULL). `missed_count` > 1 when one row stands for a long outage's
-- run of missed ticks.
CREATE TABLE schedule_ticks (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    schedule_id     TEXT    NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    task_id         TEXT,
    user_id         TEXT,
    scheduled_local TEXT    NOT NULL,
    scheduled_at    INTEGER,
    outcome         TEXT    NOT NULL,
    run_id          TEXT,
    detail          TEXT,
    missed_count    INTEGER NOT NULL DEFAULT 1,
    recorded_at     INTEGER NOT NULL,
    UNIQUE (schedule_id, scheduled_local)
);
CREATE INDEX schedule_ticks_by_schedule ON schedule_ticks (schedule_id, id);

-- ===== change detection (store/run_changes.rs) =====
-- The change summary of a monitor's run against the previous completed run of its task.
-- The per-record detail lives in the result store next to the run's pages (chunks of
-- `detail_chunk_size` entries), and so does the run's key-sorted snapshot
-- (`snapshot_chunks` objects) that the next run is compared with.
CREATE TABLE run_changes (
    run_id            TEXT    PRIMARY KEY NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    task_id           TEXT    NOT NULL,
    user_id           TEXT    NOT NULL,
    previous_run_id   TEXT,
    key_field         TEXT,
    previous_records  INTEGER NOT NULL,
    records           INTEGER NOT NULL,
    added             INTEGER NOT NULL,
    removed           INTEGER NOT NULL,
    changed           INTEGER NOT NULL,
    unchanged         INTEGER NOT NULL,
    changed_fraction  REAL    NOT NULL,
    passed_threshold  INTEGER NOT NULL,
    detail_items      INTEGER NOT NULL,
    detail_chunk_size INTEGER NOT NULL,
    snapshot_chunks   INTEGER NOT NULL,
    created_at        INTEGER NOT NULL
);
CREATE INDEX run_changes_by_task ON run_changes (task_id, created_at);

-- Atom feed tokens: a random secret in the feed URL (only its SHA-256 here) that grants
-- reading one task's change feed and nothing else; revocable.
CREATE TABLE feed_tokens (
    id           TEXT    PRIMARY KEY NOT NULL,
    user_id      TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    task_id      TEXT    NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    token_hash   TEXT    NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER,
    last_used_at INTEGER
);
CREATE INDEX feed_tokens_by_task ON feed_tokens (task_id);

-- ===== notifications (store/outcome.rs, store/deliveries.rs) =====
-- When the run's events (notifications) were written to the outbox; set in the
-- transaction that finishes the run, or by the sweep for runs settled elsewhere (lost
-- workers). Runs finished before this migration count as done.
ALTER TABLE runs ADD COLUMN outcome_recorded_at INTEGER;
UPDATE runs SET outcome_recorded_at = finished_at WHERE finished_at IS NOT NULL;
CREATE INDEX runs_outcome_pending ON runs (outcome_recorded_at, finished_at);

-- The per-user webhook signing secret is derived from an installation key and this
-- version; rotating the secret bumps it.
ALTER TABLE users ADD COLUMN webhook_secret_version INTEGER NOT NULL DEFAULT 1;

-- The outbox: one row per (event, target), written in the transaction that settles the
-- run, delivered by workers under a lease, retried with backoff until `give_up_at`.
-- state: pending | delivered | failed | cancelled.
CREATE TABLE deliveries (
    id              TEXT    PRIMARY KEY NOT NULL,
    user_id         TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    task_id         TEXT,
    run_id          TEXT,
    event           TEXT    NOT NULL,
    channel         TEXT    NOT NULL,
    target          TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    give_up_at      INTEGER NOT NULL,
    lease_owner     TEXT,
    lease_until     INTEGER,
    last_status     INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    delivered_at    INTEGER,
    UNIQUE (run_id, event, channel, target)
);
CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at);
CREATE INDEX deliveries_by_user ON deliveries (user_id, created_at);
CREATE INDEX deliveries_by_task ON deliveries (task_id, created_at);

-- Every attempt: status code (NULL when no answer), latency and error.
CREATE TABLE delivery_attempts (
    delivery_id TEXT    NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    outcome     TEXT    NOT NULL,
    status_code INTEGER,
    latency_ms  INTEGER NOT NULL,
    error       TEXT,
    PRIMARY KEY (delivery_id, attempt)
);

-- Health of each notification target of a task: consecutive permanent failures, and when
-- (and why) the target was disabled; re-enabled through the API.
CREATE TABLE notify_targets (
    task_id              TEXT    NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    channel              TEXT    NOT NULL,
    target               TEXT    NOT NULL,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    disabled_at          INTEGER,
    disabled_reason      TEXT,
    PRIMARY KEY (task_id, channel, target)
);
