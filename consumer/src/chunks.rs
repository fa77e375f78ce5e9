//! The committed chunks in the database: the consumer writes a chunk's idempotency record and its
//! aggregate, encoded as one value (`txp_core::encoding`, one `chunk_aggregate` row), in one
//! transaction; the detector reads it back in chunk order and decodes only its shard's merchants.
//! Chunks committed before the encoding have `chunk_pair` rows instead (one per pair): they are
//! read as before until they are folded and pruned. The per-pair writers stay for the benchmark
//! that compares the two (`make bench-insert`, the catch-up's floors).

use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
    QuerySelect, Set, Statement, TransactionTrait,
};
use txp_core::aggregate::{ChunkAggregate, Genders, PairAggregate};
use txp_entity::{chunk_aggregate, chunk_pair, chunk_record, upload_ledger};

/// Rows per multi-row INSERT: 7 bound parameters a row must stay below SQLite's limit of
/// 32,766 (and PostgreSQL's 65,535).
const ROWS_PER_INSERT: usize = 4_000;

/// What committing a chunk found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitOutcome {
    /// The record and the aggregate rows are committed.
    Committed,
    /// The chunk was already committed with the same content: nothing was written.
    AlreadyCommitted,
    /// The chunk was committed earlier with other content (or skipped for good).
    Conflict { recorded_sha256: String, skipped_reason: Option<String> },
}

pub use txp_connectors::database::now_ms;

fn as_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A stream's high-water mark: the highest chunk index the uploader stored or a consumer
/// committed (a chunk published without the uploader's ledger has only a commit); `None` when
/// there is neither. A detector's lag is measured against it.
pub async fn high_water<C: ConnectionTrait>(db: &C, stream: &str) -> Result<Option<i64>, DbErr> {
    let stored: Option<i64> = upload_ledger::Entity::find()
        .filter(upload_ledger::Column::Stream.eq(stream))
        .select_only()
        .column_as(upload_ledger::Column::ChunkIndex.max(), "high")
        .into_tuple::<Option<i64>>()
        .one(db)
        .await?
        .flatten();
    let committed: Option<i64> = chunk_record::Entity::find()
        .filter(chunk_record::Column::Stream.eq(stream))
        .select_only()
        .column_as(chunk_record::Column::ChunkIndex.max(), "high")
        .into_tuple::<Option<i64>>()
        .one(db)
        .await?
        .flatten();
    Ok(stored.max(committed))
}

/// The recorded chunk, if any.
pub async fn find_record<C: ConnectionTrait>(
    db: &C,
    stream: &str,
    chunk: u64,
) -> Result<Option<chunk_record::Model>, DbErr> {
    chunk_record::Entity::find_by_id((stream.to_owned(), as_i64(chunk))).one(db).await
}

