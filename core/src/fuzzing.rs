//! What the parsers and decoders promise on any input, checked in one place: the fuzz targets
//! (`fuzz/`, run with `make fuzz`) and the replay of their corpus in the tests
//! (`core/tests/fuzz_corpus.rs`) call these same functions. docs/fuzzing.md describes both.
//!
//! Each check parses its input through the public entry a caller uses and compares the outcome
//! with what an independent, deliberately naive reading of the same bytes expects. A check never
//! panics on its own: a broken invariant comes back as `Err` with a description, and the caller
//! (a fuzz target, a test) turns it into a failure. A panic inside a parser is a failure too.

use std::collections::BTreeMap;
use std::io::BufReader;

use crate::aggregate::{ChunkAggregate, ChunkAggregator, Genders, PairAggregate};
use crate::contract::{
    IMPORTANCE_COLUMNS, MAX_LINE_BYTES, OnWrongHeader, Rejection, TRANSACTION_COLUMNS, WRONG_HEADER_REASON,
    read_importance, read_transactions, too_long_reason, unquote,
};
use crate::encoding::{DecodedChunk, decode, decode_shard, encode};
use crate::importance::ImportanceTable;
use crate::message::{ChunkMessage, MESSAGE_VERSION, MessageError};

/// A broken invariant, described.
pub type Violation = String;

macro_rules! ensure {
    ($condition:expr, $($message:tt)+) => {
        if !$condition {
            return Err(format!($($message)+));
        }
    };
}

/// The part name the chunk check gives its input.
const PART: &str = "part-00000.csv";

/// The physical lines of a file, without their endings, split independently of the contract's
/// reader: on every `\n`, a `\r` just before a `\n` belonging to the ending, and a final `\n`
/// ending the last line rather than starting an empty one.
pub fn physical_lines(data: &[u8]) -> Vec<&[u8]> {
    let mut lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    if data.is_empty() || data.ends_with(b"\n") {
        lines.pop();
    }
    let ended = if data.ends_with(b"\n") { lines.len() } else { lines.len().saturating_sub(1) };
    for line in lines.iter_mut().take(ended) {
        if let Some(rest) = line.strip_suffix(b"\r") {
            *line = rest;
        }
    }
    lines
}

/// Whether a first line is the header, by the contract's rules written out naively: a leading
/// byte-order mark is ignored, fields are split on every comma and a matching pair of quotes is
/// stripped.
fn naive_is_header(line: &[u8], columns: &[&str]) -> bool {
    let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
    let fields: Vec<&[u8]> = line.split(|&b| b == b',').map(unquote).collect();
    fields.len() == columns.len() && fields.iter().zip(columns).all(|(f, c)| *f == c.as_bytes())
}

fn field_count(line: &[u8]) -> usize {
    line.iter().filter(|&&b| b == b',').count() + 1
}

