//! Hand-written cases for each boundary of docs/patterns.md, run through both engines (which
//! must agree) and checked against the answer worked out by hand.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::cast_possible_truncation)]

mod common;

use common::*;
use txp_core::Thresholds;
use txp_core::thresholds::{Decimal6, Percent, Preset};

fn seed() -> Thresholds {
    Preset::Seed.thresholds()
}

/// Thresholds where only UPGRADE can fire (CHILD and DEI-NEEDED out of reach).
fn upgrade_only(min_merchant_txns: u64, top: &str, bottom: &str) -> Thresholds {
    Thresholds {
        upgrade_min_merchant_txns: min_merchant_txns,
        upgrade_top_pct: top.parse::<Percent>().unwrap(),
        upgrade_bottom_pct: bottom.parse::<Percent>().unwrap(),
        child_min_txns: u64::MAX,
        child_max_avg_amount: Decimal6::from_units(0),
        dei_min_female_customers: u64::MAX,
    }
}

fn rows_of(customer: &str, merchant: &str, n: usize, amount: &str) -> Vec<String> {
    (0..n).map(|_| row(customer, merchant, "F", amount)).collect()
}

fn d(chunk: u64, action: &str, customer: &str, merchant: &str) -> (u64, String, String, String) {
    (chunk, action.to_owned(), customer.to_owned(), merchant.to_owned())
}

/// Ten customers of M1 with counts 1..=10 (customer Ci has i rows), weights wi = i.
fn ten_customers() -> (Vec<String>, Vec<(String, String, String)>) {
    let mut rows = Vec::new();
    let mut weights = Vec::new();
    for i in 1..=10 {
        rows.extend(rows_of(&format!("C{i}"), "M1", i, "1"));
        weights.push((format!("C{i}"), "M1".to_owned(), i.to_string()));
    }
    (rows, weights)
}

fn imp(weights: &[(String, String, String)]) -> String {
    let borrowed: Vec<(&str, &str, &str)> =
        weights.iter().map(|(c, m, w)| (c.as_str(), m.as_str(), w.as_str())).collect();
    importance(&borrowed)
}

#[test]
fn upgrade_needs_top_count_and_bottom_weight() {
    let (rows, mut weights) = ten_customers();
    // C10 has the top count (k = 1) but the highest weight: no UPGRADE yet.
    assert!(detect(upgrade_only(0, "10", "10"), &imp(&weights), &[chunk_file(&rows)]).is_empty());
    // Give C10 the lowest mean weight instead.
    weights[9].2 = "0.5".to_owned();
    assert_eq!(
        detect(upgrade_only(0, "10", "10"), &imp(&weights), &[chunk_file(&rows)]),
        vec![d(0, "UPGRADE", "C10", "M1")]
    );
}

#[test]
fn ties_at_the_count_cutoff_all_qualify() {
    let (mut rows, mut weights) = ten_customers();
    // C9 reaches C10's count: both are at the cut-off (k = 1, value 10), and both have the
    // lowest weight (j = 1, ties included).
    rows.extend(rows_of("C9", "M1", 1, "1"));
    weights[8].2 = "0".to_owned();
    weights[9].2 = "0".to_owned();
    assert_eq!(
        detect(upgrade_only(0, "10", "10"), &imp(&weights), &[chunk_file(&rows)]),
        vec![d(0, "UPGRADE", "C10", "M1"), d(0, "UPGRADE", "C9", "M1")]
    );
}

#[test]
fn ties_at_the_weight_cutoff_all_qualify() {
    let (rows, mut weights) = ten_customers();
    // 100% by count: everybody is in the top; bottom 10% of 10 weights is j = 1, value 1, and
    // C5's mean (2 + 0)/2 = 1 ties with it: C1 and C5 qualify.
    weights[4].2 = "2".to_owned();
    weights.push(("C5".to_owned(), "M1".to_owned(), "0".to_owned()));
    assert_eq!(
        detect(upgrade_only(0, "100", "10"), &imp(&weights), &[chunk_file(&rows)]),
        vec![d(0, "UPGRADE", "C1", "M1"), d(0, "UPGRADE", "C5", "M1")]
    );
}

#[test]
fn fractional_percentages_are_exact() {
    let (rows, weights) = ten_customers();
    // 7.5% of 10 is 0.75: k = 1 (only C10), and 70% of 10 is exactly 7 (C4..C10), not 8.
    let by_count = |top: &str| {
        detect(upgrade_only(0, top, "100"), &imp(&weights), &[chunk_file(&rows)])
            .into_iter()
            .map(|d| d.2)
            .collect::<Vec<_>>()
    };
    assert_eq!(by_count("7.5"), vec!["C10"]);
    assert_eq!(by_count("70").len(), 7);
    assert_eq!(by_count("70.000001").len(), 8);
}

