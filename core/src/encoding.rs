//! A chunk's aggregate as one compact, versioned binary value (issue 27).
//!
//! A consumer commits each chunk's aggregate, ~6,500 (merchant, customer) pairs for a BankSim
//! chunk of 10,000 rows. Stored as one row per pair, that is most of a chunk's commit time, and a
//! detector in a process of its own reads all of them back (docs/performance.md). This module
//! turns the pairs into one value that a database stores as a single `bytea` / blob, and back.
//! It is pure: bytes in, values out.
//!
//! The pairs are grouped by merchant, and each group carries its length in bytes, so that a
//! detector shard ([`crate::shard`]) decodes only the merchants it owns ([`decode_shard`]) and
//! jumps over the others without reading their pairs.
//!
//! # Layout (version 1)
//!
//! Integers are unsigned LEB128 varints (7 bits a byte, least significant group first, the high
//! bit set on every byte but the last), in their shortest form; a name is its length in bytes (a
//! varint) and then its UTF-8 bytes.
//!
//! | field | encoding |
//! |---|---|
//! | magic | the 4 bytes `TXPA` |
//! | version | 1 byte: [`VERSION`] |
//! | valid rows | varint (u64): the chunk's valid rows, the sum of every pair's count |
//! | merchants | varint (u64): the number of merchant groups that follow |
//! | pairs | varint (u64): the number of pairs in all groups |
//! | *per merchant, in ascending order of name:* | |
//! | name | name |
//! | rows | varint (u64): the sum of the group's counts |
//! | pairs | varint (u64): the group's pairs, at least 1 |
//! | length | varint (u64): the bytes of the group's pairs, which follow |
//! | *per pair, in ascending order of customer:* | |
//! | customer | name |
//! | count | varint (u64), at least 1 |
//! | amount | varint (u128): the exact sum of the amounts in micro-units |
//! | genders | 1 byte: [`Genders::bits`], non-empty and within `0b1111` |
//!
//! Nothing follows the last group. The valid rows are always the sum of the counts: the aggregator
//! counts each valid row once in both (rejected rows are not encoded: they go to the quarantine).
//! Every customer name is written in full in each pair: with a
//! table of names and indices into it, a BankSim chunk's value would be 18% smaller (~95 KB
//! instead of ~116 KB), but every shard would read the whole table and a group would no longer
//! stand on its own (docs/performance.md, "The chunk aggregate encoding").
//!
//! Decoding allocates each pair's own copy of its merchant's name (as [`PairAggregate`] holds
//! it), so a value decodes to about what the consumer held when it encoded it: more than the
//! value's own size when names are long, since the value stores each merchant's name once.
//!
//! # What decoding checks
//!
//! [`decode`] refuses anything [`encode`] would not have written: the magic, the version (an
//! unknown one is named), varints that are too long or do not fit their type, names that are not
//! UTF-8, lengths past the end of the value or of their group, merchants and customers that are
//! not in strictly ascending order (so no pair is repeated), an empty group, a count of 0, genders
//! outside `1..=0b1111`, a group whose counts do not add up to its rows or whose pairs do not end
//! exactly at its length, totals that do not match the groups, and trailing bytes. So the
//! encoding is canonical: a value that decodes is exactly the encoding of what it decodes to.
//! Decoding never panics; an error names what is wrong and at which byte offset.
//!
//! [`decode_shard`] checks the same, except inside the pairs of the groups it skips: their
//! headers (name, order, rows, pairs, length) are checked and counted in the totals, their pairs
//! are not read. Every merchant belongs to exactly one shard, so the shards of a chunk together
//! check all of it: a value that [`decode`] refuses is refused by at least one shard, with the
//! same error.

use thiserror::Error;

use crate::aggregate::{ChunkAggregate, Genders, PairAggregate};
use crate::shard::shard_of;

/// The first bytes of every encoded aggregate.
pub const MAGIC: [u8; 4] = *b"TXPA";

/// The layout this build writes and reads.
pub const VERSION: u8 = 1;

/// The fewest bytes a pair takes: an empty name (1), a count (1), an amount (1), the genders (1).
const MIN_PAIR_BYTES: usize = 4;

/// A decoded aggregate: the chunk's valid rows and its pairs, sorted by (merchant, customer).
/// From [`decode_shard`], only the pairs of the shard's merchants; `valid_rows` is still the
/// whole chunk's.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DecodedChunk {
    pub valid_rows: u64,
    pub pairs: Vec<PairAggregate>,
}

