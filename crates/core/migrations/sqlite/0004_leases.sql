-- Fencing tokens and the replica registry (several processes on one state).
--
-- lease_token grows by one with every claim of a job; a settle or heartbeat names the
-- token of its claim and acts only while the row is still running under it, so a worker
-- whose claim was taken over can change nothing. holder is the replica that claimed it.
ALTER TABLE jobs ADD COLUMN lease_token INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN holder TEXT;

-- Every serve/watch process heartbeats its row; once expires_at has passed the process
-- counts as dead and the jobs it held are claimed again at once, without waiting for
-- their lease. Times in Unix milliseconds.
CREATE TABLE replicas (
    id          TEXT    PRIMARY KEY,
    info        TEXT    NOT NULL,
    started_at  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
) STRICT;

CREATE INDEX jobs_holder ON jobs (holder) WHERE state = 'running';
