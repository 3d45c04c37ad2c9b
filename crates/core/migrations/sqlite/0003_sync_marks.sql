-- Incremental sync: per rule (key `<project>:<room or ->`), the fingerprint of the rule as
-- it was, when the last complete, successful full read of its project started, and from
-- when the next incremental read asks for modified tasks (the start of the last complete,
-- successful run, full or incremental). Times in Unix milliseconds.
CREATE TABLE sync_marks (
    rule_key         TEXT    PRIMARY KEY,
    project_gid      TEXT    NOT NULL,
    fingerprint      TEXT    NOT NULL,
    full_started_at  INTEGER NOT NULL,
    since            INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
) STRICT;
