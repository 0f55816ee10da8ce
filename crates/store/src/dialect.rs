//! The statements that differ between backends, in one place. Everything else in the store
//! is portable SQL (`$n` placeholders, `RETURNING`, `ON CONFLICT`, `CASE`, no scalar
//! MIN/MAX) shared by all backends.

use crate::db::Db;
use crate::runs::run_columns;

/// Backend-specific statements; see the `SQLITE` value for what each one must do.
pub(crate) struct Dialect {
    /// Reads the run a page is committed to, inside the commit's write transaction, locking
    /// it where the backend has row locks. Binds: `$1` run id.
    pub lock_run_for_commit: &'static str,
    /// Reads a run's state inside the cancel transaction, locking it where the backend has
    /// row locks, so that a claim or finish cannot slip between the read and the change.
    /// Binds: `$1` run id, `$2` user id.
    pub lock_run_for_cancel: &'static str,
}

impl Db {
    pub(crate) fn dialect(&self) -> &'static Dialect {
        match self {
            Db::Sqlite(_) => &SQLITE,
            Db::Postgres(_) => &POSTGRES,
        }
    }
}

/// SQLite claims the next run (SPEC §4) in one statement. Binds: `$1` worker id, `$2`
/// lease_until, `$3` now. Returns the claimed run's row, or no row.
///
/// SQLite: one writer at a time, so a single `UPDATE … WHERE id = (SELECT …)` is atomic
/// across processes (a writing statement takes the write lock before it reads, waiting up
/// to busy_timeout). PostgreSQL needs row locks; see [`POSTGRES_CLAIM_NEXT_RUN`].
///
/// The claim picks, among users below their concurrency cap, the user with the fewest
/// running runs, then the best head run (priority DESC, queued_at, id), and takes that
/// user's head run. Both come from `user_queue_state` (kept exact by triggers, migration
/// 0002) through its partial index of claimable users, so a claim reads one index entry
/// whatever the number of users or runs waiting.
pub(crate) const SQLITE_CLAIM_NEXT_RUN: &str = concat!(
    "\
UPDATE runs SET state = 'running', lease_owner = $1, lease_until = $2, attempt = attempt + 1, \
       started_at = COALESCE(started_at, $3) \
WHERE state = 'queued' AND id = ( \
    SELECT s.head_id FROM user_queue_state s \
    WHERE s.head_id IS NOT NULL AND s.running < s.max_running AND s.disabled = 0 \
    ORDER BY s.running, s.head_priority DESC, s.head_queued_at, s.head_id \
    LIMIT 1 \
) \
RETURNING ",
    run_columns!()
);

const SQLITE: Dialect = Dialect {
    lock_run_for_commit: "SELECT user_id, state, lease_owner FROM runs WHERE id = $1",
    lock_run_for_cancel: "SELECT state FROM runs WHERE id = $1 AND user_id = $2",
};

/// PostgreSQL: row locks instead of one database-wide writer.
const POSTGRES: Dialect = Dialect {
    lock_run_for_commit: "SELECT user_id, state, lease_owner FROM runs WHERE id = $1 FOR UPDATE",
    lock_run_for_cancel: "SELECT state FROM runs WHERE id = $1 AND user_id = $2 FOR UPDATE",
};

/// PostgreSQL claims the next run (SPEC §4) in one statement. Binds: `$1` worker id, `$2`
/// lease_until, `$3` now. Returns the claimed run's row, or no row.
///
/// `pick` takes the best claimable user from `user_queue_state` (fewest running runs, then
/// the best head run; kept exact by triggers, migration 0002) and locks that row
/// `FOR NO KEY UPDATE SKIP LOCKED`. The row lock is how the per-user cap holds under
/// concurrency: under READ COMMITTED the locked row is re-read as last committed and the
/// `running < max_running` condition re-checked on it, and every change to the user's runs
/// (this claim's trigger included) must take the same lock before changing `running`, so
/// two claimers can never both take a user's last slot. `SKIP LOCKED` sends a concurrent
/// claimer to the next user instead of making it wait.
///
/// `target` then takes that user's head run `FOR UPDATE SKIP LOCKED`: a run claimed or
/// cancelled since this statement's snapshot fails the re-check (or is skipped) and the
/// next one is taken. No row when nothing is claimable, or when the picked user's runs all
/// changed under it; the caller tells the two apart.
///
/// The statement runs as its own transaction and commits asynchronously
/// (`synchronous_commit = off` for this transaction only): waiting for the WAL flush was
/// most of a claim's time. Losing a claim is safe: a server crash can only forget the last
/// few hundred milliseconds of claims, never corrupt anything, and a forgotten claim is a
/// lost lease, which the protocol already handles (the worker's next renewal or page commit
/// reports the lease lost and the run is claimed again). Everything the worker does after
/// the claim commits synchronously, which flushes the claim's WAL record with it. The
/// setting is transaction-local, so the statement must run on its own, never inside a
/// transaction that also does other work.
pub(crate) const POSTGRES_CLAIM_NEXT_RUN: &str = concat!(
    "\
WITH pick AS ( \
    SELECT s.user_id FROM user_queue_state s \
    WHERE s.head_id IS NOT NULL AND s.running < s.max_running AND s.disabled = 0 \
    ORDER BY s.running, s.head_priority DESC, s.head_queued_at, s.head_id \
    LIMIT 1 \
    FOR NO KEY UPDATE SKIP LOCKED \
), \
target AS ( \
    SELECT h.id FROM pick p CROSS JOIN LATERAL ( \
        SELECT r.id FROM runs r WHERE r.state = 'queued' AND r.user_id = p.user_id \
        ORDER BY r.priority DESC, r.queued_at, r.id LIMIT 1 \
        FOR UPDATE SKIP LOCKED \
    ) h \
) \
UPDATE runs SET state = 'running', lease_owner = $1, lease_until = $2, attempt = attempt + 1, \
       started_at = COALESCE(started_at, $3) \
FROM target \
WHERE runs.id = target.id AND runs.state = 'queued' \
  AND set_config('synchronous_commit', 'off', true) IS NOT NULL \
RETURNING ",
    run_columns!()
);

/// Whether some user is claimable right now (asked after a PostgreSQL claim came back
/// empty, to tell "nothing to claim" from "the picked user changed under the claim").
pub(crate) const POSTGRES_ANY_CLAIMABLE: &str = "\
SELECT COUNT(*) AS claimable FROM ( \
    SELECT 1 FROM user_queue_state s \
    WHERE s.head_id IS NOT NULL AND s.running < s.max_running AND s.disabled = 0 \
    LIMIT 1 \
) x";
