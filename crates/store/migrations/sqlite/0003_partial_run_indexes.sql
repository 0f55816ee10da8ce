-- The queue's indexes on `runs` cover only the rows they serve. A run changes state twice
-- on its way through the queue (claim, finish), and every such change writes a new entry
-- into every index whose predicate the new row satisfies: with full indexes on `state` a
-- claim and a finish each wrote five index entries, now they write three and two. Finished
-- runs (most of the table over time) are in none of the queue's indexes.
DROP INDEX runs_claim;
DROP INDEX runs_by_state_age;
DROP INDEX runs_by_user_state;
-- A user's queued runs in claim order: the claim and the head recomputation of
-- `user_queue_state` take the first entry.
CREATE INDEX runs_queued ON runs (user_id, priority DESC, queued_at, id) WHERE state = 'queued';
-- The oldest queued run (`selextract_queue_oldest_age_seconds`).
CREATE INDEX runs_queued_age ON runs (queued_at) WHERE state = 'queued';
-- The running runs, for the requeue of runs whose worker stopped renewing its lease. It
-- holds no lease column on purpose: a lease renewal (twice a second per running run) then
-- changes no indexed column and stays a HOT update; the requeue reads the few running runs
-- and checks their leases.
CREATE INDEX runs_running ON runs (id) WHERE state = 'running';