impl DecodedChunk {
    /// The chunk's aggregate, with no rejected rows (they go to the quarantine, not into the
    /// encoding).
    pub fn into_aggregate(self, index: u64) -> ChunkAggregate {
        ChunkAggregate { index, valid_rows: self.valid_rows, pairs: self.pairs, rejected: Vec::new() }
    }
}

/// Why a chunk's pairs cannot be encoded: what [`decode`] would refuse is not written.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    #[error(
        "pair {index} ({merchant:?}, {customer:?}) does not come after the pair before it: pairs must be \
         sorted by (merchant, customer), each once"
    )]
    OutOfOrder { index: usize, merchant: String, customer: String },
    #[error("pair {index} has a count of 0")]
    ZeroCount { index: usize },
    #[error("pair {index} has no gender")]
    NoGenders { index: usize },
    #[error("the pairs' counts add up to {counted} rows, but the chunk has {valid_rows} valid rows")]
    RowsMismatch { valid_rows: u64, counted: u128 },
}

/// Why bytes are not an encoded aggregate. Offsets are from the start of the value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodingError {
    #[error("not an encoded chunk aggregate: it starts with {found:02x?}, not {MAGIC:02x?} (`TXPA`)")]
    BadMagic { found: Vec<u8> },
    #[error("encoded chunk aggregate of version {version}: this build reads version {VERSION} only")]
    UnknownVersion { version: u8 },
    #[error("byte {offset}: {field} runs past {limit}")]
    Truncated { offset: usize, field: &'static str, limit: &'static str },
    #[error("byte {offset}: {field} is a varint longer than its shortest form")]
    OverlongVarint { offset: usize, field: &'static str },
    #[error("byte {offset}: {field} does not fit in {bits} bits")]
    VarintOverflow { offset: usize, field: &'static str, bits: u32 },
    #[error("byte {offset}: {field} is not UTF-8")]
    NotUtf8 { offset: usize, field: &'static str },
    #[error("byte {offset}: merchant {merchant:?} does not come after merchant {previous:?}")]
    MerchantOrder { offset: usize, merchant: String, previous: String },
    #[error(
        "byte {offset}: customer {customer:?} does not come after customer {previous:?} at merchant {merchant:?}"
    )]
    CustomerOrder { offset: usize, merchant: String, customer: String, previous: String },
    #[error("byte {offset}: merchant {merchant:?} has no pairs")]
    EmptyMerchant { offset: usize, merchant: String },
    #[error("byte {offset}: a pair's count is 0")]
    ZeroCount { offset: usize },
    #[error("byte {offset}: genders {bits:#010b} are not a non-empty set of F, M, E, U (0b0001 to 0b1111)")]
    BadGenders { offset: usize, bits: u8 },
    #[error(
        "byte {offset}: merchant {merchant:?} declares {declared} pairs in {length} bytes: {found} pairs read, {left} bytes left"
    )]
    GroupPairs { offset: usize, merchant: String, declared: u64, length: usize, found: u64, left: usize },
    #[error("byte {offset}: merchant {merchant:?} declares {declared} rows, but its pairs count {counted}")]
    GroupRows { offset: usize, merchant: String, declared: u64, counted: u128 },
    #[error("the value declares {declared} merchants, but has {found}")]
    MerchantTotal { declared: u64, found: u64 },
    #[error("the value declares {declared} pairs, but its merchants have {counted}")]
    PairTotal { declared: u64, counted: u128 },
    #[error("the value declares {declared} valid rows, but its merchants have {counted}")]
    RowTotal { declared: u64, counted: u128 },
    #[error("byte {offset}: {count} bytes after the last merchant")]
    TrailingBytes { offset: usize, count: usize },
}