/// What a rejection must be, given the physical line it names. `header_ok` says whether the
/// file's first line is its header; `columns` are the file's columns.
fn check_rejection(
    rejection: &Rejection,
    lines: &[&[u8]],
    header_ok: bool,
    columns: &[&str],
) -> Result<(), Violation> {
    let line = rejection.line;
    let index = usize::try_from(line).ok().and_then(|l| l.checked_sub(1));
    let Some(content) = index.and_then(|i| lines.get(i)) else {
        return Err(format!("rejection of line {line}, but the file has {} lines", lines.len()));
    };
    ensure!(
        rejection.raw.len() <= MAX_LINE_BYTES,
        "line {line}: the rejection keeps {} bytes, more than {MAX_LINE_BYTES}",
        rejection.raw.len()
    );
    let kept = content.get(..MAX_LINE_BYTES).unwrap_or(content);
    ensure!(rejection.raw == kept, "line {line}: the rejection's raw text is not the line as read");
    ensure!(!rejection.reason.is_empty(), "line {line}: empty reason");
    if !header_ok {
        ensure!(
            rejection.reason == WRONG_HEADER_REASON && rejection.column.is_none(),
            "line {line} of a file with a wrong header rejected for `{}`",
            rejection.reason
        );
        return Ok(());
    }
    ensure!(line >= 2, "the header line was rejected for `{}`", rejection.reason);
    if content.len() > MAX_LINE_BYTES {
        ensure!(
            rejection.reason == too_long_reason(content.len() as u64) && rejection.column.is_none(),
            "line {line} of {} bytes rejected for `{}`",
            content.len(),
            rejection.reason
        );
        return Ok(());
    }
    ensure!(
        !rejection.reason.starts_with("line longer than"),
        "line {line} of {} bytes rejected as too long",
        content.len()
    );
    let fields = field_count(content);
    if fields != columns.len() {
        let expected = format!("expected {} fields, found {fields}", columns.len());
        ensure!(
            rejection.reason == expected && rejection.column.is_none(),
            "line {line}: `{}` instead of `{expected}`",
            rejection.reason
        );
    } else {
        ensure!(
            rejection.column.is_some_and(|c| columns.contains(&c)),
            "line {line} has {fields} fields but its rejection names no column: `{}`",
            rejection.reason
        );
    }
    Ok(())
}

/// Checks that a file's outcomes cover its lines exactly once, in order: every line but the
/// header when the header is right, every line when it is wrong.
fn check_numbering(numbers: &[u64], line_count: usize, header_ok: bool) -> Result<(), Violation> {
    let first: u64 = if header_ok { 2 } else { 1 };
    let expected = (line_count as u64 + 1).saturating_sub(first);
    ensure!(
        numbers.len() as u64 == expected,
        "{} rows accepted or rejected, but the file has {line_count} lines (header {})",
        numbers.len(),
        if header_ok { "right" } else { "wrong" }
    );
    for (number, expected) in numbers.iter().zip(first..) {
        ensure!(*number == expected, "row numbered {number} where line {expected} was expected");
    }
    Ok(())
}

/// One pair's figures, recomputed from the valid rows.
type Expected = BTreeMap<(String, String), (u64, u128, Genders)>;

/// The chunk parser, through [`ChunkAggregator::add_part`] (what a consumer calls): never fails
/// on bytes in memory; every line is one accepted or rejected row with its own number (the
/// header excluded when it is right); a rejection's reason matches the line and keeps at most
/// [`MAX_LINE_BYTES`] of it; the pairs are exactly the sums of the valid rows; and reading the
/// same bytes through a small buffer gives the same aggregate.
pub fn check_chunk(data: &[u8]) -> Result<(), Violation> {
    let lines = physical_lines(data);
    let header_ok = lines.first().is_some_and(|first| naive_is_header(first, &TRANSACTION_COLUMNS));

    let mut aggregator = ChunkAggregator::new(0);
    aggregator.add_part(PART, data).map_err(|e| format!("reading a chunk from memory failed: {e}"))?;
    let chunk = aggregator.finish();

    // Lines that span fills of the reader's buffer take the slow path.
    let mut small = ChunkAggregator::new(0);
    let capacity = 1 + data.len() % 61;
    small
        .add_part(PART, BufReader::with_capacity(capacity, data))
        .map_err(|e| format!("reading a chunk through a buffer failed: {e}"))?;
    ensure!(small.finish() == chunk, "a buffer of {capacity} bytes gives another aggregate");

    // Row by row, through the contract's reader.
    let mut numbers = Vec::new();
    let mut expected = Expected::new();
    let mut problem: Option<Violation> = None;
    read_transactions(data, OnWrongHeader::RejectAll, |row| {
        let outcome = match row {
            Ok(t) => {
                numbers.push(t.line);
                let pair = expected.entry((t.merchant.to_owned(), t.customer.to_owned())).or_default();
                pair.0 += 1;
                pair.1 = pair.1.saturating_add(t.amount_micros);
                pair.2.insert(t.gender);
                check_valid_row(&lines, t.line, t.customer, t.merchant, t.amount, t.amount_micros)
            }
            Err(rejection) => {
                numbers.push(rejection.line);
                Ok(())
            }
        };
        if let (None, Err(e)) = (&problem, outcome) {
            problem = Some(e);
        }
    })
    .map_err(|e| format!("reading a chunk's rows failed: {e}"))?;
    if let Some(problem) = problem {
        return Err(problem);
    }
    check_numbering(&numbers, lines.len(), header_ok)?;
    check_chunk_aggregate(&chunk, &expected, &lines, header_ok)
}

