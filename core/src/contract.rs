//! The data contract of docs/patterns.md §1: headers, how a line becomes fields, and the rules
//! that make a row valid, checked in a fixed order so that every engine gives the same reason.
//!
//! Lines are physical lines (ended by `\n`, with an optional `\r` before it) and fields are split
//! on every comma; one pair of matching quotes is stripped. This is not RFC 4180 CSV, and on
//! purpose not the `csv` crate's reader: that reader skips empty lines and cannot number them,
//! while the contract counts an empty line as a rejected row with its line number (see
//! docs/architecture.md). Output files, which we write ourselves, do use the `csv` crate.
//!
//! An invalid row is never dropped: it comes back as a [`Rejection`] with its line number, the
//! column that failed, the reason and the line as read.
//!
//! Memory stays bounded on any input: a physical line longer than [`MAX_LINE_BYTES`] is rejected
//! with its length as the reason, read in pieces and never held whole; its rejection keeps only
//! the first [`MAX_LINE_BYTES`] bytes. A valid row is under 200 bytes.

use std::borrow::Cow;
use std::io::BufRead;

/// The columns of a transactions file, in order.
pub const TRANSACTION_COLUMNS: [&str; 10] = [
    "step",
    "customer",
    "age",
    "gender",
    "zipcodeOri",
    "merchant",
    "zipMerchant",
    "category",
    "amount",
    "fraud",
];
/// The header line of a transactions file.
pub const TRANSACTIONS_HEADER: &str =
    "step,customer,age,gender,zipcodeOri,merchant,zipMerchant,category,amount,fraud";
/// The columns of an importance file, in order.
pub const IMPORTANCE_COLUMNS: [&str; 5] = ["Source", "Target", "Weight", "typeTrans", "fraud"];
/// The header line of an importance file.
pub const IMPORTANCE_HEADER: &str = "Source,Target,Weight,typeTrans,fraud";
/// The longest physical line read, in bytes, not counting its line ending (`\n` or `\r\n`). A
/// longer line is a rejected row (see [`too_long_reason`]) and only its first `MAX_LINE_BYTES`
/// bytes are kept; it is read in pieces, so a single huge line never sits in memory whole. A valid
/// row is under 200 bytes.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// The reason given to every line of a chunk file whose first line is not the header.
pub const WRONG_HEADER_REASON: &str = "wrong file header, expected step,customer,age,gender,zipcodeOri,merchant,zipMerchant,category,amount,fraud";

/// The accepted values of `age`.
pub const AGES: [&str; 8] = ["0", "1", "2", "3", "4", "5", "6", "U"];

/// A customer's gender as the contract spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Gender {
    F,
    M,
    E,
    U,
}

impl Gender {
    fn parse(text: &str) -> Option<Self> {
        // Matched on bytes: comparing one-byte strings would call memcmp.
        match text.as_bytes() {
            [b'F'] => Some(Self::F),
            [b'M'] => Some(Self::M),
            [b'E'] => Some(Self::E),
            [b'U'] => Some(Self::U),
            _ => None,
        }
    }
}

/// One valid transaction row, borrowing its text from the reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transaction<'a> {
    /// 1-based physical line of its file; the header is line 1.
    pub line: u64,
    pub step: u64,
    pub customer: &'a str,
    pub age: &'a str,
    pub gender: Gender,
    pub zipcode_ori: &'a str,
    pub merchant: &'a str,
    pub zip_merchant: &'a str,
    pub category: &'a str,
    /// The amount as written (already checked against the contract's pattern).
    pub amount: &'a str,
    /// The amount in micro-units (millionths).
    pub amount_micros: u128,
    pub fraud: &'a str,
}

/// One valid importance row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportanceRow<'a> {
    pub line: u64,
    /// `Source`: a customer.
    pub customer: &'a str,
    /// `Target`: a merchant.
    pub merchant: &'a str,
    /// `Weight` as written.
    pub weight: &'a str,
    /// `Weight` in signed micro-units.
    pub weight_micros: i128,
}

/// A row that breaks the contract, with everything needed to quarantine it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// 1-based physical line of its file; the header is line 1.
    pub line: u64,
    /// The column that failed; `None` for a wrong field count or a wrong header.
    pub column: Option<&'static str>,
    pub reason: String,
    /// The line as read, without its line ending; of a line longer than [`MAX_LINE_BYTES`], only
    /// its first `MAX_LINE_BYTES` bytes (the reason gives its full length).
    pub raw: Vec<u8>,
}