#[test]
fn merchant_exactly_at_min_merchant_txns_is_not_enough() {
    let (rows, mut weights) = ten_customers();
    weights[9].2 = "0".to_owned();
    // The ten customers have 55 rows in all.
    assert!(detect(upgrade_only(55, "10", "10"), &imp(&weights), &[chunk_file(&rows)]).is_empty());
    assert_eq!(detect(upgrade_only(54, "10", "10"), &imp(&weights), &[chunk_file(&rows)]).len(), 1);
    // It fires in the chunk that takes N(m) past the minimum, for a customer the chunk did not touch.
    let chunks = [chunk_file(&rows), chunk_file(&rows_of("C1", "M1", 1, "1"))];
    assert_eq!(
        detect(upgrade_only(55, "10", "10"), &imp(&weights), &chunks),
        vec![d(1, "UPGRADE", "C10", "M1")]
    );
}

#[test]
fn pairs_without_weight_are_never_upgrade_and_do_not_count_for_j() {
    let (rows, mut weights) = ten_customers();
    // Only C10 and C1 have weights: j = 1 of 2 weighted customers; C10 has the top count and
    // the lowest of the two means.
    weights.retain(|w| w.0 == "C10" || w.0 == "C1");
    weights[1].2 = "0.1".to_owned();
    assert_eq!(
        detect(upgrade_only(0, "10", "10"), &imp(&weights), &[chunk_file(&rows)]),
        vec![d(0, "UPGRADE", "C10", "M1")]
    );
    // With no weight at all at the merchant, nobody is an UPGRADE.
    assert!(detect(upgrade_only(0, "100", "100"), &imp(&[]), &[chunk_file(&rows)]).is_empty());
}

#[test]
fn child_average_exactly_at_the_limit_is_not_child() {
    // seed: more than 2 transactions and an average strictly below 800.
    let at_limit = rows_of("C1", "M1", 3, "800.00");
    assert!(detect(seed(), &imp(&[]), &[chunk_file(&at_limit)]).is_empty());
    let mut just_below = rows_of("C1", "M1", 2, "800");
    just_below.push(row("C1", "M1", "F", "799.999999"));
    assert_eq!(detect(seed(), &imp(&[]), &[chunk_file(&just_below)]), vec![d(0, "CHILD", "C1", "M1")]);
}

#[test]
fn child_needs_more_than_min_txns() {
    let two = rows_of("C1", "M1", 2, "1");
    assert!(detect(seed(), &imp(&[]), &[chunk_file(&two)]).is_empty());
    let chunks = [chunk_file(&two), chunk_file(&rows_of("C1", "M1", 1, "1"))];
    assert_eq!(detect(seed(), &imp(&[]), &chunks), vec![d(1, "CHILD", "C1", "M1")]);
}

#[test]
fn a_condition_that_holds_stops_and_holds_again_is_emitted_once() {
    let chunks = [
        chunk_file(&rows_of("C1", "M1", 3, "10")),   // average 10: CHILD
        chunk_file(&rows_of("C1", "M1", 3, "5000")), // average 2505: not
        chunk_file(&rows_of("C1", "M1", 30, "1")),   // average below 800 again
    ];
    assert_eq!(detect(seed(), &imp(&[]), &chunks), vec![d(0, "CHILD", "C1", "M1")]);

    // DEI-NEEDED: 11 F and 12 M customers; then 2 more F (F > M); then 3 more M.
    let customers = |prefix: &str, gender: &str, range: std::ops::Range<u32>| -> Vec<String> {
        range.map(|i| row(&format!("{prefix}{i}"), "M9", gender, "5000")).collect()
    };
    let chunks = [
        chunk_file(&[customers("F", "F", 0..11), customers("M", "M", 0..12)].concat()),
        chunk_file(&customers("F", "F", 11..13)),
        chunk_file(&customers("M", "M", 12..15)),
    ];
    assert_eq!(detect(seed(), &imp(&[]), &chunks), vec![d(0, "DEI-NEEDED", "", "M9")]);
}

