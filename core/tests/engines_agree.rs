//! Property tests: for random streams, chunkings, importance files and thresholds, the incremental
//! engine's detections equal the reference engine's, and do not depend on how a chunk is split
//! into part files or how chunks are grouped when applied.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::cast_possible_truncation)]

mod common;

use common::*;
use proptest::prelude::*;
use txp_core::aggregate::{ChunkAggregate, ChunkAggregator};
use txp_core::thresholds::{Decimal6, Percent};
use txp_core::{Engine, ImportanceTable, Thresholds};

fn decimal(max_units: u64, max_places: u32) -> impl Strategy<Value = String> {
    (0..=max_units, 0..=max_places, 0u64..1_000_000).prop_map(|(units, places, frac)| {
        if places == 0 {
            units.to_string()
        } else {
            let frac = format!("{frac:06}");
            format!("{units}.{}", &frac[..places as usize])
        }
    })
}

fn transaction() -> impl Strategy<Value = String> {
    let valid = (0..8u8, 0..4u8, prop_oneof![Just("F"), Just("M"), Just("E"), Just("U")], decimal(60, 6))
        .prop_map(|(c, m, g, amount)| row(&format!("C{c}"), &format!("M{m}"), g, &amount));
    let invalid = prop_oneof![
        Just("1,'C1','2','F','28007','M0','28007','es_food',-1,0".to_owned()),
        Just("1,'C1','9','F','28007','M0','28007','es_food',1,0".to_owned()),
        Just(String::new()),
        Just("x,'C1','2','F','28007','M0'".to_owned()),
    ];
    prop_oneof![20 => valid, 1 => invalid]
}

fn importance_rows() -> impl Strategy<Value = Vec<(u8, u8, String)>> {
    // Few distinct weights so that ties at the cut-off are common.
    let weight = prop_oneof![
        Just("1".to_owned()),
        Just("2.5".to_owned()),
        Just("-3".to_owned()),
        Just("0.333333".to_owned()),
        decimal(30, 2)
    ];
    proptest::collection::vec((0..8u8, 0..4u8, weight), 0..40)
}

fn percent() -> impl Strategy<Value = Percent> {
    prop_oneof![
        Just("10".to_owned()),
        Just("50".to_owned()),
        Just("7.5".to_owned()),
        Just("100".to_owned()),
        decimal(99, 2)
    ]
    .prop_map(|text| text.parse().unwrap())
}

fn thresholds() -> impl Strategy<Value = Thresholds> {
    (0..30u64, percent(), percent(), 0..5u64, decimal(40, 3), 0..4u64).prop_map(
        |(min_m, top, bottom, min_c, avg, dei)| Thresholds {
            upgrade_min_merchant_txns: min_m,
            upgrade_top_pct: top,
            upgrade_bottom_pct: bottom,
            child_min_txns: min_c,
            child_max_avg_amount: avg.parse::<Decimal6>().unwrap(),
            dei_min_female_customers: dei,
        },
    )
}

/// Cuts rows into chunks of the given sizes (cycled), each a chunk file.
fn chunked(rows: &[String], sizes: &[usize]) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while start < rows.len() {
        let size = sizes[i % sizes.len()];
        let end = (start + size).min(rows.len());
        chunks.push(chunk_file(&rows[start..end]));
        start = end;
        i += 1;
    }
    chunks
}

