-- UPGRADE reads every pair of each touched merchant past upgrade.min_merchant_txns, and more
-- merchants pass that minimum as history grows. In one heap a merchant's pairs lay three or
-- four to a page across the whole table (1,060 pages for 3,800 pairs after 600 chunks), so
-- that read dominated UPGRADE. Hash partitions by merchant keep a merchant's pairs on the pages
-- of one small partition.
ALTER TABLE pairs RENAME TO pairs_unpartitioned;
ALTER INDEX pairs_by_weight RENAME TO pairs_unpartitioned_by_weight;
ALTER TABLE pairs_unpartitioned RENAME CONSTRAINT pairs_pkey TO pairs_unpartitioned_pkey;

CREATE TABLE pairs (
    merchant text     NOT NULL,
    customer text     NOT NULL,
    n        bigint   NOT NULL,
    amount   numeric  NOT NULL,
    has_f    boolean  NOT NULL,
    has_m    boolean  NOT NULL,
    w        numeric,
    change   smallint NOT NULL DEFAULT 0,
    PRIMARY KEY (merchant, customer)
) PARTITION BY HASH (merchant);

-- fillfactor 70 as in migration 0002, so that pair updates stay HOT.
DO $$
BEGIN
    FOR i IN 0..31 LOOP
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF pairs FOR VALUES WITH (MODULUS 32, REMAINDER %s) '
            'WITH (fillfactor = 70)', 'pairs_' || i, i);
    END LOOP;
END $$;

CREATE INDEX pairs_by_weight ON pairs (merchant, w) WHERE w IS NOT NULL;

INSERT INTO pairs (merchant, customer, n, amount, has_f, has_m, w, change)
SELECT merchant, customer, n, amount, has_f, has_m, w, change FROM pairs_unpartitioned;
DROP TABLE pairs_unpartitioned;