impl Rejection {
    /// Where and why, for people: `line 12 (amount): not a non-negative decimal …`.
    pub fn where_and_why(&self) -> String {
        match self.column {
            Some(column) => format!("line {} ({column}): {}", self.line, self.reason),
            None => format!("line {}: {}", self.line, self.reason),
        }
    }

    /// The line as read, with invalid UTF-8 shown as U+FFFD.
    pub fn raw_text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.raw)
    }
}

/// Why a file could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    /// `found` is the first line as read (at most its first [`MAX_LINE_BYTES`] bytes, invalid
    /// UTF-8 shown as U+FFFD); `None` for an empty file.
    #[error("the first line is not the expected header `{expected}`{}", found_text(.found))]
    Header { expected: &'static str, found: Option<String> },
    #[error("could not read the file: {0}")]
    Read(String),
}

fn found_text(found: &Option<String>) -> String {
    match found {
        None => " (the file is empty)".to_owned(),
        Some(line) => format!(" (found `{line}`)"),
    }
}

/// What to do with a file whose first line is not the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnWrongHeader {
    /// Fail with [`ContractError::Header`] (a source file given by a user).
    Fail,
    /// Reject every line, the first included, with [`WRONG_HEADER_REASON`] (a chunk in a
    /// stream: nothing is lost and the stream goes on).
    RejectAll,
}

/// Strips one pair of matching single or double quotes around a field of two or more bytes.
pub fn unquote(field: &[u8]) -> &[u8] {
    match field {
        [first, inner @ .., last] if first == last && (*first == b'\'' || *first == b'"') => inner,
        _ => field,
    }
}