fn check_valid_row(
    lines: &[&[u8]],
    line: u64,
    customer: &str,
    merchant: &str,
    amount: &str,
    amount_micros: u128,
) -> Result<(), Violation> {
    let content = usize::try_from(line).ok().and_then(|l| l.checked_sub(1)).and_then(|i| lines.get(i));
    let Some(content) = content else {
        return Err(format!("valid row on line {line}, but the file has {} lines", lines.len()));
    };
    ensure!(line >= 2, "the header was accepted as a row");
    ensure!(content.len() <= MAX_LINE_BYTES, "line {line} of {} bytes accepted", content.len());
    ensure!(std::str::from_utf8(content).is_ok(), "line {line} is not UTF-8 but was accepted");
    ensure!(
        field_count(content) == TRANSACTION_COLUMNS.len(),
        "line {line} with {} fields accepted",
        field_count(content)
    );
    ensure!(!customer.is_empty() && !merchant.is_empty(), "line {line}: empty customer or merchant accepted");
    ensure!(
        crate::decimal::parse_unsigned_micros(amount.as_bytes()) == Some(amount_micros),
        "line {line}: amount '{amount}' read as {amount_micros} micro-units"
    );
    Ok(())
}

fn check_chunk_aggregate(
    chunk: &ChunkAggregate,
    expected: &Expected,
    lines: &[&[u8]],
    header_ok: bool,
) -> Result<(), Violation> {
    for quarantined in &chunk.rejected {
        ensure!(quarantined.part == PART, "a rejection names part `{}`", quarantined.part);
        check_rejection(&quarantined.rejection, lines, header_ok, &TRANSACTION_COLUMNS)?;
    }
    let data_lines = if header_ok { lines.len().saturating_sub(1) } else { lines.len() };
    ensure!(
        chunk.valid_rows + chunk.rejected.len() as u64 == data_lines as u64,
        "{} valid and {} rejected rows, but {data_lines} data lines",
        chunk.valid_rows,
        chunk.rejected.len()
    );
    ensure!(header_ok || chunk.valid_rows == 0, "rows accepted in a file with a wrong header");
    ensure!(
        chunk.pairs.windows(2).all(|w| (&w[0].merchant, &w[0].customer) < (&w[1].merchant, &w[1].customer)),
        "the pairs are not sorted by (merchant, customer), or one is repeated"
    );
    let found: Expected = chunk
        .pairs
        .iter()
        .map(|p| ((p.merchant.clone(), p.customer.clone()), (p.count, p.amount_micros, p.genders)))
        .collect();
    ensure!(&found == expected, "the pairs are not the sums of the valid rows");
    let total: u64 = chunk.pairs.iter().map(|p| p.count).sum();
    ensure!(total == chunk.valid_rows, "pairs count {total} rows, the chunk {}", chunk.valid_rows);
    Ok(())
}