/// Inserts a chunk's record unless one exists for its (stream, index); true when inserted.
async fn insert_record_if_absent<C: ConnectionTrait>(
    db: &C,
    record: chunk_record::ActiveModel,
) -> Result<bool, DbErr> {
    let inserted = chunk_record::Entity::insert(record)
        .on_conflict(
            OnConflict::columns([chunk_record::Column::Stream, chunk_record::Column::ChunkIndex])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(db)
        .await;
    match inserted {
        Ok(rows) => Ok(rows > 0),
        Err(DbErr::RecordNotInserted) => Ok(false),
        Err(e) => Err(e),
    }
}

/// What a commit whose record was not inserted found: the chunk's existing record, if any.
fn not_inserted(existing: Option<chunk_record::Model>, sha256: &str) -> CommitOutcome {
    match existing {
        Some(r) if r.sha256 == sha256 && r.skipped_reason.is_none() => CommitOutcome::AlreadyCommitted,
        Some(r) => CommitOutcome::Conflict { recorded_sha256: r.sha256, skipped_reason: r.skipped_reason },
        // Deleted between the two statements (pruned): nothing to add.
        None => CommitOutcome::AlreadyCommitted,
    }
}

/// Commits a chunk's record and its encoded aggregate in one transaction, the record first: a
/// concurrent commit of the same chunk conflicts on the record and writes nothing. `ack` is the
/// message's ack when the queue lives in this database ([`Queue::ack_in_commit`]): it runs in
/// the same transaction. On PostgreSQL the commit also wakes the detectors of other processes
/// (`pg_notify`, delivered when the transaction commits).
///
/// [`Queue::ack_in_commit`]: txp_connectors::queue::Queue::ack_in_commit
pub async fn commit_chunk(
    db: &DatabaseConnection,
    stream: &str,
    sha256: &str,
    aggregate: &ChunkAggregate,
    ack: Option<Statement>,
    crash_mid_transaction: bool,
) -> Result<CommitOutcome, DbErr> {
    let encoded = txp_core::encoding::encode(aggregate.valid_rows, &aggregate.pairs)
        .map_err(|e| DbErr::Custom(format!("chunk {} of stream `{stream}`: {e}", aggregate.index)))?;
    let txn = db.begin().await?;
    let record = chunk_record::ActiveModel {
        stream: Set(stream.to_owned()),
        chunk_index: Set(as_i64(aggregate.index)),
        sha256: Set(sha256.to_owned()),
        valid_rows: Set(as_i64(aggregate.valid_rows)),
        rejected_rows: Set(as_i64(aggregate.rejected.len() as u64)),
        pairs: Set(as_i64(aggregate.pairs.len() as u64)),
        skipped_reason: Set(None),
        committed_at_ms: Set(now_ms()),
    };
    if !insert_record_if_absent(&txn, record).await? {
        let existing = find_record(&txn, stream, aggregate.index).await?;
        txn.rollback().await?;
        return Ok(not_inserted(existing, sha256));
    }
    chunk_aggregate::Entity::insert(chunk_aggregate::ActiveModel {
        stream: Set(stream.to_owned()),
        chunk_index: Set(as_i64(aggregate.index)),
        encoding: Set(encoded),
    })
    .exec_without_returning(&txn)
    .await?;
    if let Some(ack) = ack {
        txn.execute_raw(ack).await?;
    }
    if txn.get_database_backend() == DatabaseBackend::Postgres {
        let notify = Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            "SELECT pg_notify($1, $2)",
            [crate::handoff::COMMITS_CHANNEL.into(), stream.into()],
        );
        txn.execute_raw(notify).await?;
    }
    if crash_mid_transaction {
        // For kill tests: die with the transaction open, as `kill -9` would.
        std::process::abort();
    }
    txn.commit().await?;
    Ok(CommitOutcome::Committed)
}

/// A COPY text-format field: backslash, tab, newline and carriage return escaped.
fn copy_field(out: &mut String, field: &str) {
    for c in field.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// A chunk's pair rows as COPY text (stream, chunk_index, merchant, customer, txn_count,
/// amount_micros, genders): the per-pair commit that the encoding replaced, kept for the
/// benchmark floor that compares the two.
pub fn copy_rows(stream: &str, chunk: u64, pairs: &[PairAggregate]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(pairs.len() * 64);
    for p in pairs {
        copy_field(&mut out, stream);
        let _ = write!(out, "\t{chunk}\t");
        copy_field(&mut out, &p.merchant);
        out.push('\t');
        copy_field(&mut out, &p.customer);
        let _ = writeln!(out, "\t{}\t{}\t{}", p.count, p.amount_micros, p.genders.bits());
    }
    out
}

/// A pair read back from a table that stores it as `chunk_pair` does (count, amount in
/// micro-units as decimal text, gender bits); `where_` names the table or chunk in errors.
pub(crate) fn stored_pair(
    merchant: String,
    customer: String,
    txn_count: i64,
    amount_micros: &str,
    genders: i16,
    where_: &str,
) -> Result<PairAggregate, DbErr> {
    let amount = amount_micros
        .parse::<u128>()
        .map_err(|e| DbErr::Custom(format!("{where_}: amount `{amount_micros}` is not an integer: {e}")))?;
    Ok(PairAggregate {
        merchant,
        customer,
        count: u64::try_from(txn_count).unwrap_or(0),
        amount_micros: amount,
        genders: Genders::from_bits(u8::try_from(genders).unwrap_or(0)),
    })
}

/// How a chunk's aggregate rows are inserted (docs/performance.md has the measurements).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairInsert {
    /// sea-orm's multi-row `INSERT … VALUES`, in batches under the bound-parameter limits.
    InsertMany,
    /// PostgreSQL only: one `INSERT … SELECT FROM UNNEST($3::text[], …)` with one array per
    /// column, whatever the number of rows.
    Unnest,
}