/// Reads a transactions file and hands every data row to `on_row`, valid or rejected.
pub fn read_transactions<R: BufRead>(
    reader: R,
    on_wrong_header: OnWrongHeader,
    mut on_row: impl FnMut(Result<Transaction<'_>, Rejection>),
) -> Result<(), ContractError> {
    read_lines(reader, &TRANSACTION_COLUMNS, TRANSACTIONS_HEADER, on_wrong_header, |line, kind, raw| {
        let checked = match kind {
            LineKind::Data(fields) => check_transaction(line, fields),
            LineKind::WrongHeader => Err((None, WRONG_HEADER_REASON.to_owned())),
            LineKind::TooLong(length) => Err((None, too_long_reason(length))),
        };
        on_row(checked.map_err(|(column, reason)| Rejection { line, column, reason, raw: raw.to_vec() }));
    })
}

/// Reads an importance file and hands every data row to `on_row`, valid or rejected.
pub fn read_importance<R: BufRead>(
    reader: R,
    mut on_row: impl FnMut(Result<ImportanceRow<'_>, Rejection>),
) -> Result<(), ContractError> {
    read_lines(reader, &IMPORTANCE_COLUMNS, IMPORTANCE_HEADER, OnWrongHeader::Fail, |line, kind, raw| {
        let checked = match kind {
            LineKind::Data(fields) => check_importance(line, fields),
            LineKind::WrongHeader => Err((None, format!("wrong file header, expected {IMPORTANCE_HEADER}"))),
            LineKind::TooLong(length) => Err((None, too_long_reason(length))),
        };
        on_row(checked.map_err(|(column, reason)| Rejection { line, column, reason, raw: raw.to_vec() }));
    })
}

/// The most fields a row is split into; a longer row only needs its count to be rejected.
const MAX_FIELDS: usize = 10;

/// The unquoted fields of one line: the first [`MAX_FIELDS`] of them, how many there are, and
/// the line as text when it is valid UTF-8.
struct Fields<'l> {
    values: [&'l [u8]; MAX_FIELDS],
    count: usize,
    text: Option<(&'l str, &'l [u8])>,
}

impl<'l> Fields<'l> {
    fn split(line: &'l [u8]) -> Self {
        let mut values: [&[u8]; MAX_FIELDS] = [&[]; MAX_FIELDS];
        let mut count = 0;
        for field in line.split(|&b| b == b',') {
            if count < MAX_FIELDS {
                values[count] = unquote(field);
            }
            count += 1;
        }
        // One check of the whole line is much cheaper than one per field.
        Self { values, count, text: std::str::from_utf8(line).ok().map(|text| (text, line)) }
    }

    fn matches(&self, columns: &[&str]) -> bool {
        self.count == columns.len()
            && self.values.iter().zip(columns).all(|(value, column)| *value == column.as_bytes())
    }
}

type Problem = (Option<&'static str>, String);

/// The fields as text, or the first column that is not valid UTF-8.
fn check_utf8<'l, const N: usize>(
    fields: &Fields<'l>,
    columns: &[&'static str; N],
) -> Result<[&'l str; N], Problem> {
    if fields.count != N {
        return Err((None, format!("expected {N} fields, found {}", fields.count)));
    }
    let mut out = [""; N];
    if let Some((text, line)) = fields.text {
        // Each field is a sub-slice of the line, cut at ASCII bytes: the same range of the text
        // is a valid `str` (and `get` checks it).
        let base = line.as_ptr() as usize;
        for (slot, value) in out.iter_mut().zip(&fields.values) {
            let start = (value.as_ptr() as usize).wrapping_sub(base);
            *slot = text.get(start..start + value.len()).unwrap_or_default();
        }
        return Ok(out);
    }
    for (i, (slot, value)) in out.iter_mut().zip(&fields.values).enumerate() {
        *slot = std::str::from_utf8(value)
            .map_err(|_| (columns.get(i).copied(), "not valid UTF-8".to_owned()))?;
    }
    Ok(out)
}

fn check_transaction<'l>(line: u64, fields: &Fields<'l>) -> Result<Transaction<'l>, Problem> {
    let [step, customer, age, gender, zipcode_ori, merchant, zip_merchant, category, amount, fraud] =
        check_utf8(fields, &TRANSACTION_COLUMNS)?;
    let step_value = if (1..=18).contains(&step.len()) && step.bytes().all(|b| b.is_ascii_digit()) {
        step.parse::<u64>().ok()
    } else {
        None
    };
    let Some(step_value) = step_value else {
        return Err((Some("step"), format!("not a non-negative integer of at most 18 digits: '{step}'")));
    };
    if customer.is_empty() {
        return Err((Some("customer"), "empty".to_owned()));
    }
    if !matches!(age.as_bytes(), [b'0'..=b'6' | b'U']) {
        return Err((Some("age"), format!("not one of 0, 1, 2, 3, 4, 5, 6, U: '{age}'")));
    }
    let Some(gender_value) = Gender::parse(gender) else {
        return Err((Some("gender"), format!("not one of F, M, E, U: '{gender}'")));
    };
    if merchant.is_empty() {
        return Err((Some("merchant"), "empty".to_owned()));
    }
    let Some(amount_micros) = crate::decimal::parse_unsigned_micros(amount.as_bytes()) else {
        return Err((
            Some("amount"),
            format!(
                "not a non-negative decimal with at most 15 digits before the point and 6 after: '{amount}'"
            ),
        ));
    };
    Ok(Transaction {
        line,
        step: step_value,
        customer,
        age,
        gender: gender_value,
        zipcode_ori,
        merchant,
        zip_merchant,
        category,
        amount,
        amount_micros,
        fraud,
    })
}

fn check_importance<'l>(line: u64, fields: &Fields<'l>) -> Result<ImportanceRow<'l>, Problem> {
    let [source, target, weight, _, _] = check_utf8(fields, &IMPORTANCE_COLUMNS)?;
    if source.is_empty() {
        return Err((Some("Source"), "empty".to_owned()));
    }
    if target.is_empty() {
        return Err((Some("Target"), "empty".to_owned()));
    }
    let Some(weight_micros) = crate::decimal::parse_signed_micros(weight.as_bytes()) else {
        return Err((
            Some("Weight"),
            format!("not a decimal with at most 15 digits before the point and 6 after: '{weight}'"),
        ));
    };
    Ok(ImportanceRow { line, customer: source, merchant: target, weight, weight_micros })
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Strips the line ending (`\n`, or `\r\n`) from a physical line as `read_until` returns it.
pub fn strip_line_ending(line: &[u8]) -> &[u8] {
    match line.strip_suffix(b"\n") {
        Some(rest) => rest.strip_suffix(b"\r").unwrap_or(rest),
        None => line,
    }
}

/// Checks a first line against a header, ignoring a UTF-8 byte-order mark and unquoting fields.
pub fn is_header(line: &[u8], columns: &[&str]) -> bool {
    let line = strip_line_ending(line);
    Fields::split(line.strip_prefix(BOM).unwrap_or(line)).matches(columns)
}

/// The reason a line longer than [`MAX_LINE_BYTES`] is rejected; `length` is its full length in
/// bytes, without its line ending.
pub fn too_long_reason(length: u64) -> String {
    format!("line longer than {MAX_LINE_BYTES} bytes ({length} bytes)")
}