/// The importance parser, through [`ImportanceTable::read`]: a file whose first line is not the
/// header fails with that line (at most [`MAX_LINE_BYTES`] of it) and an empty file fails; any
/// other file gives one accepted or rejected row per data line with its own number, rejections
/// that match their lines, and weights that are exactly the sums of the valid rows, whatever the
/// reader's buffer.
pub fn check_importance(data: &[u8]) -> Result<(), Violation> {
    let lines = physical_lines(data);
    let header_ok = lines.first().is_some_and(|first| naive_is_header(first, &IMPORTANCE_COLUMNS));
    let table = match ImportanceTable::read(data) {
        Ok(table) => table,
        Err(crate::ContractError::Header { found, .. }) => {
            ensure!(!header_ok, "a right header was refused");
            let wanted = lines.first().map(|first| {
                String::from_utf8_lossy(first.get(..MAX_LINE_BYTES).unwrap_or(first)).into_owned()
            });
            ensure!(found == wanted, "the refused header is not the first line as read");
            return Ok(());
        }
        Err(e) => return Err(format!("reading an importance file from memory failed: {e}")),
    };
    ensure!(header_ok, "a file whose first line is not the header was read");
    for rejection in table.rejected() {
        check_rejection(rejection, &lines, true, &IMPORTANCE_COLUMNS)?;
    }

    let mut numbers = Vec::new();
    let mut expected: BTreeMap<(String, String), (i128, u64)> = BTreeMap::new();
    read_importance(data, |row| match row {
        Ok(row) => {
            numbers.push(row.line);
            let pair = expected.entry((row.merchant.to_owned(), row.customer.to_owned())).or_default();
            pair.0 = pair.0.saturating_add(row.weight_micros);
            pair.1 += 1;
        }
        Err(rejection) => numbers.push(rejection.line),
    })
    .map_err(|e| format!("reading an importance file's rows failed: {e}"))?;
    check_numbering(&numbers, lines.len(), true)?;
    ensure!(
        table.valid_rows() + table.rejected().len() as u64 == lines.len().saturating_sub(1) as u64,
        "{} valid and {} rejected rows, but {} data lines",
        table.valid_rows(),
        table.rejected().len(),
        lines.len().saturating_sub(1)
    );
    let found = weights(&table);
    let wanted: Vec<(String, String, i128, u64)> =
        expected.into_iter().map(|((m, c), (sum, count))| (m, c, sum, count)).collect();
    ensure!(found == wanted, "the weights are not the sums of the valid rows");
    ensure!(table.pairs() == wanted.len(), "{} pairs counted, {} found", table.pairs(), wanted.len());

    let capacity = 1 + data.len() % 61;
    let small = ImportanceTable::read(BufReader::with_capacity(capacity, data))
        .map_err(|e| format!("reading an importance file through a buffer failed: {e}"))?;
    ensure!(
        weights(&small) == found && small.rejected() == table.rejected(),
        "a buffer of {capacity} bytes gives another table"
    );
    Ok(())
}

/// Every pair's weights, sorted by (merchant, customer).
fn weights(table: &ImportanceTable) -> Vec<(String, String, i128, u64)> {
    let mut out: Vec<(String, String, i128, u64)> = table
        .merchants()
        .flat_map(|(m, customers)| {
            customers.iter().map(move |(c, w)| (m.to_owned(), c.to_string(), w.sum_micros, w.count))
        })
        .collect();
    out.sort_unstable();
    out
}

/// The message decoder, through [`ChunkMessage::decode`]: a decoded message has this build's
/// version and decodes again, from its own encoding, to an equal message; a refused version is
/// another version; and a message built from the input's bytes (any strings, any numbers)
/// survives encoding and decoding unchanged.
pub fn check_message(data: &[u8]) -> Result<(), Violation> {
    match ChunkMessage::decode(data) {
        Ok(message) => {
            ensure!(message.version == MESSAGE_VERSION, "version {} decoded", message.version);
            round_trip(&message)?;
        }
        Err(MessageError::UnknownVersion(version)) => {
            ensure!(version != u64::from(MESSAGE_VERSION), "this build's version refused as unknown");
        }
        Err(MessageError::Malformed(reason)) => ensure!(!reason.is_empty(), "malformed, with no reason"),
    }
    round_trip(&message_from_bytes(data))
}

