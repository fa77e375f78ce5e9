//! The data contract of docs/patterns.md §1: every rejection reason with its line and column, a
//! wrong header, a byte-order mark, CRLF line endings, quoted fields, empty lines, non-UTF-8.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::cast_possible_truncation)]

use txp_core::aggregate::ChunkAggregate;
use txp_core::contract::{ContractError, OnWrongHeader, Rejection, TRANSACTIONS_HEADER, read_transactions};
use txp_core::importance::ImportanceTable;

const GOOD: &str = "0,'C1','2','F','28007','M1','28007','es_food',26.9,0";

/// A valid row as (line, customer, amount in micro-units), or its rejection.
type Outcome = Result<(u64, String, u128), Rejection>;

/// Every outcome of a transactions file.
fn read(text: &[u8]) -> Result<Vec<Outcome>, ContractError> {
    let mut out = Vec::new();
    read_transactions(text, OnWrongHeader::Fail, |row| {
        out.push(row.map(|r| (r.line, r.customer.to_owned(), r.amount_micros)));
    })?;
    Ok(out)
}

fn rejection(line: &str) -> Rejection {
    let text = format!("{TRANSACTIONS_HEADER}\n{GOOD}\n{line}\n");
    let rows = read(text.as_bytes()).unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows[0].is_ok());
    rows[1].clone().unwrap_err()
}

#[test]
fn every_rejection_reason_with_line_and_column() {
    let cases: [(&str, Option<&str>, &str); 12] = [
        ("0,'C1','2','F','28007','M1','28007','es_food',1", None, "expected 10 fields, found 9"),
        ("0,\"C,1\",'2','F','28007','M1','28007','es_food',1,0", None, "expected 10 fields, found 11"),
        (
            "-1,'C1','2','F','28007','M1','28007','es_food',1,0",
            Some("step"),
            "not a non-negative integer of at most 18 digits: '-1'",
        ),
        (
            "1234567890123456789,'C1','2','F','28007','M1','28007','es_food',1,0",
            Some("step"),
            "not a non-negative integer of at most 18 digits: '1234567890123456789'",
        ),
        ("0,'','2','F','28007','M1','28007','es_food',1,0", Some("customer"), "empty"),
        (
            "0,'C1','7','F','28007','M1','28007','es_food',1,0",
            Some("age"),
            "not one of 0, 1, 2, 3, 4, 5, 6, U: '7'",
        ),
        ("0,'C1','2',' F','28007','M1','28007','es_food',1,0", Some("gender"), "not one of F, M, E, U: ' F'"),
        ("0,'C1','2','F','28007',,'28007','es_food',1,0", Some("merchant"), "empty"),
        (
            "0,'C1','2','F','28007','M1','28007','es_food',1e3,0",
            Some("amount"),
            "not a non-negative decimal with at most 15 digits before the point and 6 after: '1e3'",
        ),
        (
            "0,'C1','2','F','28007','M1','28007','es_food',1.1234567,0",
            Some("amount"),
            "not a non-negative decimal with at most 15 digits before the point and 6 after: '1.1234567'",
        ),
        (
            "0,'C1','2','F','28007','M1','28007','es_food',1234567890123456,0",
            Some("amount"),
            "not a non-negative decimal with at most 15 digits before the point and 6 after: '1234567890123456'",
        ),
        (
            "0,'C1','2','F','28007','M1','28007','es_food',-5,0",
            Some("amount"),
            "not a non-negative decimal with at most 15 digits before the point and 6 after: '-5'",
        ),
    ];
    for (line, column, reason) in cases {
        let r = rejection(line);
        assert_eq!(r.line, 3, "{line}");
        assert_eq!(r.column, column, "{line}");
        assert_eq!(r.reason, reason, "{line}");
        assert_eq!(r.raw, line.as_bytes(), "the line as read");
    }
}

#[test]
fn the_first_failing_rule_is_the_reason() {
    // Both age and amount are wrong: age is checked first.
    let r = rejection("0,'C1','9','F','28007','M1','28007','es_food',x,0");
    assert_eq!(r.column, Some("age"));
}

#[test]
fn non_utf8_is_rejected_with_its_column_and_kept_as_read() {
    let mut text = format!("{TRANSACTIONS_HEADER}\n").into_bytes();
    let line = b"0,'C\xff1','2','F','28007','M1','28007','es_food',1,0".to_vec();
    text.extend_from_slice(&line);
    text.push(b'\n');
    let rows = read(&text).unwrap();
    let r = rows[0].clone().unwrap_err();
    assert_eq!((r.line, r.column, r.reason.as_str()), (2, Some("customer"), "not valid UTF-8"));
    assert_eq!(r.raw, line);
}

#[test]
fn empty_lines_are_rejected_rows_with_their_numbers() {
    let text = format!("{TRANSACTIONS_HEADER}\n\n{GOOD}\n\r\n\n{GOOD}\n\n");
    let rows = read(text.as_bytes()).unwrap();
    let lines: Vec<(u64, bool)> = rows
        .iter()
        .map(|r| match r {
            Ok(ok) => (ok.0, true),
            Err(e) => (e.line, false),
        })
        .collect();
    assert_eq!(lines, vec![(2, false), (3, true), (4, false), (5, false), (6, true), (7, false)]);
    let empty = rows[0].clone().unwrap_err();
    assert_eq!(
        (empty.column, empty.reason.as_str(), empty.raw.len()),
        (None, "expected 10 fields, found 1", 0)
    );
}

