-- Per-user queue counters for the claim (SPEC §4); the same table and meaning as on
-- PostgreSQL. Without them every claim visited each user with queued runs and counted their
-- running runs; with them a claim reads one row through a partial index of the users it may
-- serve. Triggers keep the table exact in the same transaction as every change to `runs`
-- and `users`, so no code path can forget it. SQLite has one writer at a time, so the
-- user's head run is simply recomputed whenever the user's queued runs change.
CREATE TABLE user_queue_state (
    user_id        TEXT    PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    running        INTEGER NOT NULL DEFAULT 0,
    queued         INTEGER NOT NULL DEFAULT 0,
    max_running    INTEGER NOT NULL,
    disabled       INTEGER NOT NULL DEFAULT 0,
    head_priority  INTEGER,
    head_queued_at INTEGER,
    head_id        TEXT
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
UPDATE user_queue_state SET (head_priority, head_queued_at, head_id) = (
    SELECT h.priority, h.queued_at, h.id FROM runs h
    WHERE h.state = 'queued' AND h.user_id = user_queue_state.user_id
    ORDER BY h.priority DESC, h.queued_at, h.id LIMIT 1
)
WHERE queued > 0;

CREATE TRIGGER users_queue_state_insert AFTER INSERT ON users
BEGIN
    INSERT INTO user_queue_state (user_id, max_running, disabled)
    VALUES (NEW.id, NEW.max_concurrent_runs, NEW.disabled)
    ON CONFLICT (user_id) DO NOTHING;
END;
CREATE TRIGGER users_queue_state_update AFTER UPDATE OF max_concurrent_runs, disabled ON users
BEGIN
    UPDATE user_queue_state SET max_running = NEW.max_concurrent_runs, disabled = NEW.disabled
    WHERE user_id = NEW.id;
END;

CREATE TRIGGER runs_queue_state_insert AFTER INSERT ON runs
BEGIN
    UPDATE user_queue_state
    SET queued = queued + (NEW.state = 'queued'), running = running + (NEW.state = 'running')
    WHERE user_id = NEW.user_id;
    UPDATE user_queue_state SET (head_priority, head_queued_at, head_id) = (
        SELECT h.priority, h.queued_at, h.id FROM runs h
        WHERE h.state = 'queued' AND h.user_id = NEW.user_id
        ORDER BY h.priority DESC, h.queued_at, h.id LIMIT 1
    )
    WHERE user_id = NEW.user_id AND NEW.state = 'queued';
END;
CREATE TRIGGER runs_queue_state_update AFTER UPDATE OF state, priority, queued_at ON runs
BEGIN
    UPDATE user_queue_state
    SET queued = queued + (NEW.state = 'queued') - (OLD.state = 'queued'),
        running = running + (NEW.state = 'running') - (OLD.state = 'running')
    WHERE user_id = NEW.user_id AND NEW.state IS NOT OLD.state;
    UPDATE user_queue_state SET (head_priority, head_queued_at, head_id) = (
        SELECT h.priority, h.queued_at, h.id FROM runs h
        WHERE h.state = 'queued' AND h.user_id = NEW.user_id
        ORDER BY h.priority DESC, h.queued_at, h.id LIMIT 1
    )
    WHERE user_id = NEW.user_id AND (OLD.state = 'queued' OR NEW.state = 'queued');
END;
CREATE TRIGGER runs_queue_state_delete AFTER DELETE ON runs
BEGIN
    UPDATE user_queue_state
    SET queued = queued - (OLD.state = 'queued'), running = running - (OLD.state = 'running')
    WHERE user_id = OLD.user_id;
    UPDATE user_queue_state SET (head_priority, head_queued_at, head_id) = (
        SELECT h.priority, h.queued_at, h.id FROM runs h
        WHERE h.state = 'queued' AND h.user_id = OLD.user_id
        ORDER BY h.priority DESC, h.queued_at, h.id LIMIT 1
    )
    WHERE user_id = OLD.user_id AND OLD.state = 'queued';
END;