fn round_trip(message: &ChunkMessage) -> Result<(), Violation> {
    let body = message.encode();
    ensure!(!body.is_empty(), "a message encoded to nothing");
    match ChunkMessage::decode(&body) {
        Ok(again) => ensure!(&again == message, "decode(encode(m)) != m for {message:?}"),
        Err(e) => return Err(format!("the encoding of {message:?} does not decode: {e}")),
    }
    Ok(())
}

/// A message whose strings and numbers come from arbitrary bytes: the strings are the input split
/// on NUL bytes (invalid UTF-8 shown as U+FFFD), the numbers its first 24 bytes.
pub fn message_from_bytes(data: &[u8]) -> ChunkMessage {
    let number = |at: usize| {
        data.get(at..at + 8).and_then(|b| <[u8; 8]>::try_from(b).ok()).map_or(0, u64::from_le_bytes)
    };
    let mut texts = data.split(|&b| b == 0).map(|t| String::from_utf8_lossy(t).into_owned());
    let mut text = || texts.next().unwrap_or_default();
    let (stream, store, success, sha256, uploaded_at) = (text(), text(), text(), text(), text());
    ChunkMessage {
        version: MESSAGE_VERSION,
        stream,
        chunk: number(0),
        store,
        objects: texts.collect(),
        success,
        rows: number(8),
        bytes: number(16),
        sha256,
        uploaded_at,
    }
}

/// The chunk aggregate decoder, through [`decode`] and [`decode_shard`]: neither panics; one
/// shard of one is [`decode`], error included; when [`decode`] succeeds, each shard of 2 to 8
/// (the number from the input's length) gets exactly the pairs of its merchants and re-encoding
/// gives back the input byte for byte (the encoding is canonical); when it refuses, one of the
/// shards refuses with the same error (the merchant's owner, or all of them for a header). And
/// an aggregate built from the input's bytes survives [`encode`] then [`decode`] unchanged.
pub fn check_encoding(data: &[u8]) -> Result<(), Violation> {
    let decoded = decode(data);
    ensure!(decode_shard(data, 0, 1) == decoded, "shard 0 of 1 decodes otherwise than decode");
    // One shard's pairs at a time: the fuzzer's memory limit is sized for two decoded values.
    let shards = 2 + u32::try_from(data.len() % 7).unwrap_or(0);
    let shard_of = |p: &PairAggregate| crate::shard::shard_of(&p.merchant, shards);
    match &decoded {
        Ok(chunk) => {
            for shard in 0..shards {
                let part = decode_shard(data, shard, shards);
                let Ok(part) = part else {
                    return Err(format!("decode succeeds but shard {shard} of {shards} refuses: {part:?}"));
                };
                ensure!(
                    part.valid_rows == chunk.valid_rows
                        && part.pairs.iter().eq(chunk.pairs.iter().filter(|p| shard_of(p) == shard)),
                    "shard {shard} of {shards} is not decode's pairs filtered"
                );
            }
            match encode(chunk.valid_rows, &chunk.pairs) {
                Ok(again) => ensure!(again == data, "a decoded value encodes to other bytes: not canonical"),
                Err(e) => return Err(format!("a decoded value cannot be encoded: {e}")),
            }
        }
        Err(error) => {
            ensure!(!error.to_string().is_empty(), "an error with no message");
            ensure!(
                (0..shards).any(|shard| decode_shard(data, shard, shards).as_ref() == Err(error)),
                "decode refuses ({error}) but no shard of {shards} gives that error"
            );
        }
    }
    let built = aggregate_from_bytes(data);
    let bytes =
        encode(built.valid_rows, &built.pairs).map_err(|e| format!("a built aggregate is refused: {e}"))?;
    ensure!(decode(&bytes) == Ok(built), "decode(encode(x)) != x for an aggregate built from the input");
    Ok(())
}