#[test]
fn dei_needs_more_than_min_female_and_fewer_female_than_male() {
    let customers = |prefix: &str, gender: &str, n: u32| -> Vec<String> {
        (0..n).map(|i| row(&format!("{prefix}{i}"), "M9", gender, "5000")).collect()
    };
    // Exactly 10 female customers (seed minimum): not enough.
    let ten = chunk_file(&[customers("F", "F", 10), customers("M", "M", 20)].concat());
    assert!(detect(seed(), &imp(&[]), &[ten]).is_empty());
    // 11 F and 11 M: F < M fails.
    let equal = chunk_file(&[customers("F", "F", 11), customers("M", "M", 11)].concat());
    assert!(detect(seed(), &imp(&[]), &[equal]).is_empty());
    // Repeat rows of one customer count once.
    let repeats =
        chunk_file(&[customers("F", "F", 11), customers("M", "M", 11), customers("M", "M", 11)].concat());
    assert!(detect(seed(), &imp(&[]), &[repeats]).is_empty());
}

#[test]
fn a_customer_with_both_genders_counts_in_both() {
    let mut rows: Vec<String> = (0..11).map(|i| row(&format!("F{i}"), "M9", "F", "5000")).collect();
    rows.extend((0..11).map(|i| row(&format!("M{i}"), "M9", "M", "5000")));
    // 11 F and 11 M: no. X appears as F and as M: 12 F and 12 M, still no; one more M: yes.
    rows.push(row("X", "M9", "F", "5000"));
    rows.push(row("X", "M9", "M", "5000"));
    assert!(detect(seed(), &imp(&[]), &[chunk_file(&rows)]).is_empty());
    rows.push(row("Y", "M9", "M", "5000"));
    assert_eq!(detect(seed(), &imp(&[]), &[chunk_file(&rows)]), vec![d(0, "DEI-NEEDED", "", "M9")]);
    // E and U count in neither.
    let mut others: Vec<String> = (0..11).map(|i| row(&format!("F{i}"), "M8", "F", "5000")).collect();
    others.extend((0..20).map(|i| row(&format!("E{i}"), "M8", if i % 2 == 0 { "E" } else { "U" }, "5000")));
    assert!(detect(seed(), &imp(&[]), &[chunk_file(&others)]).is_empty());
}

#[test]
fn invalid_rows_take_no_part_in_any_statistic() {
    let mut rows = rows_of("C1", "M1", 2, "1");
    rows.push("1,'C1','2','F','28007','M1','28007','es_food',1.0000001,0".to_owned());
    rows.push("1,'C1','7','F','28007','M1','28007','es_food',1,0".to_owned());
    assert!(detect(seed(), &imp(&[]), &[chunk_file(&rows)]).is_empty());
}

#[test]
fn figures_name_the_counts_sums_and_cutoffs_that_made_a_detection() {
    use txp_core::{ChunkAggregate, Engine, ImportanceTable};
    let (mut rows, mut weights) = ten_customers();
    weights[9].2 = "0.5".to_owned();
    // C1 of M2: four rows averaging below the CHILD limit (M1's average is at it: not CHILD).
    rows.extend(rows_of("C1", "M2", 4, "0.25"));
    let thresholds = Thresholds {
        child_min_txns: 3,
        child_max_avg_amount: Decimal6::from_units(1),
        ..upgrade_only(0, "10", "10")
    };
    let mut engine = Engine::new(thresholds, ImportanceTable::read(imp(&weights).as_bytes()).unwrap());
    let chunk =
        ChunkAggregate::from_part(0, "chunk_0.csv/part-00000.csv", chunk_file(&rows).as_bytes()).unwrap();
    let found = engine.apply(&chunk).unwrap();
    let actions: Vec<(&str, &str, &str)> =
        found.iter().map(|d| (d.pattern.action_type(), d.customer.as_str(), d.merchant.as_str())).collect();
    assert_eq!(actions, [("UPGRADE", "C10", "M1"), ("CHILD", "C1", "M2")]);
    let upgrade = engine.figures(&found[0]).unwrap();
    assert_eq!((upgrade.pair_txns, upgrade.merchant_txns, upgrade.merchant_customers), (Some(10), 55, 10));
    assert_eq!((upgrade.k, upgrade.count_cutoff, upgrade.j), (Some(1), Some(10), Some(1)));
    assert_eq!(upgrade.weight_cutoff, Some(("0.5".to_owned(), 1)));
    assert_eq!(upgrade.pair_weight, Some(("0.5".to_owned(), 1)));
    let child = engine.figures(&found[1]).unwrap();
    assert_eq!((child.pair_txns, child.pair_amount.as_deref()), (Some(4), Some("1")));
    assert_eq!((child.k, child.merchant_txns), (None, 4));
    let json = serde_json::to_string(&child).unwrap();
    assert_eq!(serde_json::from_str::<txp_core::engine::Figures>(&json).unwrap(), child);
}
