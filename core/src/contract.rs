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
    /// The line as read, without its line ending.
    pub raw: Vec<u8>,
}

impl Rejection {
    /// The line as read, with invalid UTF-8 shown as U+FFFD.
    pub fn raw_text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.raw)
    }
}

/// Why a file could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
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
    read_lines(reader, &TRANSACTION_COLUMNS, TRANSACTIONS_HEADER, on_wrong_header, |line, fields, raw| {
        let checked = match fields {
            Some(fields) => check_transaction(line, fields),
            None => Err((None, WRONG_HEADER_REASON.to_owned())),
        };
        on_row(checked.map_err(|(column, reason)| Rejection { line, column, reason, raw: raw.to_vec() }));
    })
}

/// Reads an importance file and hands every data row to `on_row`, valid or rejected.
pub fn read_importance<R: BufRead>(
    reader: R,
    mut on_row: impl FnMut(Result<ImportanceRow<'_>, Rejection>),
) -> Result<(), ContractError> {
    read_lines(reader, &IMPORTANCE_COLUMNS, IMPORTANCE_HEADER, OnWrongHeader::Fail, |line, fields, raw| {
        let checked = match fields {
            Some(fields) => check_importance(line, fields),
            None => Err((None, format!("wrong file header, expected {IMPORTANCE_HEADER}"))),
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

/// Calls `each` with every physical line, its ending included. A line is handed straight from
/// the reader's buffer; only one that spans two fills of the buffer is copied (a `&[u8]` reader
/// never copies).
fn for_each_line<R: BufRead>(
    mut reader: R,
    mut each: impl FnMut(&[u8]) -> Result<(), ContractError>,
) -> Result<(), ContractError> {
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let buffer = reader.fill_buf().map_err(|e| ContractError::Read(e.to_string()))?;
        if buffer.is_empty() {
            return if pending.is_empty() { Ok(()) } else { each(&pending) };
        }
        let consumed = match memchr::memchr(b'\n', buffer) {
            Some(end) if pending.is_empty() => {
                each(&buffer[..=end])?;
                end + 1
            }
            Some(end) => {
                pending.extend_from_slice(&buffer[..=end]);
                each(&pending)?;
                pending.clear();
                end + 1
            }
            None => {
                pending.extend_from_slice(buffer);
                buffer.len()
            }
        };
        reader.consume(consumed);
    }
}

/// Splits a file into physical lines and fields, checks the header, and calls `on_line` with
/// each data line's number, fields (`None` for a line of a file whose header is wrong) and text
/// as read.
fn read_lines<R: BufRead>(
    reader: R,
    columns: &[&str],
    header: &'static str,
    on_wrong_header: OnWrongHeader,
    mut on_line: impl FnMut(u64, Option<&Fields<'_>>, &[u8]),
) -> Result<(), ContractError> {
    let mut number: u64 = 0;
    // None until the first line is read; then whether it was the header.
    let mut header_ok: Option<bool> = None;
    for_each_line(reader, |physical| {
        number += 1;
        let line = strip_line_ending(physical);
        match header_ok {
            None => {
                let ok = is_header(line, columns);
                header_ok = Some(ok);
                if !ok {
                    match on_wrong_header {
                        OnWrongHeader::Fail => {
                            return Err(ContractError::Header {
                                expected: header,
                                found: Some(String::from_utf8_lossy(line).into_owned()),
                            });
                        }
                        OnWrongHeader::RejectAll => on_line(number, None, line),
                    }
                }
            }
            Some(false) => on_line(number, None, line),
            Some(true) => on_line(number, Some(&Fields::split(line)), line),
        }
        Ok(())
    })?;
    if header_ok.is_none() && on_wrong_header == OnWrongHeader::Fail {
        return Err(ContractError::Header { expected: header, found: None });
    }
    Ok(())
}