/// A valid aggregate from arbitrary bytes: the input split on NUL bytes (invalid UTF-8 shown as
/// U+FFFD) gives (merchant, customer) names two by two, and each pair's figures come from the
/// FNV-1a hashes of its names (so counts and amounts reach their types' limits); a repeated pair
/// keeps its first figures, and a count is cut to keep the rows within `u64::MAX` (a pair left
/// with none is left out).
pub fn aggregate_from_bytes(data: &[u8]) -> DecodedChunk {
    use crate::shard::fnv1a64;
    let names: Vec<&[u8]> = data.split(|&b| b == 0).collect();
    let mut pairs: BTreeMap<(String, String), (u64, u128, Genders)> = BTreeMap::new();
    let mut valid_rows: u64 = 0;
    for two in names.chunks_exact(2) {
        let (Some(merchant), Some(customer)) = (two.first(), two.get(1)) else { continue };
        let (m, c) = (fnv1a64(merchant), fnv1a64(customer));
        let key =
            (String::from_utf8_lossy(merchant).into_owned(), String::from_utf8_lossy(customer).into_owned());
        // Mostly small counts, one in eight up to u64::MAX.
        let count = if m % 8 == 0 { c.max(1) } else { 1 + c % 1000 };
        let count = count.min(u64::MAX.saturating_sub(valid_rows));
        if count == 0 || pairs.contains_key(&key) {
            continue;
        }
        let genders = Genders::from_bits(u8::try_from(1 + c % 15).unwrap_or(1));
        pairs.insert(key, (count, (u128::from(m) << 64 | u128::from(c)) >> (c % 128), genders));
        valid_rows = valid_rows.saturating_add(count);
    }
    let pairs = pairs
        .into_iter()
        .map(|((merchant, customer), (count, amount_micros, genders))| PairAggregate {
            merchant,
            customer,
            count,
            amount_micros,
            genders,
        })
        .collect();
    DecodedChunk { valid_rows, pairs }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn physical_lines_follow_the_contract() {
        assert!(physical_lines(b"").is_empty());
        assert_eq!(physical_lines(b"\n"), vec![&b""[..]]);
        assert_eq!(physical_lines(b"a\r\nb\r"), vec![&b"a"[..], b"b\r"]);
        assert_eq!(physical_lines(b"a\n\r\n"), vec![&b"a"[..], b""]);
        assert_eq!(physical_lines(b"a\r\r\nb\n"), vec![&b"a\r"[..], b"b"]);
    }

    #[test]
    fn the_checks_pass_on_plain_inputs() {
        let chunk = format!(
            "{}\n0,'C1','2','F','28007','M1','28007','es_food',26.9,0\nbad\n",
            crate::contract::TRANSACTIONS_HEADER
        );
        check_chunk(chunk.as_bytes()).unwrap();
        check_chunk(b"").unwrap();
        check_chunk(b"wrong\nheader\r\n").unwrap();
        check_importance(b"Source,Target,Weight,typeTrans,fraud\n'C1','M1',-2.5,'x',0\n\n").unwrap();
        check_importance(b"").unwrap();
        check_importance(b"nope").unwrap();
        check_message(b"{\"version\":3}").unwrap();
        check_message(b"\x00\xff\x00").unwrap();
        check_message(&message_from_bytes(b"a\x00b\x00c").encode()).unwrap();
        check_encoding(b"").unwrap();
        check_encoding(b"TXPA\x01\x00\x00\x00").unwrap();
        check_encoding(b"TXPA\x02").unwrap();
        let built = aggregate_from_bytes(b"m\x00c\x00n\x00d\x00\xff\x00c\x00m\x00c");
        // "m" draws a huge count, the others small ones; the repeated pair keeps its first figures.
        assert_eq!(built.pairs.len(), 3);
        assert!(built.pairs.iter().any(|p| p.count > u64::MAX / 1000));
        let bytes = encode(built.valid_rows, &built.pairs).unwrap();
        check_encoding(&bytes).unwrap();
    }
}
