//! The statements that differ between backends, in one place. Everything else in the store
//! is portable SQL (`$n` placeholders, `RETURNING`, `ON CONFLICT`, `CASE`, no scalar
//! MIN/MAX) shared by all backends.

use crate::db::Db;

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
/// to busy_timeout). PostgreSQL needs two statements and row locks; see
/// [`POSTGRES_CLAIM_PICK_USER`].
///
/// The claim picks, among users below their concurrency cap, the user with the fewest
/// running runs, and that user's best queued run (priority DESC, queued_at, id). Instead of
/// sorting every queued run it visits each user with queued runs once (a loose index scan
/// over `runs_claim` written as a recursive CTE) and takes only that user's head run, so
/// its cost grows with the number of users waiting, not the number of runs queued.
pub(crate) const SQLITE_CLAIM_NEXT_RUN: &str = "\
UPDATE runs SET state = 'running', lease_owner = $1, lease_until = $2, attempt = attempt + 1, \
       started_at = COALESCE(started_at, $3) \
WHERE state = 'queued' AND id = ( \
    WITH RECURSIVE waiting(user_id) AS ( \
        SELECT MIN(user_id) FROM runs WHERE state = 'queued' \
        UNION ALL \
        SELECT (SELECT MIN(n.user_id) FROM runs n WHERE n.state = 'queued' AND n.user_id > w.user_id) \
        FROM waiting w WHERE w.user_id IS NOT NULL \
    ), \
    eligible AS ( \
        SELECT u.id AS user_id, u.max_concurrent_runs AS cap, \
               (SELECT COUNT(*) FROM runs x WHERE x.state = 'running' AND x.user_id = u.id) AS running \
        FROM waiting w JOIN users u ON u.id = w.user_id \
        WHERE u.disabled = 0 \
    ), \
    heads AS ( \
        SELECT e.running, \
               (SELECT h.id FROM runs h WHERE h.state = 'queued' AND h.user_id = e.user_id \
                ORDER BY h.priority DESC, h.queued_at, h.id LIMIT 1) AS run_id \
        FROM eligible e WHERE e.running < e.cap \
    ) \
    SELECT heads.run_id FROM heads JOIN runs c ON c.id = heads.run_id \
    ORDER BY heads.running, c.priority DESC, c.queued_at, c.id \
    LIMIT 1 \
) \
RETURNING *";

const SQLITE: Dialect = Dialect {
    lock_run_for_commit: "SELECT user_id, state, lease_owner FROM runs WHERE id = $1",
    lock_run_for_cancel: "SELECT state FROM runs WHERE id = $1 AND user_id = $2",
};

/// PostgreSQL: row locks instead of one database-wide writer.
const POSTGRES: Dialect = Dialect {
    lock_run_for_commit: "SELECT user_id, state, lease_owner FROM runs WHERE id = $1 FOR UPDATE",
    lock_run_for_cancel: "SELECT state FROM runs WHERE id = $1 AND user_id = $2 FOR UPDATE",
};

/// PostgreSQL claim, step 1 of 2 (one transaction): picks the user to serve, in the same
/// fairness order as SQLite (fewest running runs, then the priority, age and id of the
/// user's head run), and locks that user's row `FOR NO KEY UPDATE SKIP LOCKED`.
///
/// The user-row lock is how the per-user cap holds under concurrency: a claimer counts a
/// user's running runs only while holding it, so two claimers can never both take a user's
/// last slot. `SKIP LOCKED` sends a second concurrent claimer to the next user in the order
/// instead of making it wait. `NO KEY UPDATE` (not `UPDATE`) leaves the lock compatible
/// with the `KEY SHARE` locks that foreign-key checks take, so enqueueing a run for that
/// user is never blocked by a claim.
///
/// The count in this statement comes from its snapshot, taken before the lock was granted,
/// so it may be stale; step 2 counts again. Binds: none. Returns `user_id`, or no row.
pub(crate) const POSTGRES_CLAIM_PICK_USER: &str = "\
WITH RECURSIVE waiting(user_id) AS ( \
    SELECT MIN(user_id) FROM runs WHERE state = 'queued' \
    UNION ALL \
    SELECT (SELECT MIN(n.user_id) FROM runs n WHERE n.state = 'queued' AND n.user_id > w.user_id) \
    FROM waiting w WHERE w.user_id IS NOT NULL \
), \
counted AS ( \
    SELECT w.user_id, \
           (SELECT COUNT(*) FROM runs x WHERE x.state = 'running' AND x.user_id = w.user_id) AS running \
    FROM waiting w WHERE w.user_id IS NOT NULL \
) \
SELECT u.id AS user_id \
FROM counted c \
JOIN users u ON u.id = c.user_id \
CROSS JOIN LATERAL ( \
    SELECT h.priority, h.queued_at, h.id FROM runs h \
    WHERE h.state = 'queued' AND h.user_id = c.user_id \
    ORDER BY h.priority DESC, h.queued_at, h.id LIMIT 1 \
) head \
WHERE u.disabled = 0 AND c.running < u.max_concurrent_runs \
ORDER BY c.running, head.priority DESC, head.queued_at, head.id \
LIMIT 1 \
FOR NO KEY UPDATE OF u SKIP LOCKED";

/// PostgreSQL claim, step 2 of 2, under the user-row lock of step 1: claims that user's head
/// run if the user is still below their cap, counted afresh (a new statement sees every
/// claim committed before the lock was granted). The run row itself is taken `FOR UPDATE
/// SKIP LOCKED` so a run being cancelled at this instant is passed over, not waited for.
/// Binds: `$1` worker id, `$2` lease_until, `$3` now, `$4` user id. Returns the claimed
/// run's row, or no row (the user reached the cap meanwhile).
pub(crate) const POSTGRES_CLAIM_USERS_HEAD_RUN: &str = "\
UPDATE runs SET state = 'running', lease_owner = $1, lease_until = $2, attempt = attempt + 1, \
       started_at = COALESCE(started_at, $3) \
WHERE id = ( \
    SELECT h.id FROM runs h WHERE h.state = 'queued' AND h.user_id = $4 \
    ORDER BY h.priority DESC, h.queued_at, h.id LIMIT 1 \
    FOR UPDATE SKIP LOCKED \
) \
AND (SELECT COUNT(*) FROM runs x WHERE x.state = 'running' AND x.user_id = $4) \
    < (SELECT u.max_concurrent_runs FROM users u WHERE u.id = $4) \
RETURNING *";