/// One physical line, without its line ending, as [`for_each_line`] hands it over.
enum Line<'a> {
    /// A line of at most [`MAX_LINE_BYTES`] bytes.
    Whole(&'a [u8]),
    /// A longer line: its first [`MAX_LINE_BYTES`] bytes and its full length.
    TooLong { head: &'a [u8], length: u64 },
}

impl<'a> Line<'a> {
    /// `content` is a line without its ending, held whole (it is in the reader's buffer).
    fn of(content: &'a [u8]) -> Self {
        match content.get(..MAX_LINE_BYTES) {
            Some(head) if content.len() > MAX_LINE_BYTES => {
                Self::TooLong { head, length: content.len() as u64 }
            }
            _ => Self::Whole(content),
        }
    }
}

/// Calls `each` with every physical line. A line is handed straight from the reader's buffer;
/// only one that spans two fills of the buffer is copied (a `&[u8]` reader never copies), and of
/// that one at most [`MAX_LINE_BYTES`] + 1 bytes are kept (the `+ 1` for a `\r` that may turn out
/// to be part of a `\r\n` ending): the rest of a longer line is only counted.
fn for_each_line<R: BufRead>(
    mut reader: R,
    mut each: impl FnMut(Line<'_>) -> Result<(), ContractError>,
) -> Result<(), ContractError> {
    // The start of a line that spans fills of the buffer: its first bytes, how many bytes it has
    // so far (its `\n` excluded) and whether the last of them is a `\r`.
    let mut pending: Vec<u8> = Vec::new();
    let mut length: u64 = 0;
    let mut ends_in_cr = false;
    // The line in `pending`, now complete; `ending` says whether a `\n` ended it (so that a `\r`
    // before it is part of the ending, not of the line).
    fn finish(pending: &[u8], length: u64, ends_in_cr: bool, ending: bool) -> Line<'_> {
        let length = if ending && ends_in_cr { length - 1 } else { length };
        match usize::try_from(length) {
            Ok(short) if short <= MAX_LINE_BYTES => Line::Whole(pending.get(..short).unwrap_or(pending)),
            _ => Line::TooLong { head: pending.get(..MAX_LINE_BYTES).unwrap_or(pending), length },
        }
    }
    loop {
        let buffer = reader.fill_buf().map_err(|e| ContractError::Read(e.to_string()))?;
        if buffer.is_empty() {
            return if length == 0 { Ok(()) } else { each(finish(&pending, length, ends_in_cr, false)) };
        }
        let newline = memchr::memchr(b'\n', buffer);
        if let (0, Some(end)) = (length, newline) {
            // The fast path: the whole line is in the buffer.
            each(Line::of(strip_line_ending(&buffer[..=end])))?;
            reader.consume(end + 1);
            continue;
        }
        let piece = &buffer[..newline.unwrap_or(buffer.len())];
        let room = (MAX_LINE_BYTES + 1).saturating_sub(pending.len());
        pending.extend_from_slice(&piece[..room.min(piece.len())]);
        length += piece.len() as u64;
        if let Some(&last) = piece.last() {
            ends_in_cr = last == b'\r';
        }
        let consumed = match newline {
            Some(end) => {
                each(finish(&pending, length, ends_in_cr, true))?;
                pending.clear();
                length = 0;
                ends_in_cr = false;
                end + 1
            }
            None => buffer.len(),
        };
        reader.consume(consumed);
    }
}

/// What [`read_lines`] knows of a data line.
enum LineKind<'f, 'l> {
    /// The line's fields, to be checked.
    Data(&'f Fields<'l>),
    /// A line of a file whose first line is not the header.
    WrongHeader,
    /// A line longer than [`MAX_LINE_BYTES`] (in a file whose header is right), with its length.
    TooLong(u64),
}

/// Splits a file into physical lines and fields, checks the header, and calls `on_line` with
/// each data line's number, what it is and its text as read (of a line longer than
/// [`MAX_LINE_BYTES`], its first `MAX_LINE_BYTES` bytes). A file whose header is wrong has every
/// line, long ones included, as [`LineKind::WrongHeader`].
fn read_lines<R: BufRead>(
    reader: R,
    columns: &[&str],
    header: &'static str,
    on_wrong_header: OnWrongHeader,
    mut on_line: impl FnMut(u64, LineKind<'_, '_>, &[u8]),
) -> Result<(), ContractError> {
    let mut number: u64 = 0;
    // None until the first line is read; then whether it was the header.
    let mut header_ok: Option<bool> = None;
    for_each_line(reader, |physical| {
        number += 1;
        let (line, too_long) = match physical {
            Line::Whole(line) => (line, None),
            Line::TooLong { head, length } => (head, Some(length)),
        };
        match header_ok {
            None => {
                let ok = too_long.is_none() && is_header(line, columns);
                header_ok = Some(ok);
                if !ok {
                    match on_wrong_header {
                        OnWrongHeader::Fail => {
                            return Err(ContractError::Header {
                                expected: header,
                                found: Some(String::from_utf8_lossy(line).into_owned()),
                            });
                        }
                        OnWrongHeader::RejectAll => on_line(number, LineKind::WrongHeader, line),
                    }
                }
            }
            Some(false) => on_line(number, LineKind::WrongHeader, line),
            Some(true) => match too_long {
                None => on_line(number, LineKind::Data(&Fields::split(line)), line),
                Some(length) => on_line(number, LineKind::TooLong(length), line),
            },
        }
        Ok(())
    })?;
    if header_ok.is_none() && on_wrong_header == OnWrongHeader::Fail {
        return Err(ContractError::Header { expected: header, found: None });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::{BufReader, Read};

    use super::*;

    const GOOD: &str = "0,'C1','2','F','28007','M1','28007','es_food',26.9,0";

    /// Every row of a chunk as (line, accepted, reason, raw length), read from memory and through
    /// a small buffer, which must agree.
    fn rows_of(bytes: &[u8]) -> Vec<(u64, bool, String, usize)> {
        let read = |reader: &mut dyn BufRead| {
            let mut out = Vec::new();
            read_transactions(reader, OnWrongHeader::RejectAll, |row| {
                out.push(match row {
                    Ok(t) => (t.line, true, String::new(), 0),
                    Err(r) => (r.line, false, r.reason, r.raw.len()),
                });
            })
            .unwrap();
            out
        };
        let whole = read(&mut &bytes[..]);
        assert_eq!(read(&mut BufReader::with_capacity(4096, bytes)), whole, "through a 4 KiB buffer");
        whole
    }

    #[test]
    fn a_huge_line_is_one_rejected_row_and_keeps_only_its_start() {
        const HUGE: usize = 100 * 1024 * 1024;
        let mut text = format!("{TRANSACTIONS_HEADER}\n{GOOD}\n").into_bytes();
        let start = text.len();
        text.resize(start + HUGE, b'x');
        text[start] = b'7';
        text.extend_from_slice(format!("\r\n{GOOD}\r\n").as_bytes());

        let mut rows = Vec::new();
        read_transactions(&text[..], OnWrongHeader::Fail, |row| rows.push(row.map(|t| t.line))).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0], Ok(2));
        assert_eq!(rows[2], Ok(4), "the row after the huge line is read, with its own number");
        let huge = rows[1].clone().unwrap_err();
        assert_eq!(huge.line, 3);
        assert_eq!(huge.column, None);
        assert_eq!(huge.reason, format!("line longer than 65536 bytes ({HUGE} bytes)"));
        assert_eq!(huge.raw.len(), MAX_LINE_BYTES, "only the start of the line is kept");
        assert_eq!(&huge.raw[..3], b"7xx");

        // The same through a reader's buffer, where the line is read in pieces.
        let expected = vec![
            (2, true, String::new(), 0),
            (3, false, huge.reason.clone(), MAX_LINE_BYTES),
            (4, true, String::new(), 0),
        ];
        let mut through_buffer = Vec::new();
        read_transactions(BufReader::with_capacity(8192, &text[..]), OnWrongHeader::Fail, |row| {
            through_buffer.push(match row {
                Ok(t) => (t.line, true, String::new(), 0),
                Err(r) => (r.line, false, r.reason, r.raw.len()),
            });
        })
        .unwrap();
        assert_eq!(through_buffer, expected);
    }

    #[test]
    fn a_line_at_the_limit_is_read_and_one_byte_more_is_rejected() {
        // A valid row padded to exactly MAX_LINE_BYTES with a long category.
        let pad = |length: usize| {
            let row = GOOD.replace("'es_food'", "'es_food");
            let category = "y".repeat(length - row.len() - 1);
            GOOD.replace("'es_food'", &format!("'es_food{category}'"))
        };
        let at = pad(MAX_LINE_BYTES);
        let over = pad(MAX_LINE_BYTES + 1);
        assert_eq!((at.len(), over.len()), (MAX_LINE_BYTES, MAX_LINE_BYTES + 1));
        for ending in ["\n", "\r\n"] {
            let text = format!("{TRANSACTIONS_HEADER}{ending}{at}{ending}{over}{ending}{at}");
            let rows = rows_of(text.as_bytes());
            assert_eq!(
                rows,
                vec![
                    (2, true, String::new(), 0),
                    (
                        3,
                        false,
                        format!("line longer than 65536 bytes ({} bytes)", MAX_LINE_BYTES + 1),
                        MAX_LINE_BYTES
                    ),
                    (4, true, String::new(), 0),
                ],
                "ending {ending:?}"
            );
        }
        // A `\r` not followed by `\n` is part of the line: it makes it one byte too long.
        let rows = rows_of(format!("{TRANSACTIONS_HEADER}\n{at}\r").as_bytes());
        assert_eq!(rows[0].2, format!("line longer than 65536 bytes ({} bytes)", MAX_LINE_BYTES + 1));
    }

    #[test]
    fn ten_thousand_columns_are_counted_not_kept() {
        let line = vec!["1"; 10_000].join(",");
        let rows = rows_of(format!("{TRANSACTIONS_HEADER}\n{line}\n{GOOD}\n").as_bytes());
        assert_eq!(
            rows,
            vec![
                (2, false, "expected 10 fields, found 10000".to_owned(), line.len()),
                (3, true, String::new(), 0)
            ]
        );
    }

    #[test]
    fn non_utf8_bytes_are_rejected_as_read() {
        let mut text = format!("{TRANSACTIONS_HEADER}\n").into_bytes();
        text.extend_from_slice(b"\xff\xfe\x00,\xc3\x28\n");
        text.extend_from_slice(GOOD.replace("M1", "M\u{e9}").as_bytes());
        text.extend_from_slice(b"\n0,'C1','2','F','28007','M\xe9','28007','es_food',1,0\n");
        let rows = rows_of(&text);
        assert_eq!(rows[0], (2, false, "expected 10 fields, found 2".to_owned(), 6));
        assert_eq!(rows[1], (3, true, String::new(), 0), "valid UTF-8 beyond ASCII is a valid row");
        assert_eq!(rows[2].2, "not valid UTF-8");
        // A header with invalid bytes is a wrong header.
        let rows = rows_of(b"step\xff\n1\n");
        assert_eq!(rows.iter().filter(|r| r.2 == WRONG_HEADER_REASON).count(), 2);
    }

    #[test]
    fn an_empty_chunk_and_a_header_only_chunk_have_no_rows() {
        assert!(rows_of(b"").is_empty());
        assert!(rows_of(format!("{TRANSACTIONS_HEADER}\n").as_bytes()).is_empty());
        assert!(rows_of(format!("{TRANSACTIONS_HEADER}\r\n").as_bytes()).is_empty());
        assert!(rows_of(TRANSACTIONS_HEADER.as_bytes()).is_empty());
    }

    #[test]
    fn a_huge_first_line_is_a_wrong_header_and_its_report_is_bounded() {
        let huge = vec![b'a'; 3 * MAX_LINE_BYTES];
        let mut text = huge.clone();
        text.extend_from_slice(format!("\n{GOOD}\n").as_bytes());
        let rows = rows_of(&text);
        assert_eq!(
            rows,
            vec![
                (1, false, WRONG_HEADER_REASON.to_owned(), MAX_LINE_BYTES),
                (2, false, WRONG_HEADER_REASON.to_owned(), GOOD.len())
            ]
        );
        let err = read_importance(&text[..], |_| {}).unwrap_err();
        let ContractError::Header { found: Some(found), .. } = err else { panic!("{err}") };
        assert_eq!(found.len(), MAX_LINE_BYTES);
    }

    #[test]
    fn a_huge_line_read_lazily_is_never_held_whole() {
        // 100 MB produced as they are read: the parser sees them only through its buffer.
        let line = std::io::repeat(b'z').take(100 * 1024 * 1024);
        let header = format!("{IMPORTANCE_HEADER}\n");
        let reader = header.as_bytes().chain(line).chain(&b"\n'C','M',1,'x',0"[..]);
        let mut rows = Vec::new();
        read_importance(BufReader::new(reader), |row| {
            rows.push(row.map(|r| r.line).map_err(|r| (r.line, r.raw.len())))
        })
        .unwrap();
        assert_eq!(rows, vec![Err((2, MAX_LINE_BYTES)), Ok(3)]);
    }
}
