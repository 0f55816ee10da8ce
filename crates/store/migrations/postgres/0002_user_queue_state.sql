-- Per-user queue counters for the claim (SPEC §4). Without them every claim visited each
-- user with queued runs and counted their running runs; with them a claim reads one row of
-- a small table through a partial index of the users it may serve.
--
-- Triggers on `runs` and `users` keep the table exact in the same transaction as every
-- change (enqueue, claim, finish, requeue, release, cancel, task deletion, cascades), so no
-- code path can forget it. Every change to a user's runs takes that user's row lock first,
-- which serialises the changes to one user's counters; the claim locks the same row
-- (`SKIP LOCKED`), which is what keeps two claimers from both taking a user's last slot.
--
-- `head_*` is the user's best queued run (priority DESC, queued_at, id), so that users with
-- equal running counts are served in the order of their best runs rather than by user id.
CREATE TABLE user_queue_state (
    user_id        TEXT   PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    running        BIGINT NOT NULL DEFAULT 0,
    queued         BIGINT NOT NULL DEFAULT 0,
    max_running    BIGINT NOT NULL,
    disabled       BIGINT NOT NULL DEFAULT 0,
    head_priority  BIGINT,
    head_queued_at BIGINT,
    head_id        TEXT
)
-- Two updates per run (claim, finish) on a table of one row per user: vacuum often, and
-- leave room for the new row versions on the same page.
WITH (
    fillfactor = 50,
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.1,
    autovacuum_vacuum_cost_delay = 0
);
-- The users a claim may serve, in the claim's order. A user has queued runs exactly when
-- they have a head run; the predicate names `head_id` rather than `queued` so that an
-- enqueue that changes only `queued` touches no indexed column and stays a HOT update.
CREATE INDEX user_queue_state_claimable
    ON user_queue_state (running, head_priority DESC, head_queued_at, head_id)
    WHERE head_id IS NOT NULL AND running < max_running AND disabled = 0;

INSERT INTO user_queue_state (user_id, running, queued, max_running, disabled)
SELECT u.id,
       (SELECT COUNT(*) FROM runs r WHERE r.user_id = u.id AND r.state = 'running'),
       (SELECT COUNT(*) FROM runs r WHERE r.user_id = u.id AND r.state = 'queued'),
       u.max_concurrent_runs,
       u.disabled
FROM users u;
UPDATE user_queue_state s SET (head_priority, head_queued_at, head_id) = (
    SELECT h.priority, h.queued_at, h.id FROM runs h
    WHERE h.state = 'queued' AND h.user_id = s.user_id
    ORDER BY h.priority DESC, h.queued_at, h.id LIMIT 1
)
WHERE s.queued > 0;

CREATE FUNCTION selextract_queue_state_user() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO user_queue_state (user_id, max_running, disabled)
        VALUES (NEW.id, NEW.max_concurrent_runs, NEW.disabled)
        ON CONFLICT (user_id) DO NOTHING;
    ELSE
        UPDATE user_queue_state SET max_running = NEW.max_concurrent_runs, disabled = NEW.disabled
        WHERE user_id = NEW.id;
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER users_queue_state_insert AFTER INSERT ON users
    FOR EACH ROW EXECUTE FUNCTION selextract_queue_state_user();
CREATE TRIGGER users_queue_state_update AFTER UPDATE OF max_concurrent_runs, disabled ON users
    FOR EACH ROW
    WHEN (OLD.max_concurrent_runs IS DISTINCT FROM NEW.max_concurrent_runs
          OR OLD.disabled IS DISTINCT FROM NEW.disabled)
    EXECUTE FUNCTION selextract_queue_state_user();

-- Applies one run's change to its user's counters and head. Every path first takes the
-- user's row lock, so the changes to one user's counters are serialised, and reads the row
-- as last committed. When a run leaves the queue the head is recomputed from `runs` in a
-- statement that starts after the lock is held, so that (under READ COMMITTED) its snapshot
-- includes every change committed by the transactions that held the lock before; the lock
-- costs nothing in a claim, whose statement holds it already.
CREATE FUNCTION selextract_queue_state_run() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    was_queued  BIGINT := 0;
    was_running BIGINT := 0;
    is_queued   BIGINT := 0;
    is_running  BIGINT := 0;
    uid         TEXT;
    st          user_queue_state%ROWTYPE;
BEGIN
    IF TG_OP <> 'INSERT' THEN
        uid := OLD.user_id;
        was_queued := CASE WHEN OLD.state = 'queued' THEN 1 ELSE 0 END;
        was_running := CASE WHEN OLD.state = 'running' THEN 1 ELSE 0 END;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        uid := NEW.user_id;
        is_queued := CASE WHEN NEW.state = 'queued' THEN 1 ELSE 0 END;
        is_running := CASE WHEN NEW.state = 'running' THEN 1 ELSE 0 END;
    END IF;
    IF was_queued = is_queued AND was_running = is_running
       AND NOT (TG_OP = 'UPDATE' AND is_queued = 1
                AND (OLD.priority <> NEW.priority OR OLD.queued_at <> NEW.queued_at)) THEN
        RETURN NULL;
    END IF;
    IF was_queued = 1 THEN
        -- The run left the queue (or moved within it): lock, then recompute the head.
        PERFORM 1 FROM user_queue_state WHERE user_id = uid FOR NO KEY UPDATE;
        UPDATE user_queue_state s
        SET queued = s.queued + is_queued - was_queued,
            running = s.running + is_running - was_running,
            (head_priority, head_queued_at, head_id) = (
                SELECT h.priority, h.queued_at, h.id FROM runs h
                WHERE h.state = 'queued' AND h.user_id = uid
                ORDER BY h.priority DESC, h.queued_at, h.id LIMIT 1
            )
        WHERE s.user_id = uid;
        RETURN NULL;
    END IF;
    UPDATE user_queue_state
    SET queued = queued + is_queued - was_queued, running = running + is_running - was_running
    WHERE user_id = uid
    RETURNING * INTO st;
    IF NOT FOUND THEN
        -- The user is being deleted (the cascade removed the row first).
        RETURN NULL;
    END IF;
    -- A run joined the queue: it becomes the head if it beats the current one.
    IF is_queued = 1
       AND (st.head_id IS NULL OR NEW.priority > st.head_priority
            OR (NEW.priority = st.head_priority
                AND (NEW.queued_at < st.head_queued_at
                     OR (NEW.queued_at = st.head_queued_at AND NEW.id < st.head_id)))) THEN
        UPDATE user_queue_state
        SET head_priority = NEW.priority, head_queued_at = NEW.queued_at, head_id = NEW.id
        WHERE user_id = uid;
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER runs_queue_state_insert AFTER INSERT ON runs
    FOR EACH ROW EXECUTE FUNCTION selextract_queue_state_run();
CREATE TRIGGER runs_queue_state_update AFTER UPDATE OF state, priority, queued_at ON runs
    FOR EACH ROW EXECUTE FUNCTION selextract_queue_state_run();
CREATE TRIGGER runs_queue_state_delete AFTER DELETE ON runs
    FOR EACH ROW EXECUTE FUNCTION selextract_queue_state_run();