/// Encodes a chunk's valid rows and pairs (sorted by (merchant, customer), each once, as
/// [`ChunkAggregate::pairs`] are) into one value. Refuses pairs that [`decode`] would refuse.
pub fn encode(valid_rows: u64, pairs: &[PairAggregate]) -> Result<Vec<u8>, EncodeError> {
    let mut counted: u128 = 0;
    let mut previous: Option<&PairAggregate> = None;
    for (index, pair) in pairs.iter().enumerate() {
        if previous.is_some_and(|p| (&p.merchant, &p.customer) >= (&pair.merchant, &pair.customer)) {
            let (merchant, customer) = (pair.merchant.clone(), pair.customer.clone());
            return Err(EncodeError::OutOfOrder { index, merchant, customer });
        }
        if pair.count == 0 {
            return Err(EncodeError::ZeroCount { index });
        }
        if pair.genders.bits() == 0 {
            return Err(EncodeError::NoGenders { index });
        }
        counted = counted.saturating_add(u128::from(pair.count));
        previous = Some(pair);
    }
    if counted != u128::from(valid_rows) {
        return Err(EncodeError::RowsMismatch { valid_rows, counted });
    }

    let groups = || pairs.chunk_by(|a, b| a.merchant == b.merchant);
    let names: usize = pairs.iter().map(|p| p.customer.len()).sum();
    let mut out = Vec::with_capacity(16 + names + 12 * pairs.len());
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    put_varint(&mut out, u128::from(valid_rows));
    put_varint(&mut out, groups().count() as u128);
    put_varint(&mut out, pairs.len() as u128);
    let mut body = Vec::new();
    for group in groups() {
        body.clear();
        let mut rows: u64 = 0;
        for pair in group {
            put_name(&mut body, &pair.customer);
            put_varint(&mut body, u128::from(pair.count));
            put_varint(&mut body, pair.amount_micros);
            body.push(pair.genders.bits());
            // Below the chunk's valid rows, checked above.
            rows = rows.saturating_add(pair.count);
        }
        let merchant = group.first().map_or("", |p| p.merchant.as_str());
        put_name(&mut out, merchant);
        put_varint(&mut out, u128::from(rows));
        put_varint(&mut out, group.len() as u128);
        put_varint(&mut out, body.len() as u128);
        out.extend_from_slice(&body);
    }
    Ok(out)
}

/// Decodes a whole value: every pair, in (merchant, customer) order.
pub fn decode(bytes: &[u8]) -> Result<DecodedChunk, EncodingError> {
    walk(bytes, 1, |_| true)
}

/// Decodes the pairs of the merchants that shard `shard` of `shards` owns
/// (`shard::shard_of(merchant, shards) == shard`), in (merchant, customer) order, skipping the
/// other merchants' pairs without reading them; the same pairs as [`decode`] then a filter. A
/// shard outside `0..shards` owns no merchant.
pub fn decode_shard(bytes: &[u8], shard: u32, shards: u32) -> Result<DecodedChunk, EncodingError> {
    walk(bytes, shards.max(1), |merchant| shard_of(merchant, shards) == shard)
}

/// Reads the header and every merchant's header, and the pairs of the merchants `keep` wants.
/// `shares` only sizes the result: about one pair in `shares` is expected to be kept.
fn walk(
    bytes: &[u8],
    shares: u32,
    mut keep: impl FnMut(&str) -> bool,
) -> Result<DecodedChunk, EncodingError> {
    let found = bytes.get(..MAGIC.len()).unwrap_or(bytes);
    if !MAGIC.starts_with(found) {
        return Err(EncodingError::BadMagic { found: found.to_vec() });
    }
    let mut reader = Reader::whole(bytes);
    reader.take(MAGIC.len(), "the magic")?;
    let version = reader.byte("the version")?;
    if version != VERSION {
        return Err(EncodingError::UnknownVersion { version });
    }
    let valid_rows = reader.u64("the valid rows")?;
    let merchants = reader.u64("the number of merchants")?;
    let pairs = reader.u64("the number of pairs")?;

    // A corrupt count must not reserve more than the bytes could hold.
    let room = reader.remaining() / MIN_PAIR_BYTES;
    let expected = usize::try_from(pairs).unwrap_or(usize::MAX).min(room);
    let mut out = Vec::with_capacity(expected / usize::try_from(shares).unwrap_or(1).max(1));

    let (mut rows_counted, mut pairs_counted): (u128, u128) = (0, 0);
    let mut previous: Option<&str> = None;
    let mut found_merchants: u64 = 0;
    while found_merchants < merchants {
        let offset = reader.offset();
        let merchant = reader.name("a merchant's name")?;
        if let Some(previous) = previous.filter(|p| *p >= merchant) {
            let (merchant, previous) = (merchant.to_owned(), previous.to_owned());
            return Err(EncodingError::MerchantOrder { offset, merchant, previous });
        }
        let rows = reader.u64("a merchant's rows")?;
        let group_pairs = reader.u64("a merchant's number of pairs")?;
        if group_pairs == 0 {
            return Err(EncodingError::EmptyMerchant { offset, merchant: merchant.to_owned() });
        }
        let length = reader.length("a merchant's length in bytes")?;
        let body_offset = reader.offset();
        let body = reader.take(length, "a merchant's pairs")?;
        if keep(merchant) {
            let group = Group { merchant, offset, rows, pairs: group_pairs };
            group.decode(Reader::group(body, body_offset), &mut out)?;
        }
        rows_counted = rows_counted.saturating_add(u128::from(rows));
        pairs_counted = pairs_counted.saturating_add(u128::from(group_pairs));
        found_merchants = found_merchants.saturating_add(1);
        previous = Some(merchant);
        if reader.remaining() == 0 && found_merchants < merchants {
            return Err(EncodingError::MerchantTotal { declared: merchants, found: found_merchants });
        }
    }
    if reader.remaining() != 0 {
        return Err(EncodingError::TrailingBytes { offset: reader.offset(), count: reader.remaining() });
    }
    if pairs_counted != u128::from(pairs) {
        return Err(EncodingError::PairTotal { declared: pairs, counted: pairs_counted });
    }
    if rows_counted != u128::from(valid_rows) {
        return Err(EncodingError::RowTotal { declared: valid_rows, counted: rows_counted });
    }
    Ok(DecodedChunk { valid_rows, pairs: out })
}

