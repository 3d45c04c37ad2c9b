-- Claims: at most one reconcile acts on a person (key `person:<email>`) or resyncs a
-- project (key `resync:<gid>`) at a time, across workers and processes on this database.
-- A row is free when holder IS NULL; a claim whose lease_until has passed belongs to a
-- holder that died and may be taken over. released_seq orders releases, so a reconcile
-- that read DocSpace before someone else acted can tell its reading is stale.
CREATE TABLE claims (
    key           TEXT    PRIMARY KEY,
    holder        TEXT,
    lease_until   INTEGER,
    released_seq  INTEGER NOT NULL DEFAULT 0,
    -- 1 when the current holder took the claim over from one whose lease had run out.
    took_over     INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE INDEX claims_released ON claims (released_seq);
CREATE INDEX claims_holder ON claims (holder) WHERE holder IS NOT NULL;
