//! The detector's running statistics in the database: what the brief keeps in PostgreSQL per
//! pair and per merchant, for users to query, and the state a restarted detector resumes from.
//!
//! A shard persists the changes since its last persist together with the fold position they
//! stand for (`detector_state.persisted_through`), fenced like a fold: the position is written
//! only if the shard is still folded exactly there. The committed chunk aggregates stay the
//! changelog; once every shard has persisted past a chunk (plus the retention), its aggregate
//! rows are no longer needed and are pruned.

use std::collections::HashSet;

use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, EntityTrait, QueryFilter, Set,
    Statement, TransactionTrait,
};
use txp_core::aggregate::PairAggregate;
use txp_core::detection::Pattern;
use txp_core::engine::EngineChanges;
use txp_entity::{chunk_aggregate, chunk_pair, detection, detector_state, merchant_stats, pair_stats};

use crate::chunks::{PAIR_ARRAYS, pair_arrays, stored_pair};

/// Rows per upsert: 7 bound parameters a row, below SQLite's limit of 32,766.
const ROWS_PER_UPSERT: usize = 4_000;

fn as_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Writes `changes` and moves the shard's persisted position to `position`, in one
/// transaction; false (nothing written) when the shard is no longer folded through `position`
/// (another detector took it over).
pub async fn persist(
    db: &DatabaseConnection,
    stream: &str,
    shard: i32,
    position: u64,
    changes: &EngineChanges,
) -> Result<bool, DbErr> {
    let txn = db.begin().await?;
    let fenced = detector_state::Entity::update_many()
        .col_expr(detector_state::Column::PersistedThrough, Expr::value(as_i64(position)))
        .filter(detector_state::Column::Stream.eq(stream))
        .filter(detector_state::Column::Shard.eq(shard))
        .filter(detector_state::Column::FoldedThrough.eq(as_i64(position)))
        .exec(&txn)
        .await?;
    if fenced.rows_affected != 1 {
        txn.rollback().await?;
        return Ok(false);
    }
    if txn.get_database_backend() == DatabaseBackend::Postgres {
        upsert_pairs_unnest(&txn, stream, shard, &changes.pairs).await?;
    } else {
        for batch in changes.pairs.chunks(ROWS_PER_UPSERT) {
            let rows = batch.iter().map(|p| pair_stats::ActiveModel {
                stream: Set(stream.to_owned()),
                merchant: Set(p.merchant.clone()),
                customer: Set(p.customer.clone()),
                shard: Set(shard),
                txn_count: Set(as_i64(p.count)),
                amount_micros: Set(p.amount_micros.to_string()),
                genders: Set(i16::from(p.genders.bits())),
            });
            pair_stats::Entity::insert_many(rows)
                .on_conflict(
                    OnConflict::columns([
                        pair_stats::Column::Stream,
                        pair_stats::Column::Merchant,
                        pair_stats::Column::Customer,
                    ])
                    .update_columns([
                        pair_stats::Column::TxnCount,
                        pair_stats::Column::AmountMicros,
                        pair_stats::Column::Genders,
                    ])
                    .to_owned(),
                )
                .exec_without_returning(&txn)
                .await?;
        }
    }
    for batch in changes.merchants.chunks(ROWS_PER_UPSERT) {
        let rows = batch.iter().map(|m| merchant_stats::ActiveModel {
            stream: Set(stream.to_owned()),
            merchant: Set(m.merchant.clone()),
            shard: Set(shard),
            txn_count: Set(as_i64(m.transactions)),
            customers: Set(as_i64(m.customers)),
            female_customers: Set(as_i64(m.female_customers)),
            male_customers: Set(as_i64(m.male_customers)),
        });
        merchant_stats::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::columns([merchant_stats::Column::Stream, merchant_stats::Column::Merchant])
                    .update_columns([
                        merchant_stats::Column::TxnCount,
                        merchant_stats::Column::Customers,
                        merchant_stats::Column::FemaleCustomers,
                        merchant_stats::Column::MaleCustomers,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
    }
    txn.commit().await?;
    Ok(true)
}

/// PostgreSQL: the changed pairs in one `INSERT … SELECT FROM UNNEST(…) ON CONFLICT DO UPDATE`
/// (one array per column, as [`crate::chunks::insert_pairs`]' UNNEST form): a persist of ~30,000
/// pairs took ~390 ms as multi-row upserts.
async fn upsert_pairs_unnest<C: ConnectionTrait>(
    db: &C,
    stream: &str,
    shard: i32,
    pairs: &[PairAggregate],
) -> Result<(), DbErr> {
    if pairs.is_empty() {
        return Ok(());
    }
    let [merchants, customers, counts, amounts, genders] = pair_arrays(pairs);
    let statement = Statement::from_sql_and_values(
        DatabaseBackend::Postgres,
        format!(
            "INSERT INTO pair_stats (stream, merchant, customer, shard, txn_count, amount_micros, genders) \
             SELECT $1, m, c, $2, n, a, g FROM {PAIR_ARRAYS} \
             ON CONFLICT (stream, merchant, customer) DO UPDATE SET txn_count = EXCLUDED.txn_count, \
             amount_micros = EXCLUDED.amount_micros, genders = EXCLUDED.genders"
        ),
        [stream.into(), shard.into(), merchants, customers, counts, amounts, genders],
    );
    db.execute_raw(statement).await?;
    Ok(())
}

/// Every persisted pair of a shard, as running totals.
pub async fn load_pairs<C: ConnectionTrait>(
    db: &C,
    stream: &str,
    shard: i32,
) -> Result<Vec<PairAggregate>, DbErr> {
    let rows = pair_stats::Entity::find()
        .filter(pair_stats::Column::Stream.eq(stream))
        .filter(pair_stats::Column::Shard.eq(shard))
        .all(db)
        .await?;
    let mut pairs = rows
        .into_iter()
        .map(|row| {
            stored_pair(
                row.merchant,
                row.customer,
                row.txn_count,
                &row.amount_micros,
                row.genders,
                "pair_stats",
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    pairs.sort_unstable();
    Ok(pairs)
}

/// The keys a shard emitted through `chunk`.
pub async fn emitted_through<C: ConnectionTrait>(
    db: &C,
    stream: &str,
    shard: i32,
    chunk: u64,
) -> Result<HashSet<(Pattern, String, String)>, DbErr> {
    let rows = detection::Entity::find()
        .filter(detection::Column::Stream.eq(stream))
        .filter(detection::Column::Shard.eq(shard))
        .filter(detection::Column::ChunkIndex.lte(as_i64(chunk)))
        .all(db)
        .await?;
    rows.into_iter()
        .map(|row| {
            let pattern = Pattern::from_id(&row.pattern)
                .ok_or_else(|| DbErr::Custom(format!("detection: unknown pattern `{}`", row.pattern)))?;
            Ok((pattern, row.customer, row.merchant))
        })
        .collect()
}

/// Deletes the aggregates (encoded, and per-pair rows of chunks committed before the encoding) of
/// chunks more than `retention` chunks behind the persisted position of every shard of the
/// stream (all `shards` of them must have persisted); returns the rows deleted. `retention` 0 keeps everything.
pub async fn prune<C: ConnectionTrait>(
    db: &C,
    stream: &str,
    shards: u32,
    retention: u64,
) -> Result<u64, DbErr> {
    if retention == 0 {
        return Ok(0);
    }
    let states =
        detector_state::Entity::find().filter(detector_state::Column::Stream.eq(stream)).all(db).await?;
    if states.len() != shards as usize {
        return Ok(0);
    }
    let Some(Some(oldest)) = states.iter().map(|s| s.persisted_through).min() else { return Ok(0) };
    let below = oldest.saturating_sub(as_i64(retention));
    if below < 0 {
        return Ok(0);
    }
    let encoded = chunk_aggregate::Entity::delete_many()
        .filter(chunk_aggregate::Column::Stream.eq(stream))
        .filter(chunk_aggregate::Column::ChunkIndex.lte(below))
        .exec(db)
        .await?;
    // Chunks committed before the encoding.
    let pairs = chunk_pair::Entity::delete_many()
        .filter(chunk_pair::Column::Stream.eq(stream))
        .filter(chunk_pair::Column::ChunkIndex.lte(below))
        .exec(db)
        .await?;
    Ok(encoded.rows_affected + pairs.rows_affected)
}