impl PairInsert {
    /// The faster one measured for each backend: UNNEST on PostgreSQL, multi-row on SQLite.
    pub fn for_backend(backend: DatabaseBackend) -> Self {
        if backend == DatabaseBackend::Postgres { Self::Unnest } else { Self::InsertMany }
    }
}

/// The pair columns bound as `$3`…`$7` in PostgreSQL statements over [`pair_arrays`]: one array a
/// column, any number of rows.
pub(crate) const PAIR_ARRAYS: &str =
    "UNNEST($3::text[], $4::text[], $5::bigint[], $6::text[], $7::smallint[]) AS t(m, c, n, a, g)";

/// Pairs as one array per column (merchant, customer, count, amount in micro-units as decimal
/// text, gender bits), for [`PAIR_ARRAYS`].
pub(crate) fn pair_arrays(pairs: &[PairAggregate]) -> [sea_orm::Value; 5] {
    let column = |f: fn(&PairAggregate) -> String| pairs.iter().map(f).collect::<Vec<String>>();
    let counts: Vec<i64> = pairs.iter().map(|p| as_i64(p.count)).collect();
    let genders: Vec<i16> = pairs.iter().map(|p| i16::from(p.genders.bits())).collect();
    [
        column(|p| p.merchant.clone()).into(),
        column(|p| p.customer.clone()).into(),
        counts.into(),
        column(|p| p.amount_micros.to_string()).into(),
        genders.into(),
    ]
}

/// Inserts a chunk's pair rows inside the caller's transaction.
pub async fn insert_pairs<C: ConnectionTrait>(
    db: &C,
    stream: &str,
    chunk: u64,
    pairs: &[PairAggregate],
    method: PairInsert,
) -> Result<(), DbErr> {
    if pairs.is_empty() {
        return Ok(());
    }
    match method {
        PairInsert::InsertMany => {
            for rows in pairs.chunks(ROWS_PER_INSERT) {
                let models = rows.iter().map(|p| chunk_pair::ActiveModel {
                    stream: Set(stream.to_owned()),
                    chunk_index: Set(as_i64(chunk)),
                    merchant: Set(p.merchant.clone()),
                    customer: Set(p.customer.clone()),
                    txn_count: Set(as_i64(p.count)),
                    amount_micros: Set(p.amount_micros.to_string()),
                    genders: Set(i16::from(p.genders.bits())),
                });
                chunk_pair::Entity::insert_many(models).exec_without_returning(db).await?;
            }
        }
        PairInsert::Unnest => {
            let [merchants, customers, counts, amounts, genders] = pair_arrays(pairs);
            let statement = Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                format!(
                    "INSERT INTO chunk_pair (stream, chunk_index, merchant, customer, txn_count, amount_micros, genders) \
                     SELECT $1, $2, m, c, n, a, g FROM {PAIR_ARRAYS}"
                ),
                [stream.into(), as_i64(chunk).into(), merchants, customers, counts, amounts, genders],
            );
            db.execute_raw(statement).await?;
        }
    }
    Ok(())
}

/// Records a chunk as lost for good: an empty chunk with the reason, so that the detector can go
/// on. Refused (returns the record) when the chunk is already committed.
pub async fn skip_chunk(
    db: &DatabaseConnection,
    stream: &str,
    chunk: u64,
    reason: &str,
) -> Result<Result<(), chunk_record::Model>, DbErr> {
    let record = chunk_record::ActiveModel {
        stream: Set(stream.to_owned()),
        chunk_index: Set(as_i64(chunk)),
        sha256: Set(String::new()),
        valid_rows: Set(0),
        rejected_rows: Set(0),
        pairs: Set(0),
        skipped_reason: Set(Some(reason.to_owned())),
        committed_at_ms: Set(now_ms()),
    };
    if insert_record_if_absent(db, record).await? {
        return Ok(Ok(()));
    }
    match find_record(db, stream, chunk).await? {
        Some(existing) => Ok(Err(existing)),
        None => Err(DbErr::RecordNotInserted),
    }
}

