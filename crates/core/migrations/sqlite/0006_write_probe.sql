-- One row that `/healthz` rewrites to prove the database can still commit a write (a read
-- ping answers fine on a full disk). Only ever the row id = 1; `at` is Unix milliseconds.
CREATE TABLE write_probe (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    at  INTEGER NOT NULL
) STRICT;
