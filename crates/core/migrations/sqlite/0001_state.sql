-- Durable state of asana-docspace (SQLite dialect).
-- All timestamps are UTC unix milliseconds (INTEGER).

-- Ledger: every decision and action, append-only. Read by `history` and audits.
CREATE TABLE ledger (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    at            INTEGER NOT NULL,
    run_id        TEXT    NOT NULL,
    source        TEXT    NOT NULL,
    task_gid      TEXT,
    assignee_gid  TEXT,
    email         TEXT,
    target        TEXT    NOT NULL,
    action        TEXT    NOT NULL,
    outcome       TEXT    NOT NULL,
    error         TEXT,
    detail        TEXT
) STRICT;

CREATE INDEX ledger_email ON ledger (email COLLATE NOCASE);
CREATE INDEX ledger_task  ON ledger (task_gid);
CREATE INDEX ledger_run   ON ledger (run_id);

-- Work queue: one row per job. The row is the truth (state, attempts, lease);
-- the dedupe key stays unique for as long as the row exists, so a redelivered
-- webhook event is recognised and dropped.
CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    kind             TEXT    NOT NULL,
    resource_gid     TEXT    NOT NULL,
    project_gid      TEXT,
    dedupe_key       TEXT    NOT NULL,
    payload          TEXT,
    state            TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'done', 'dead')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    next_attempt_at  INTEGER NOT NULL,
    lease_until      INTEGER
) STRICT;

CREATE UNIQUE INDEX jobs_dedupe ON jobs (dedupe_key);
-- claim (queued and due, oldest first), queue_depth counts, prune_done.
CREATE INDEX jobs_state_due ON jobs (state, next_attempt_at);
-- claim of running jobs whose lease expired (crashed worker). `state` leads so the planner
-- prefers this (state = ? AND lease_until < ?) over jobs_state_due (state = ?).
CREATE INDEX jobs_lease ON jobs (state, lease_until) WHERE state = 'running';

-- Webhook registrations: one delivery path /webhooks/asana/{id} per row.
CREATE TABLE webhooks (
    id           TEXT    PRIMARY KEY,
    project_gid  TEXT    NOT NULL,
    target       TEXT    NOT NULL,
    asana_gid    TEXT    UNIQUE,
    secret       TEXT,
    state        TEXT    NOT NULL CHECK (state IN ('expecting', 'active')),
    created_at   INTEGER NOT NULL
) STRICT;

-- Events API sync tokens (watch), one per watched resource.
CREATE TABLE sync_tokens (
    resource_gid  TEXT    PRIMARY KEY,
    token         TEXT    NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT;
