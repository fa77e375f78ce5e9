//! Criterion benchmarks of the pure core (docs/performance.md): parse + validate + aggregate of
//! one 10,000-row chunk, the incremental engine over the full generated dataset, and a chunk
//! aggregate's encoding (encode, decode, decode one shard of 4). Run with `make bench-core` or
//! `cargo bench -p txp-core`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use txp_core::aggregate::ChunkAggregate;
use txp_core::encoding::{decode, decode_shard, encode};
use txp_core::generate::{GenerateOptions, generate};
use txp_core::{Engine, ImportanceTable, Preset};

const CHUNK_ROWS: usize = 10_000;

/// The default dataset (594,643 rows), generated in memory, cut into 10,000-row chunk files.
fn dataset() -> (Vec<Vec<u8>>, Vec<u8>) {
    let (mut transactions, mut importance) = (Vec::new(), Vec::new());
    generate(&mut transactions, &mut importance, &GenerateOptions::default(), &mut |_| {}).unwrap();
    let mut lines = transactions.split_inclusive(|&b| b == b'\n');
    let header = lines.next().unwrap().to_vec();
    let rows: Vec<&[u8]> = lines.collect();
    let chunks = rows
        .chunks(CHUNK_ROWS)
        .map(|rows| {
            let mut chunk = header.clone();
            for row in rows {
                chunk.extend_from_slice(row);
            }
            chunk
        })
        .collect();
    (chunks, importance)
}

fn benches(c: &mut Criterion) {
    let (chunks, importance) = dataset();
    let table = ImportanceTable::read(&importance[..]).unwrap();
    let thresholds = Preset::Banksim.thresholds();

    let mut group = c.benchmark_group("core");
    group.sample_size(20);
    group.bench_function("parse_validate_aggregate_10k_rows", |b| {
        b.iter(|| ChunkAggregate::from_part(30, "part-00000.csv", black_box(&chunks[30])).unwrap());
    });

    let aggregates: Vec<ChunkAggregate> = chunks
        .iter()
        .enumerate()
        .map(|(i, c)| ChunkAggregate::from_part(i as u64, "part-00000.csv", c).unwrap())
        .collect();
    group.sample_size(10);
    group.bench_function("incremental_engine_full_dataset_60_chunks", |b| {
        b.iter_batched(
            || Engine::new(thresholds, table.clone()),
            |mut engine| {
                let mut found = 0;
                for aggregate in &aggregates {
                    found += engine.apply(aggregate).unwrap().len();
                }
                black_box(found)
            },
            BatchSize::LargeInput,
        );
    });
    group.bench_function("parse_aggregate_and_engine_full_dataset", |b| {
        b.iter_batched(
            || Engine::new(thresholds, table.clone()),
            |mut engine| {
                let mut found = 0;
                for (i, chunk) in chunks.iter().enumerate() {
                    let aggregate = ChunkAggregate::from_part(i as u64, "part-00000.csv", chunk).unwrap();
                    found += engine.apply(&aggregate).unwrap().len();
                }
                black_box(found)
            },
            BatchSize::LargeInput,
        );
    });
    group.bench_function("load_importance_full_dataset", |b| {
        b.iter(|| ImportanceTable::read(black_box(&importance[..])).unwrap());
    });

    // Chunk 30's aggregate (~6,600 pairs, ~48 merchants) as one value (docs/performance.md).
    group.sample_size(50);
    let aggregate = &aggregates[30];
    group.bench_function("encode_chunk_aggregate_10k_rows", |b| {
        b.iter(|| encode(aggregate.valid_rows, black_box(&aggregate.pairs)).unwrap());
    });
    let bytes = encode(aggregate.valid_rows, &aggregate.pairs).unwrap();
    group.bench_function("decode_chunk_aggregate_10k_rows", |b| {
        b.iter(|| decode(black_box(&bytes)).unwrap());
    });
    // The shards are uneven (two merchants hold a third of the pairs): each of the 4 in turn.
    for shard in 0..4 {
        group.bench_function(format!("decode_chunk_aggregate_10k_rows_shard_{shard}_of_4"), |b| {
            b.iter(|| decode_shard(black_box(&bytes), shard, 4).unwrap());
        });
    }
    group.finish();
}

criterion_group!(core, benches);
criterion_main!(core);
