-- Accounts (issue 11): sessions, refresh tokens, e-mailed tokens, OpenID identities, the
-- audit log, Lemon Squeezy billing state; the ledger outlives deleted accounts.
-- Sections are owned by the module that uses them (named in each header).
-- ===== users (lead) =====
ALTER TABLE users ADD COLUMN display_name TEXT;
ALTER TABLE users ADD COLUMN email_verified_at INTEGER;
-- Consecutive failed logins and the lockout they earned (SPEC §6: backoff after failures).
ALTER TABLE users ADD COLUMN failed_logins INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN locked_until INTEGER;
ALTER TABLE users ADD COLUMN last_login_at INTEGER;

-- ===== H1 sessions =====
-- Dashboard sessions: the cookie holds a random secret, the table only its SHA-256, so a
-- copy of the database cannot be turned into a login, and logout really ends a session.
CREATE TABLE sessions (
    id           TEXT   PRIMARY KEY NOT NULL,
    token_hash   TEXT   NOT NULL UNIQUE,
    user_id      TEXT   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   INTEGER  NOT NULL,
    last_seen_at INTEGER  NOT NULL,
    expires_at   INTEGER  NOT NULL,
    revoked_at   INTEGER,
    ip           TEXT,
    user_agent   TEXT
);
CREATE INDEX sessions_by_user ON sessions (user_id, created_at);

-- Rotating refresh tokens; a family is one login's chain of rotations. Reuse of a spent
-- token revokes the whole family.
CREATE TABLE refresh_tokens (
    id         TEXT  PRIMARY KEY NOT NULL,
    family_id  TEXT  NOT NULL,
    user_id    TEXT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash TEXT  NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    spent_at   INTEGER,
    revoked_at INTEGER
);
CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_by_user ON refresh_tokens (user_id);

-- ===== H2 account tokens =====
-- Single-use tokens sent by e-mail (password reset, e-mail verification, invitation, the
-- first admin's setup link), stored as SHA-256 only. Invitations have no user yet.
CREATE TABLE account_tokens (
    token_hash TEXT  PRIMARY KEY NOT NULL,
    purpose    TEXT  NOT NULL,
    user_id    TEXT  REFERENCES users (id) ON DELETE CASCADE,
    email      TEXT  NOT NULL,
    created_by TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);
CREATE INDEX account_tokens_by_user ON account_tokens (user_id, purpose);

-- ===== H6 OpenID Connect identities =====
CREATE TABLE oidc_identities (
    provider   TEXT  NOT NULL,
    subject    TEXT  NOT NULL,
    user_id    TEXT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email      TEXT  NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (provider, subject)
);
CREATE INDEX oidc_identities_by_user ON oidc_identities (user_id);

-- ===== lead: audit log =====
-- Append-only record of security-relevant events. No foreign key: entries outlive the
-- account they concern (an account deletion is itself an entry). Never holds a password,
-- token or key.
CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    TEXT,
    actor_id   TEXT,
    event      TEXT  NOT NULL,
    ip         TEXT,
    details    TEXT  NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX audit_log_by_user ON audit_log (user_id, id);
CREATE INDEX audit_log_by_event ON audit_log (event, id);

-- ===== H4 billing (Lemon Squeezy) =====
-- The provider's subscriptions as last reported by its webhooks (ids are the provider's).
-- `entitled` is whether this state gives the user the plan (`plan`, the plan the variant
-- sells); the user's plan is the newest entitled subscription's, else the default plan.
-- `provider_updated_at` orders the provider's changes: an older one never overwrites it.
CREATE TABLE subscriptions (
    id                  TEXT  PRIMARY KEY NOT NULL,
    user_id             TEXT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    customer_id         TEXT,
    variant_id          TEXT  NOT NULL,
    plan                TEXT  NOT NULL,
    status              TEXT  NOT NULL,
    entitled            INTEGER NOT NULL DEFAULT 0,
    cancelled           INTEGER NOT NULL DEFAULT 0,
    card_brand          TEXT,
    card_last_four      TEXT,
    renews_at           INTEGER,
    ends_at             INTEGER,
    trial_ends_at       INTEGER,
    provider_updated_at INTEGER NOT NULL,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
);
CREATE INDEX subscriptions_by_user ON subscriptions (user_id, provider_updated_at);