/// A committed chunk's aggregate, read back (rejected rows are in the quarantine, not here).
/// `None` when the chunk is not committed.
pub async fn load_chunk<C: ConnectionTrait>(
    db: &C,
    stream: &str,
    chunk: u64,
) -> Result<Option<ChunkAggregate>, DbErr> {
    load_chunk_shard(db, stream, chunk, 0, 1).await
}

/// [`load_chunk`] restricted to the pairs of the merchants that shard `shard` of `shards` owns:
/// only those are decoded (the encoding skips the others' bytes). `valid_rows` is the chunk's.
pub async fn load_chunk_shard<C: ConnectionTrait>(
    db: &C,
    stream: &str,
    chunk: u64,
    shard: u32,
    shards: u32,
) -> Result<Option<ChunkAggregate>, DbErr> {
    let Some(record) = find_record(db, stream, chunk).await? else { return Ok(None) };
    let encoded = chunk_aggregate::Entity::find_by_id((stream.to_owned(), as_i64(chunk))).one(db).await?;
    let where_ = format!("chunk {chunk} of stream `{stream}`");
    let valid_rows = u64::try_from(record.valid_rows).unwrap_or(0);
    let pairs = match encoded {
        Some(row) => {
            let decoded = txp_core::encoding::decode_shard(&row.encoding, shard, shards)
                .map_err(|e| DbErr::Custom(format!("{where_}: {e}")))?;
            if decoded.valid_rows != valid_rows {
                return Err(DbErr::Custom(format!(
                    "{where_}: the encoded aggregate has {} valid rows, the record says {valid_rows}",
                    decoded.valid_rows
                )));
            }
            decoded.pairs
        }
        // Committed before the encoding (or skipped: no pairs at all): per-pair rows.
        None => {
            let mut pairs = load_pair_rows(db, stream, chunk, &record, &where_).await?;
            if shards > 1 {
                pairs.retain(|p| txp_core::shard::shard_of(&p.merchant, shards) == shard);
            }
            pairs
        }
    };
    Ok(Some(ChunkAggregate { index: chunk, valid_rows, pairs, rejected: Vec::new() }))
}

/// The `chunk_pair` rows of a chunk committed before the encoding, checked against its record.
async fn load_pair_rows<C: ConnectionTrait>(
    db: &C,
    stream: &str,
    chunk: u64,
    record: &chunk_record::Model,
    where_: &str,
) -> Result<Vec<PairAggregate>, DbErr> {
    let rows = chunk_pair::Entity::find()
        .filter(chunk_pair::Column::Stream.eq(stream))
        .filter(chunk_pair::Column::ChunkIndex.eq(as_i64(chunk)))
        .all(db)
        .await?;
    if rows.len() as u64 != u64::try_from(record.pairs).unwrap_or(0) {
        return Err(DbErr::Custom(format!(
            "{where_}: {} aggregate rows, the record says {}",
            rows.len(),
            record.pairs
        )));
    }
    let mut pairs = rows
        .into_iter()
        .map(|row| {
            stored_pair(row.merchant, row.customer, row.txn_count, &row.amount_micros, row.genders, where_)
        })
        .collect::<Result<Vec<_>, _>>()?;
    // In Rust's byte order (the database's collation may differ): cheaper here than an ORDER BY.
    pairs.sort_unstable();
    Ok(pairs)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn copy_rows_escape_what_copy_text_format_would_misread() {
        let pair = PairAggregate {
            merchant: "'M\\1'".to_owned(),
            customer: "'C\t2\n'".to_owned(),
            count: 3,
            amount_micros: u128::from(u64::MAX) * 2,
            genders: Genders::from_bits(5),
        };
        let text = copy_rows("s\r", 7, &[pair]);
        assert_eq!(text, format!("s\\r\t7\t'M\\\\1'\t'C\\t2\\n'\t3\t{}\t5\n", u128::from(u64::MAX) * 2));
    }
}