/// One merchant's header, read; its pairs follow.
struct Group<'a> {
    merchant: &'a str,
    /// Where the merchant's name starts.
    offset: usize,
    rows: u64,
    pairs: u64,
}

impl Group<'_> {
    fn decode(&self, mut reader: Reader<'_>, out: &mut Vec<PairAggregate>) -> Result<(), EncodingError> {
        let mut counted: u128 = 0;
        let mut found: u64 = 0;
        let mut previous: Option<&str> = None;
        while reader.remaining() > 0 && found < self.pairs {
            let offset = reader.offset();
            let customer = reader.name("a customer's name")?;
            if let Some(previous) = previous.filter(|p| *p >= customer) {
                return Err(EncodingError::CustomerOrder {
                    offset,
                    merchant: self.merchant.to_owned(),
                    customer: customer.to_owned(),
                    previous: previous.to_owned(),
                });
            }
            let count_offset = reader.offset();
            let count = reader.u64("a pair's count")?;
            if count == 0 {
                return Err(EncodingError::ZeroCount { offset: count_offset });
            }
            let amount_micros = reader.varint(128, "a pair's amount")?;
            let genders_offset = reader.offset();
            let bits = reader.byte("a pair's genders")?;
            if bits == 0 || bits > 0b1111 {
                return Err(EncodingError::BadGenders { offset: genders_offset, bits });
            }
            out.push(PairAggregate {
                merchant: self.merchant.to_owned(),
                customer: customer.to_owned(),
                count,
                amount_micros,
                genders: Genders::from_bits(bits),
            });
            counted = counted.saturating_add(u128::from(count));
            found = found.saturating_add(1);
            previous = Some(customer);
        }
        if found != self.pairs || reader.remaining() != 0 {
            return Err(EncodingError::GroupPairs {
                offset: self.offset,
                merchant: self.merchant.to_owned(),
                declared: self.pairs,
                length: reader.len(),
                found,
                left: reader.remaining(),
            });
        }
        if counted != u128::from(self.rows) {
            return Err(EncodingError::GroupRows {
                offset: self.offset,
                merchant: self.merchant.to_owned(),
                declared: self.rows,
                counted,
            });
        }
        Ok(())
    }
}

/// A cursor over the value or over one merchant's pairs, reporting offsets from the start of
/// the value.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    /// The offset of `bytes` in the value.
    base: usize,
    /// What ends `bytes`, for errors.
    limit: &'static str,
}

