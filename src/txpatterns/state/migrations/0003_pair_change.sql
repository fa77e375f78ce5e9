-- What the latest update of a pair changed (4: the pair is new; +1: it became female; +2: it
-- became male), written by the same statement that updates the pair and read back through
-- RETURNING, so that applying a chunk needs no join with the pairs as they were.
ALTER TABLE pairs ADD COLUMN change smallint NOT NULL DEFAULT 0;
