-- The replica a claim's holder acts for (a serve/watch process in `replicas`; NULL for a
-- CLI run). Once that replica's registry row has expired — its process died — the claim
-- is free at once, as its jobs are, instead of when lease_until passes. A claim whose
-- replica has no row (never registered, retired) keeps its lease. No foreign key: registry
-- rows are deleted while claims may still name them.
ALTER TABLE claims ADD COLUMN replica TEXT;