impl<'a> Reader<'a> {
    fn whole(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0, base: 0, limit: "the end of the value" }
    }

    fn group(bytes: &'a [u8], base: usize) -> Self {
        Self { bytes, at: 0, base, limit: "its merchant's length" }
    }

    fn offset(&self) -> usize {
        self.base.saturating_add(self.at)
    }

    fn len(&self) -> usize {
        self.bytes.len()
    }

    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.at)
    }

    fn truncated(&self, field: &'static str) -> EncodingError {
        EncodingError::Truncated { offset: self.offset(), field, limit: self.limit }
    }

    fn byte(&mut self, field: &'static str) -> Result<u8, EncodingError> {
        let byte = *self.bytes.get(self.at).ok_or_else(|| self.truncated(field))?;
        self.at = self.at.saturating_add(1);
        Ok(byte)
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], EncodingError> {
        let taken = self.at.checked_add(n).and_then(|end| self.bytes.get(self.at..end));
        let taken = taken.ok_or_else(|| self.truncated(field))?;
        self.at = self.at.saturating_add(n);
        Ok(taken)
    }

    /// A varint of at most `bits` bits, in its shortest form.
    fn varint(&mut self, bits: u32, field: &'static str) -> Result<u128, EncodingError> {
        // Most lengths and counts take one byte.
        if let Some(&byte) = self.bytes.get(self.at)
            && byte < 0x80
        {
            self.at = self.at.saturating_add(1);
            return Ok(u128::from(byte));
        }
        let start = self.offset();
        let mut value: u128 = 0;
        let mut shift: u32 = 0;
        loop {
            let byte = self.byte(field)?;
            let payload = u128::from(byte & 0x7f);
            // The bits of this byte that would land at or above `bits`.
            let room = bits.saturating_sub(shift);
            if room < 7 && payload >> room != 0 {
                return Err(EncodingError::VarintOverflow { offset: start, field, bits });
            }
            value |= payload.checked_shl(shift).unwrap_or(0);
            if byte & 0x80 == 0 {
                if byte == 0 && shift > 0 {
                    return Err(EncodingError::OverlongVarint { offset: start, field });
                }
                return Ok(value);
            }
            shift = shift.saturating_add(7);
        }
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, EncodingError> {
        let start = self.offset();
        let value = self.varint(64, field)?;
        u64::try_from(value).map_err(|_| EncodingError::VarintOverflow { offset: start, field, bits: 64 })
    }

    /// A length in bytes, which must fit in what is left.
    fn length(&mut self, field: &'static str) -> Result<usize, EncodingError> {
        let start = self.offset();
        let length = self.u64(field)?;
        match usize::try_from(length) {
            Ok(length) if length <= self.remaining() => Ok(length),
            _ => Err(EncodingError::Truncated { offset: start, field, limit: self.limit }),
        }
    }

    fn name(&mut self, field: &'static str) -> Result<&'a str, EncodingError> {
        let length = self.length(field)?;
        let start = self.offset();
        let bytes = self.take(length, field)?;
        std::str::from_utf8(bytes)
            .map_err(|e| EncodingError::NotUtf8 { offset: start.saturating_add(e.valid_up_to()), field })
    }
}

fn put_varint(out: &mut Vec<u8>, mut value: u128) {
    loop {
        let [low, ..] = value.to_le_bytes();
        let low = low & 0x7f;
        value >>= 7;
        if value == 0 {
            out.push(low);
            return;
        }
        out.push(low | 0x80);
    }
}

fn put_name(out: &mut Vec<u8>, name: &str) {
    put_varint(out, name.len() as u128);
    out.extend_from_slice(name.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(merchant: &str, customer: &str, count: u64, amount_micros: u128, bits: u8) -> PairAggregate {
        let (merchant, customer) = (merchant.to_owned(), customer.to_owned());
        PairAggregate { merchant, customer, count, amount_micros, genders: Genders::from_bits(bits) }
    }

    /// Two merchants (one with a non-ASCII name) sharing customer `C1`.
    fn sample() -> Vec<PairAggregate> {
        vec![
            pair("M1", "C1", 2, 300, 0b0001),
            pair("M1", "C2", 1, 0, 0b0110),
            pair("Mé", "C1", 4, 1_000_000, 0b1111),
        ]
    }

    /// `sample()`, written out by hand: the layout of version 1.
    const SAMPLE: [u8; 42] = [
        b'T', b'X', b'P', b'A', 1, // magic, version
        7, 2, 3, // valid rows, merchants, pairs
        2, b'M', b'1', 3, 2, 13, // "M1": 3 rows, 2 pairs, 13 bytes
        2, b'C', b'1', 2, 0xac, 0x02, 0b0001, // "C1": count 2, amount 300, F
        2, b'C', b'2', 1, 0, 0b0110, // "C2": count 1, amount 0, M and E
        3, b'M', 0xc3, 0xa9, 4, 1, 8, // "Mé": 4 rows, 1 pair, 8 bytes
        2, b'C', b'1', 4, 0xc0, 0x84, 0x3d, 0b1111, // "C1": count 4, amount 1,000,000, all four
    ];

    /// `SAMPLE` with the bytes at `at` replaced by `with`.
    fn patched(at: usize, remove: usize, with: &[u8]) -> Vec<u8> {
        let mut bytes = SAMPLE.to_vec();
        bytes.splice(at..at + remove, with.iter().copied());
        bytes
    }

    fn refused(bytes: &[u8]) -> EncodingError {
        let error = decode(bytes).unwrap_err();
        // The owner of the broken merchant meets the same error; with one shard, every shard does.
        assert_eq!(decode_shard(bytes, 0, 1).unwrap_err(), error);
        error
    }

    #[test]
    fn the_layout_of_version_1_is_pinned() {
        assert_eq!(encode(7, &sample()).unwrap(), SAMPLE);
        assert_eq!(decode(&SAMPLE).unwrap(), DecodedChunk { valid_rows: 7, pairs: sample() });
        let empty = encode(0, &[]).unwrap();
        assert_eq!(empty, [b'T', b'X', b'P', b'A', 1, 0, 0, 0]);
        assert_eq!(decode(&empty).unwrap(), DecodedChunk::default());
    }

    #[test]
    fn extreme_numbers_round_trip() {
        let pairs = vec![pair("m", "c", u64::MAX, u128::MAX, 0b1000)];
        let bytes = encode(u64::MAX, &pairs).unwrap();
        assert_eq!(decode(&bytes).unwrap(), DecodedChunk { valid_rows: u64::MAX, pairs });
    }

    #[test]
    fn a_shard_gets_its_merchants_pairs_only() {
        for shards in 0..8 {
            let mut all = Vec::new();
            for shard in 0..shards.max(1) {
                let part = decode_shard(&SAMPLE, shard, shards).unwrap();
                assert_eq!(part.valid_rows, 7);
                assert!(part.pairs.iter().all(|p| shard_of(&p.merchant, shards) == shard));
                all.extend(part.pairs);
            }
            all.sort();
            assert_eq!(all, sample());
            assert!(decode_shard(&SAMPLE, shards.max(1), shards).unwrap().pairs.is_empty());
        }
    }

    #[test]
    fn every_truncation_is_refused() {
        for end in 0..SAMPLE.len() {
            let bytes = &SAMPLE[..end];
            let error = refused(bytes);
            for shards in 1..4 {
                assert!((0..shards).any(|s| decode_shard(bytes, s, shards) == Err(error.clone())), "{end}");
            }
        }
        assert!(matches!(
            refused(&SAMPLE[..4]),
            EncodingError::Truncated { offset: 4, field: "the version", .. }
        ));
        // Cut inside the last pair: the value ends before the merchant's declared length.
        let error = refused(&SAMPLE[..40]);
        assert_eq!(error.to_string(), "byte 33: a merchant's length in bytes runs past the end of the value");
    }

    #[test]
    fn the_magic_and_the_version_are_checked() {
        let error = refused(b"TXPB\x01\x00\x00\x00");
        assert_eq!(error, EncodingError::BadMagic { found: b"TXPB".to_vec() });
        assert!(error.to_string().contains("not an encoded chunk aggregate"), "{error}");
        assert_eq!(refused(b"{}"), EncodingError::BadMagic { found: b"{}".to_vec() });
        assert!(matches!(refused(b"TX"), EncodingError::Truncated { offset: 0, field: "the magic", .. }));

        let error = refused(&patched(4, 1, &[2]));
        assert_eq!(error, EncodingError::UnknownVersion { version: 2 });
        assert_eq!(
            error.to_string(),
            "encoded chunk aggregate of version 2: this build reads version 1 only"
        );
        assert_eq!(refused(&patched(4, 1, &[0])), EncodingError::UnknownVersion { version: 0 });
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = SAMPLE.to_vec();
        bytes.extend_from_slice(&[0, 0]);
        assert_eq!(refused(&bytes), EncodingError::TrailingBytes { offset: 42, count: 2 });
        // One merchant declared, two present.
        assert_eq!(refused(&patched(6, 1, &[1])), EncodingError::TrailingBytes { offset: 27, count: 15 });
        // Three declared, two present.
        assert_eq!(refused(&patched(6, 1, &[3])), EncodingError::MerchantTotal { declared: 3, found: 2 });
    }

    #[test]
    fn names_must_be_utf8() {
        // "Mé" cut after its first byte, then "x": 0xc3 0x78.
        let error = refused(&patched(30, 1, b"x"));
        assert_eq!(error, EncodingError::NotUtf8 { offset: 29, field: "a merchant's name" });
        assert_eq!(error.to_string(), "byte 29: a merchant's name is not UTF-8");
        let error = refused(&patched(16, 1, &[0xff]));
        assert_eq!(error, EncodingError::NotUtf8 { offset: 16, field: "a customer's name" });
    }

    #[test]
    fn merchants_must_ascend_strictly() {
        // "Mé" renamed "M0", before "M1".
        let error = refused(&patched(27, 4, &[2, b'M', b'0']));
        assert_eq!(
            error,
            EncodingError::MerchantOrder { offset: 27, merchant: "M0".into(), previous: "M1".into() }
        );
        assert_eq!(error.to_string(), r#"byte 27: merchant "M0" does not come after merchant "M1""#);
        // Renamed "M1": the same merchant twice.
        assert!(matches!(refused(&patched(27, 4, &[2, b'M', b'1'])), EncodingError::MerchantOrder { .. }));
    }

    #[test]
    fn customers_must_ascend_strictly() {
        // "C2" renamed "C1": a repeated pair.
        let error = refused(&patched(23, 1, b"1"));
        assert_eq!(
            error,
            EncodingError::CustomerOrder {
                offset: 21,
                merchant: "M1".into(),
                customer: "C1".into(),
                previous: "C1".into()
            }
        );
        assert_eq!(
            error.to_string(),
            r#"byte 21: customer "C1" does not come after customer "C1" at merchant "M1""#
        );
        // Renamed "C0".
        assert!(matches!(refused(&patched(23, 1, b"0")), EncodingError::CustomerOrder { offset: 21, .. }));
    }

    #[test]
    fn a_merchant_has_pairs() {
        let bytes = [b"TXPA\x01\x00\x01\x00".as_slice(), &[1, b'm', 0, 0, 0]].concat();
        let error = refused(&bytes);
        assert_eq!(error, EncodingError::EmptyMerchant { offset: 8, merchant: "m".into() });
        assert_eq!(error.to_string(), r#"byte 8: merchant "m" has no pairs"#);
    }

    #[test]
    fn counts_and_genders_are_checked() {
        // "C2"'s count 0.
        let error = refused(&patched(24, 1, &[0]));
        assert_eq!(error, EncodingError::ZeroCount { offset: 24 });
        assert_eq!(error.to_string(), "byte 24: a pair's count is 0");
        let error = refused(&patched(26, 1, &[0]));
        assert_eq!(error, EncodingError::BadGenders { offset: 26, bits: 0 });
        assert_eq!(
            error.to_string(),
            "byte 26: genders 0b00000000 are not a non-empty set of F, M, E, U (0b0001 to 0b1111)"
        );
        assert_eq!(refused(&patched(26, 1, &[0x10])), EncodingError::BadGenders { offset: 26, bits: 0x10 });
        assert_eq!(refused(&patched(26, 1, &[0xff])), EncodingError::BadGenders { offset: 26, bits: 0xff });
    }

    #[test]
    fn varints_are_shortest_and_fit() {
        // Valid rows 7 written in two bytes.
        let bytes = patched(5, 1, &[0x87, 0x00]);
        let error = refused(&bytes);
        assert_eq!(error, EncodingError::OverlongVarint { offset: 5, field: "the valid rows" });
        assert_eq!(error.to_string(), "byte 5: the valid rows is a varint longer than its shortest form");
        // Amount 300 as 0xac 0x82 0x00.
        assert_eq!(
            refused(&patched(18, 2, &[0xac, 0x82, 0x00])),
            EncodingError::OverlongVarint { offset: 18, field: "a pair's amount" }
        );
        // Valid rows 2^64: ten bytes, the last carrying bit 64.
        let too_big = [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02];
        let error = refused(&patched(5, 1, &too_big));
        assert_eq!(error, EncodingError::VarintOverflow { offset: 5, field: "the valid rows", bits: 64 });
        assert_eq!(error.to_string(), "byte 5: the valid rows does not fit in 64 bits");
        // An amount of 2^128.
        let mut too_big = vec![0x80; 18];
        too_big.push(0x04);
        let mut bytes = patched(18, 2, &too_big);
        bytes[13] = 13 + 17; // "M1"'s length, to hold it
        assert_eq!(
            refused(&bytes),
            EncodingError::VarintOverflow { offset: 18, field: "a pair's amount", bits: 128 }
        );
        // A varint that never ends.
        assert!(matches!(
            refused(&[&SAMPLE[..5], &[0xff; 30]].concat()),
            EncodingError::VarintOverflow { offset: 5, .. }
        ));
    }

    #[test]
    fn lengths_stay_within_the_value_and_the_group() {
        // "M1"'s length 200, past the end.
        let error = refused(&patched(13, 1, &[0xc8, 0x01]));
        assert_eq!(
            error,
            EncodingError::Truncated {
                offset: 13,
                field: "a merchant's length in bytes",
                limit: "the end of the value"
            }
        );
        // A name length of 2^63.
        let huge = [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01];
        assert!(matches!(refused(&patched(8, 1, &huge)), EncodingError::Truncated { offset: 8, .. }));
        // "M1"'s length 12: its second pair's genders fall outside it.
        let error = refused(&patched(13, 1, &[12]));
        assert_eq!(
            error,
            EncodingError::Truncated {
                offset: 26,
                field: "a pair's genders",
                limit: "its merchant's length"
            }
        );
        assert_eq!(error.to_string(), "byte 26: a pair's genders runs past its merchant's length");
        // "M1" declares one pair but holds two; then three.
        let error = refused(&patched(12, 1, &[1]));
        assert_eq!(
            error,
            EncodingError::GroupPairs {
                offset: 8,
                merchant: "M1".into(),
                declared: 1,
                length: 13,
                found: 1,
                left: 6
            }
        );
        assert_eq!(
            error.to_string(),
            r#"byte 8: merchant "M1" declares 1 pairs in 13 bytes: 1 pairs read, 6 bytes left"#
        );
        assert!(matches!(
            refused(&patched(12, 1, &[3])),
            EncodingError::GroupPairs { declared: 3, found: 2, .. }
        ));
    }

    #[test]
    fn sums_must_match() {
        let error = refused(&patched(11, 1, &[4]));
        assert_eq!(
            error,
            EncodingError::GroupRows { offset: 8, merchant: "M1".into(), declared: 4, counted: 3 }
        );
        assert_eq!(error.to_string(), r#"byte 8: merchant "M1" declares 4 rows, but its pairs count 3"#);
        assert_eq!(refused(&patched(5, 1, &[8])), EncodingError::RowTotal { declared: 8, counted: 7 });
        assert_eq!(refused(&patched(7, 1, &[4])), EncodingError::PairTotal { declared: 4, counted: 3 });
        assert_eq!(
            refused(&patched(7, 1, &[4])).to_string(),
            "the value declares 4 pairs, but its merchants have 3"
        );
    }

    #[test]
    fn a_skipping_shard_checks_the_headers_only() {
        // "Mé"'s only pair has genders 0: refused by its owner and by decode, not by other shards.
        let bytes = patched(41, 1, &[0]);
        let owner = shard_of("Mé", 2);
        let refused = Err(EncodingError::BadGenders { offset: 41, bits: 0 });
        assert_eq!(decode_shard(&bytes, owner, 2), refused);
        assert_eq!(decode(&bytes), refused);
        let other = 1 - owner;
        let others: Vec<PairAggregate> =
            sample().into_iter().filter(|p| shard_of(&p.merchant, 2) == other).collect();
        assert_eq!(decode_shard(&bytes, other, 2).unwrap().pairs, others);
        // A header's error is every shard's.
        let bytes = patched(5, 1, &[8]);
        for shard in 0..2 {
            assert_eq!(
                decode_shard(&bytes, shard, 2),
                Err(EncodingError::RowTotal { declared: 8, counted: 7 })
            );
        }
    }

    #[test]
    fn encode_refuses_what_decode_would() {
        let mut pairs = sample();
        pairs.swap(0, 1);
        let error = encode(7, &pairs).unwrap_err();
        assert_eq!(error, EncodeError::OutOfOrder { index: 1, merchant: "M1".into(), customer: "C1".into() });
        assert_eq!(
            error.to_string(),
            r#"pair 1 ("M1", "C1") does not come after the pair before it: pairs must be sorted by (merchant, customer), each once"#
        );
        let mut pairs = sample();
        pairs[1].customer = "C1".into();
        assert!(matches!(encode(7, &pairs), Err(EncodeError::OutOfOrder { index: 1, .. })));
        let mut pairs = sample();
        pairs[2].count = 0;
        assert_eq!(encode(3, &pairs), Err(EncodeError::ZeroCount { index: 2 }));
        let mut pairs = sample();
        pairs[1].genders = Genders::default();
        assert_eq!(encode(7, &pairs), Err(EncodeError::NoGenders { index: 1 }));
        let error = encode(8, &sample()).unwrap_err();
        assert_eq!(error, EncodeError::RowsMismatch { valid_rows: 8, counted: 7 });
        assert_eq!(error.to_string(), "the pairs' counts add up to 7 rows, but the chunk has 8 valid rows");
        let pairs = vec![pair("m", "a", u64::MAX, 0, 1), pair("m", "b", 1, 0, 1)];
        assert!(matches!(encode(u64::MAX, &pairs), Err(EncodeError::RowsMismatch { .. })));
    }

    #[test]
    fn every_single_byte_change_is_decoded_or_refused_without_panic() {
        for at in 0..SAMPLE.len() {
            for value in 0..=u8::MAX {
                let mut bytes = SAMPLE;
                bytes[at] = value;
                if let Err(violation) = crate::fuzzing::check_encoding(&bytes) {
                    panic!("byte {at} set to {value:#04x}: {violation}");
                }
            }
        }
    }

    #[test]
    fn into_aggregate_keeps_the_pairs() {
        let aggregate = decode(&SAMPLE).unwrap().into_aggregate(9);
        assert_eq!((aggregate.index, aggregate.valid_rows, aggregate.rejected.len()), (9, 7, 0));
        assert_eq!(aggregate.pairs, sample());
    }
}