-- Subscription invoices (payments and refunds), mapped to their subscription's user.
CREATE TABLE invoices (
    id                  TEXT  PRIMARY KEY NOT NULL,
    subscription_id     TEXT  NOT NULL,
    user_id             TEXT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    status              TEXT  NOT NULL,
    billing_reason      TEXT,
    total               INTEGER NOT NULL,
    currency            TEXT  NOT NULL,
    refunded_amount     INTEGER NOT NULL DEFAULT 0,
    invoice_url         TEXT,
    provider_updated_at INTEGER NOT NULL,
    created_at          INTEGER NOT NULL
);
CREATE INDEX invoices_by_user ON invoices (user_id, created_at);

-- Each webhook delivery is processed once: its key (the SHA-256 of the raw body) is
-- inserted in the same transaction as its effect. `outcome`: applied, stale (older than
-- the state kept), unknown_user, recorded, ignored*. A deleted account's events stay
-- (the provider's ids are the accounting trail) without naming the user.
CREATE TABLE billing_events (
    event_key   TEXT  PRIMARY KEY NOT NULL,
    event_name  TEXT  NOT NULL,
    object_id   TEXT,
    user_id     TEXT  REFERENCES users (id) ON DELETE SET NULL,
    received_at INTEGER NOT NULL,
    outcome     TEXT  NOT NULL
);

-- ===== H3 ledger =====
-- The ledger is the accounting record: a deleted account's entries stay, anonymised, so the
-- table loses its foreign key to users. SQLite cannot drop a constraint, so the table is
-- rebuilt with the same columns, ids and indexes.
CREATE TABLE ledger_new (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id         TEXT    NOT NULL,
    run_id          TEXT,
    idempotency_key TEXT    NOT NULL UNIQUE,
    kind            TEXT    NOT NULL,
    amount          INTEGER NOT NULL CHECK (amount >= 0),
    mode            TEXT,
    created_at      INTEGER NOT NULL
);
INSERT INTO ledger_new (id, user_id, run_id, idempotency_key, kind, amount, mode, created_at)
SELECT id, user_id, run_id, idempotency_key, kind, amount, mode, created_at FROM ledger;
DROP TABLE ledger;
ALTER TABLE ledger_new RENAME TO ledger;
CREATE INDEX ledger_by_user ON ledger (user_id, created_at);
CREATE INDEX ledger_by_run ON ledger (run_id);

-- ===== H3 deletion =====
-- Result objects of deleted runs still to be removed from the object store (deletion.rs):
-- written in the transaction that deletes the runs' rows, removed only once the objects
-- are gone, so a crash between the two leaves work for the next sweep and never an
-- orphan. `recheck_at`: a second sweep for runs a worker may still write a late page to.
CREATE TABLE result_object_deletions (
    run_id     TEXT    PRIMARY KEY NOT NULL,
    due_at     INTEGER NOT NULL,
    recheck_at INTEGER
);
CREATE INDEX result_object_deletions_due ON result_object_deletions (due_at);
-- Tasks deleted before deletion was real (soft-deleted: `deleted_at`) go for real now,
-- their runs' objects with them.
INSERT INTO result_object_deletions (run_id, due_at, recheck_at)
SELECT r.id, 0, NULL FROM runs r JOIN tasks t ON t.id = r.task_id WHERE t.deleted_at IS NOT NULL;
DELETE FROM tasks WHERE deleted_at IS NOT NULL;

-- ===== H5 analytics =====
-- A user's runs by the time they were queued: the usage series, the dashboard's recent runs.
-- Neither column changes after the insert, so a run's state changes stay HOT updates.
CREATE INDEX runs_by_user_queued ON runs (user_id, queued_at);
