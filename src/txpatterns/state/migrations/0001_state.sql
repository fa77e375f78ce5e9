-- The running statistics, the chunk ledger, the detections and the output files of one
-- namespace. Runs with search_path set to the namespace's schema.

CREATE TABLE meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);

-- w(c,m): sum and count of the importance weights of a pair, and their mean rounded to 60
-- decimal places (docs/patterns.md explains why that rounding preserves order and equality).
CREATE TABLE importance (
    merchant text    NOT NULL,
    customer text    NOT NULL,
    w_sum    numeric NOT NULL,
    w_count  bigint  NOT NULL,
    w        numeric NOT NULL,
    PRIMARY KEY (merchant, customer)
);

CREATE TABLE pairs (
    merchant text    NOT NULL,
    customer text    NOT NULL,
    n        bigint  NOT NULL,
    amount   numeric NOT NULL,
    has_f    boolean NOT NULL,
    has_m    boolean NOT NULL,
    w        numeric,
    PRIMARY KEY (merchant, customer)
);
CREATE INDEX pairs_by_count ON pairs (merchant, n DESC);
CREATE INDEX pairs_by_weight ON pairs (merchant, w) WHERE w IS NOT NULL;

CREATE TABLE merchants (
    merchant  text   PRIMARY KEY,
    n         bigint NOT NULL,
    customers bigint NOT NULL,
    weighted  bigint NOT NULL,
    female    bigint NOT NULL,
    male      bigint NOT NULL
);

CREATE TABLE chunks (
    chunk_index  integer     PRIMARY KEY,
    path         text        NOT NULL,
    valid_rows   bigint      NOT NULL,
    invalid_rows bigint      NOT NULL,
    published_at timestamptz,
    applied_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    batch_id     bigint      NOT NULL,
    seconds      numeric     NOT NULL
);

CREATE TABLE output_files (
    seq          integer     PRIMARY KEY,
    name         text        NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL,
    completed_at timestamptz,
    detections   integer     NOT NULL
);

CREATE TABLE detections (
    id          bigserial   PRIMARY KEY,
    pattern_id  text        NOT NULL,
    customer    text        NOT NULL,
    merchant    text        NOT NULL,
    chunk_index integer     NOT NULL,
    detected_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    y_start     timestamptz NOT NULL,
    figures     jsonb       NOT NULL,
    file_seq    integer     REFERENCES output_files (seq),
    UNIQUE (pattern_id, customer, merchant)
);
CREATE INDEX detections_pending ON detections (id) WHERE file_seq IS NULL;
CREATE INDEX detections_by_file ON detections (file_seq, id);