fn importance_text(rows: &[(u8, u8, String)]) -> String {
    let owned: Vec<(String, String, String)> =
        rows.iter().map(|(c, m, w)| (format!("C{c}"), format!("M{m}"), w.clone())).collect();
    let borrowed: Vec<(&str, &str, &str)> =
        owned.iter().map(|(c, m, w)| (c.as_str(), m.as_str(), w.as_str())).collect();
    importance(&borrowed)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn incremental_equals_reference(
        rows in proptest::collection::vec(transaction(), 0..160),
        sizes in proptest::collection::vec(1usize..25, 1..6),
        weights in importance_rows(),
        thresholds in thresholds(),
    ) {
        let chunks = chunked(&rows, &sizes);
        let importance = importance_text(&weights);
        let a = incremental(thresholds, &importance, &chunks);
        let b = reference(thresholds, &importance, &chunks);
        prop_assert_eq!(a, b);
    }

    #[test]
    fn parts_and_batches_do_not_change_the_result(
        rows in proptest::collection::vec(transaction(), 0..120),
        sizes in proptest::collection::vec(1usize..25, 1..6),
        split in 1usize..5,
        batch in 1usize..6,
        weights in importance_rows(),
        thresholds in thresholds(),
    ) {
        let importance = importance_text(&weights);
        let chunks = chunked(&rows, &sizes);
        let whole = incremental(thresholds, &importance, &chunks);

        // Each chunk as several part files, applied in batches of `batch` chunks.
        let mut engine = Engine::new(thresholds, ImportanceTable::read(importance.as_bytes()).unwrap());
        let mut start = 0;
        let mut aggregates = Vec::new();
        let mut index = 0u64;
        while start < rows.len() {
            let end = (start + sizes[index as usize % sizes.len()]).min(rows.len());
            let mut aggregator = ChunkAggregator::new(index);
            for (p, part) in rows[start..end].chunks(split).enumerate() {
                aggregator.add_part(&format!("part-{p:05}.csv"), chunk_file(part).as_bytes()).unwrap();
            }
            aggregates.push(aggregator.finish());
            start = end;
            index += 1;
        }
        let mut parted = Vec::new();
        for group in aggregates.chunks(batch) {
            parted.extend(engine.apply_batch(group).unwrap());
        }
        prop_assert_eq!(&whole, &parted);
        let single: Vec<ChunkAggregate> = chunks.iter().enumerate().map(|(i, c)| ChunkAggregate::from_part(i as u64, "p", c.as_bytes()).unwrap()).collect();
        let parted_pairs: Vec<_> = aggregates.iter().map(|a| (a.index, a.valid_rows, a.pairs.clone())).collect();
        let single_pairs: Vec<_> = single.iter().map(|a| (a.index, a.valid_rows, a.pairs.clone())).collect();
        prop_assert_eq!(parted_pairs, single_pairs);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    /// A detector that persists the running statistics (the engine's changes) and restarts
    /// from them after chunk `at`, with the keys emitted so far, goes on exactly as one that
    /// never stopped.
    #[test]
    fn restoring_persisted_statistics_changes_nothing(
        rows in proptest::collection::vec(transaction(), 1..160),
        sizes in proptest::collection::vec(1usize..25, 1..6),
        at in 0usize..10,
        weights in importance_rows(),
        thresholds in thresholds(),
    ) {
        use std::collections::{BTreeMap, HashSet};
        let importance = importance_text(&weights);
        let table = || ImportanceTable::read(importance.as_bytes()).unwrap();
        let chunks: Vec<ChunkAggregate> = chunked(&rows, &sizes)
            .iter()
            .enumerate()
            .map(|(i, c)| ChunkAggregate::from_part(i as u64, "p", c.as_bytes()).unwrap())
            .collect();
        let at = at.min(chunks.len() - 1);
        let whole = incremental(thresholds, &importance, &chunked(&rows, &sizes));

        let mut first = Engine::new(thresholds, table());
        let mut persisted = BTreeMap::new();
        let mut emitted = HashSet::new();
        let mut found = Vec::new();
        for chunk in &chunks[..=at] {
            for d in first.apply(chunk).unwrap() {
                emitted.insert((d.pattern, d.customer.clone(), d.merchant.clone()));
                found.push(d);
            }
            // Persisted after some chunks only: changes accumulate in between.
            if chunk.index % 2 == 0 || chunk.index as usize == at {
                for pair in first.take_changes().pairs {
                    persisted.insert((pair.merchant.clone(), pair.customer.clone()), pair);
                }
            }
        }
        let mut restored =
            Engine::restore(thresholds, table(), persisted.into_values().collect(), &emitted, at as u64).unwrap();
        for chunk in &chunks[at + 1..] {
            found.extend(restored.apply(chunk).unwrap());
        }
        prop_assert_eq!(whole, found);
    }
}

/// The property above is only as good as its inputs: the generated streams must make every
/// pattern fire, with ties, often enough. This runs the same strategies and counts.
#[test]
fn generated_streams_exercise_every_pattern() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    use std::collections::HashMap;

    let mut runner =
        TestRunner::new_with_rng(Config::default(), TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    let strategy = (
        proptest::collection::vec(transaction(), 0..160),
        proptest::collection::vec(1usize..25, 1..6),
        importance_rows(),
        thresholds(),
    );
    let mut cases_with: HashMap<String, usize> = HashMap::new();
    for _ in 0..300 {
        let (rows, sizes, weights, thresholds) = strategy.new_tree(&mut runner).unwrap().current();
        let found = detect(thresholds, &importance_text(&weights), &chunked(&rows, &sizes));
        let mut patterns: Vec<String> = found.into_iter().map(|d| d.1).collect();
        patterns.sort();
        patterns.dedup();
        for p in patterns {
            *cases_with.entry(p).or_default() += 1;
        }
    }
    for pattern in ["UPGRADE", "CHILD", "DEI-NEEDED"] {
        let n = cases_with.get(pattern).copied().unwrap_or(0);
        assert!(n >= 30, "only {n} of 300 generated streams detect {pattern}: {cases_with:?}");
    }
}
