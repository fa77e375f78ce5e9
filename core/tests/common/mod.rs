//! Shared by the core's integration tests: run both engines over chunks given as CSV text.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation
)]

use txp_core::aggregate::ChunkAggregate;
use txp_core::contract::{OnWrongHeader, TRANSACTIONS_HEADER, read_transactions};
use txp_core::reference::ReferenceRow;
use txp_core::{Detection, Engine, ImportanceTable, ReferenceEngine, Thresholds};

pub const IMPORTANCE_HEADER: &str = "Source,Target,Weight,typeTrans,fraud";

/// A chunk file: the header and these rows.
pub fn chunk_file(rows: &[String]) -> String {
    let mut text = format!("{TRANSACTIONS_HEADER}\n");
    for row in rows {
        text.push_str(row);
        text.push('\n');
    }
    text
}

/// A transactions row in BankSim's quoting.
pub fn row(customer: &str, merchant: &str, gender: &str, amount: &str) -> String {
    format!("1,'{customer}','2','{gender}','28007','{merchant}','28007','es_food',{amount},0")
}

/// An importance file with these (customer, merchant, weight) rows.
pub fn importance(rows: &[(&str, &str, &str)]) -> String {
    let mut text = format!("{IMPORTANCE_HEADER}\n");
    for (c, m, w) in rows {
        text.push_str(&format!("'{c}','{m}',{w},'es_food',0\n"));
    }
    text
}

/// Detections of the incremental engine, chunk files applied in order (index = position).
pub fn incremental(thresholds: Thresholds, importance: &str, chunks: &[String]) -> Vec<Detection> {
    let table = ImportanceTable::read(importance.as_bytes()).unwrap();
    let mut engine = Engine::new(thresholds, table);
    let mut out = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let aggregate = ChunkAggregate::from_part(i as u64, "part-00000.csv", chunk.as_bytes()).unwrap();
        out.extend(engine.apply(&aggregate).unwrap());
    }
    out
}

/// Detections of the reference engine.
pub fn reference(thresholds: Thresholds, importance: &str, chunks: &[String]) -> Vec<Detection> {
    let mut engine = ReferenceEngine::new(thresholds, importance.as_bytes()).unwrap();
    let mut out = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let mut rows = Vec::new();
        read_transactions(chunk.as_bytes(), OnWrongHeader::RejectAll, |r| {
            if let Ok(r) = r {
                rows.push(ReferenceRow::from_transaction(&r));
            }
        })
        .unwrap();
        out.extend(engine.apply(i as u64, rows).unwrap());
    }
    out
}

/// Both engines' detections, asserted equal, as (chunk, action, customer, merchant) tuples.
pub fn detect(
    thresholds: Thresholds,
    importance: &str,
    chunks: &[String],
) -> Vec<(u64, String, String, String)> {
    let a = incremental(thresholds, importance, chunks);
    let b = reference(thresholds, importance, chunks);
    assert_eq!(a, b, "the incremental and reference engines disagree");
    a.into_iter().map(|d| (d.chunk, d.pattern.action_type().to_owned(), d.customer, d.merchant)).collect()
}
