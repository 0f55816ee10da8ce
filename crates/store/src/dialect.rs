//! The statements that differ between backends, in one place. Everything else in the store
//! is portable SQL (`$n` placeholders, `RETURNING`, `ON CONFLICT`, `CASE`, no scalar
//! MIN/MAX) shared by all backends.

use crate::db::Db;

/// Backend-specific statements; see the `SQLITE` value for what each one must do.
pub(crate) struct Dialect {
    /// Claims the next run (SPEC §4). Binds: `$1` worker id, `$2` lease_until, `$3` now.
    /// Returns the claimed run's row, or no row.
    pub claim_next_run: &'static str,
    /// Reads the run a page is committed to, inside the commit's write transaction, locking
    /// it where the backend has row locks. Binds: `$1` run id.
    pub lock_run_for_commit: &'static str,
}

impl Db {
    pub(crate) fn dialect(&self) -> &'static Dialect {
        match self {
            Db::Sqlite(_) => &SQLITE,
        }
    }
}

/// SQLite: one writer at a time, so a single `UPDATE … WHERE id = (SELECT …)` is atomic
/// across processes (a writing statement takes the write lock before it reads, waiting up
/// to busy_timeout). PostgreSQL will add `FOR UPDATE SKIP LOCKED` to the inner pick and
/// `FOR UPDATE` to the commit lock.
///
/// The claim picks, among users below their concurrency cap, the user with the fewest
/// running runs, and that user's best queued run (priority DESC, queued_at, id). Instead of
/// sorting every queued run it visits each user with queued runs once (a loose index scan
/// over `runs_claim` written as a recursive CTE) and takes only that user's head run, so
/// its cost grows with the number of users waiting, not the number of runs queued.
const SQLITE: Dialect = Dialect {
    claim_next_run: "\
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
RETURNING *",
    lock_run_for_commit: "SELECT user_id, state, lease_owner FROM runs WHERE id = $1",
};
