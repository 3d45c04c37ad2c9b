-- Removal of the room access this tool granted (issue 11); the same tables as SQLite's
-- 0005 (numbered alike so the two directories tell the same story).

-- Ownership: one row per room and person, written when a room share this tool sent
-- succeeded. Only access with a row here is ever removed, and only when the person still
-- has exactly `access` and was not a member before the first share (`prior_access` NULL;
-- otherwise the FileShare integer they had). A removal deletes the row.
CREATE TABLE room_grants (
    room          TEXT        NOT NULL,
    email         TEXT        NOT NULL,
    person_id     TEXT        NOT NULL,
    assignee_gid  TEXT,
    access        INTEGER     NOT NULL,
    prior_access  INTEGER,
    task_gid      TEXT,
    project_gid   TEXT,
    granted_at    TIMESTAMPTZ NOT NULL,
    run_id        TEXT        NOT NULL,
    PRIMARY KEY (room, email)
);

-- Grace: when a person's last qualifying assignment for a room ended (as first noticed),
-- and why. Due `revoke_after` later; an assignment inside the grace deletes the row, as
-- does the removal itself.
CREATE TABLE pending_removals (
    room        TEXT        NOT NULL,
    email       TEXT        NOT NULL,
    since       TIMESTAMPTZ NOT NULL,
    why         TEXT        NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (room, email)
);