#[test]
fn crlf_bom_and_quotes() {
    let text = format!(
        "\u{feff}{TRANSACTIONS_HEADER}\r\n{GOOD}\r\n0,\"C2\",\"2\",\"M\",'28007',\"M1\",'28007','es_food',\"1.5\",0\r\n0,'C3,'2','F','28007','M1','28007','es_food',1,0"
    );
    let rows = read(text.as_bytes()).unwrap();
    assert_eq!(rows[0], Ok((2, "C1".to_owned(), 26_900_000)));
    assert_eq!(rows[1], Ok((3, "C2".to_owned(), 1_500_000)));
    // `'C3` has no closing quote: it keeps its quote (only a matching pair is stripped), and the
    // last line, with no line ending at all, is still read.
    assert_eq!(rows[2], Ok((4, "'C3".to_owned(), 1_000_000)));
    // A quoted header is a header too; a lone quote character is a one-character value.
    let quoted = format!(
        "{}\n0,''',\"2\",'M','28007','M1','28007','es_food',1,0\n",
        TRANSACTIONS_HEADER.split(',').map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(",")
    );
    assert_eq!(read(quoted.as_bytes()).unwrap()[0], Ok((2, "'".to_owned(), 1_000_000)));
}

#[test]
fn a_wrong_header_fails_a_source_and_rejects_every_line_of_a_chunk() {
    let text = format!("step,customer,age\n{GOOD}\n");
    let err = read(text.as_bytes()).unwrap_err();
    let message = err.to_string();
    assert!(message.contains(TRANSACTIONS_HEADER), "{message}");
    assert!(message.contains("found `step,customer,age`"), "{message}");
    assert!(read(b"").unwrap_err().to_string().contains("the file is empty"));

    let chunk = ChunkAggregate::from_part(4, "part-00000.csv", text.as_bytes()).unwrap();
    assert_eq!(chunk.valid_rows, 0);
    let rejected: Vec<(u64, &str)> =
        chunk.rejected.iter().map(|q| (q.rejection.line, q.rejection.reason.as_str())).collect();
    assert_eq!(rejected.len(), 2);
    assert_eq!(rejected[0].0, 1);
    assert!(rejected.iter().all(|r| { r.1.starts_with("wrong file header, expected step,customer,") }));
    // A chunk of only a header has no rows and no rejections; an empty chunk file neither.
    let only_header =
        ChunkAggregate::from_part(0, "p", format!("{TRANSACTIONS_HEADER}\n").as_bytes()).unwrap();
    assert_eq!((only_header.valid_rows, only_header.rejected.len()), (0, 0));
    let empty = ChunkAggregate::from_part(0, "p", b"").unwrap();
    assert_eq!((empty.valid_rows, empty.rejected.len()), (0, 0));
}

#[test]
fn chunk_aggregates_are_exact() {
    let text = format!(
        "{TRANSACTIONS_HEADER}\n{GOOD}\n{}\n{}\n",
        GOOD.replace("26.9", "0.000001"),
        GOOD.replace("'F'", "'M'").replace("26.9", "999999999999999.999999")
    );
    let chunk = ChunkAggregate::from_part(7, "p", text.as_bytes()).unwrap();
    assert_eq!(chunk.index, 7);
    assert_eq!(chunk.valid_rows, 3);
    assert_eq!(chunk.pairs.len(), 1);
    let pair = &chunk.pairs[0];
    assert_eq!((pair.merchant.as_str(), pair.customer.as_str(), pair.count), ("M1", "C1", 3));
    assert_eq!(pair.amount_micros, 26_900_000 + 1 + 999_999_999_999_999_999_999);
    assert_eq!(pair.genders.bits(), 0b11);
}

#[test]
fn importance_rows_are_checked_and_summed_per_pair() {
    let text = "Source,Target,Weight,typeTrans,fraud\n'C1','M1',2.5,'es_food',0\n'C1','M1',-0.5,'es_food',0\n'','M1',1,'x',0\n'C2','M1',1e2,'x',0\n'C2','M1',1,'x'\n";
    let table = ImportanceTable::read(text.as_bytes()).unwrap();
    let w = table.merchant("M1").unwrap().get("C1").unwrap();
    assert_eq!((w.sum_micros, w.count), (2_000_000, 2));
    let reasons: Vec<(u64, Option<&str>, &str)> =
        table.rejected().iter().map(|r| (r.line, r.column, r.reason.as_str())).collect();
    assert_eq!(
        reasons,
        vec![
            (4, Some("Source"), "empty"),
            (5, Some("Weight"), "not a decimal with at most 15 digits before the point and 6 after: '1e2'"),
            (6, None, "expected 5 fields, found 4"),
        ]
    );
    assert!(
        ImportanceTable::read(&b"a,b\n"[..])
            .unwrap_err()
            .to_string()
            .contains("Source,Target,Weight,typeTrans,fraud")
    );
}
