-- Removal of the room access this tool granted (issue 11). Times in Unix milliseconds.

-- Ownership: one row per room and person, written when a room share this tool sent
-- succeeded. Only access with a row here is ever removed, and only when the person still
-- has exactly `access` and was not a member before the first share (`prior_access` NULL;
-- otherwise the FileShare integer they had). A removal deletes the row.
CREATE TABLE room_grants (
    room          TEXT    NOT NULL,
    email         TEXT    NOT NULL,
    person_id     TEXT    NOT NULL,
    assignee_gid  TEXT,
    access        INTEGER NOT NULL,
    prior_access  INTEGER,
    task_gid      TEXT,
    project_gid   TEXT,
    granted_at    INTEGER NOT NULL,
    run_id        TEXT    NOT NULL,
    PRIMARY KEY (room, email)
) STRICT;

-- Grace: when a person's last qualifying assignment for a room ended (as first noticed),
-- and why. The removal is due `revoke_after` later; an assignment inside the grace deletes
-- the row (a cancelled removal), as does the removal itself.
CREATE TABLE pending_removals (
    room        TEXT    NOT NULL,
    email       TEXT    NOT NULL,
    since       INTEGER NOT NULL,
    why         TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (room, email)
) STRICT;
