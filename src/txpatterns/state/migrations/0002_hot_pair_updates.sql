-- Pair counts change with almost every chunk. Without an index on n, and with room left on
-- each page, those updates are HOT (no index entries to rewrite); the k-th largest count of a
-- merchant is found by sorting its few thousand pairs instead.
DROP INDEX IF EXISTS pairs_by_count;
ALTER TABLE pairs SET (fillfactor = 70);
