//! The chunk aggregate encoding (core/src/encoding.rs, issue 27): property tests that any valid
//! aggregate survives `encode` then `decode`, that a shard decodes exactly its merchants' pairs,
//! and that the encoding of a real chunk does too; and the fuzz target's seed corpus
//! (fuzz/corpus/encoding/), written by this test when `TXP_WRITE_ENCODING_CORPUS=1`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use txp_core::aggregate::{ChunkAggregate, Genders, PairAggregate};
use txp_core::encoding::{DecodedChunk, EncodeError, decode, decode_shard, encode};
use txp_core::generate::{GenerateOptions, generate};
use txp_core::shard::shard_of;

/// Any name: any chars (controls, NUL and non-ASCII included), often none.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => Just(String::new()),
        6 => proptest::collection::vec(any::<char>(), 1..6).prop_map(String::from_iter),
        3 => "'[CM][0-9]{1,10}'",
    ]
}

fn amount() -> impl Strategy<Value = u128> {
    prop_oneof![3 => 0..100_000_000u128, 1 => any::<u128>(), 1 => Just(u128::MAX)]
}

/// A valid aggregate: pairs over a few merchants and customers (so customers recur under several
/// merchants), counts from 1 to `u64::MAX` (one pair takes the rows to exactly `u64::MAX` when
/// `fill` is set), any amounts, non-empty gender sets.
fn aggregate() -> impl Strategy<Value = DecodedChunk> {
    let merchants = proptest::collection::vec(name(), 1..6);
    let customers = proptest::collection::vec(name(), 1..12);
    let pairs =
        proptest::collection::vec((any::<usize>(), any::<usize>(), 1..1000u64, amount(), 1..16u8), 0..40);
    (merchants, customers, pairs, any::<bool>(), any::<usize>()).prop_map(
        |(merchants, customers, picks, fill, filled)| {
            let mut figures: BTreeMap<(String, String), (u64, u128, u8)> = BTreeMap::new();
            for (m, c, count, amount, bits) in picks {
                let key = (merchants[m % merchants.len()].clone(), customers[c % customers.len()].clone());
                figures.entry(key).or_insert((count, amount, bits));
            }
            let mut pairs: Vec<PairAggregate> = figures
                .into_iter()
                .map(|((merchant, customer), (count, amount_micros, bits))| PairAggregate {
                    merchant,
                    customer,
                    count,
                    amount_micros,
                    genders: Genders::from_bits(bits),
                })
                .collect();
            let mut valid_rows: u64 = pairs.iter().map(|p| p.count).sum();
            if fill && !pairs.is_empty() {
                let at = filled % pairs.len();
                pairs[at].count += u64::MAX - valid_rows;
                valid_rows = u64::MAX;
            }
            DecodedChunk { valid_rows, pairs }
        },
    )
}

fn shard_filter(chunk: &DecodedChunk, shard: u32, shards: u32) -> DecodedChunk {
    let pairs = chunk.pairs.iter().filter(|p| shard_of(&p.merchant, shards) == shard).cloned().collect();
    DecodedChunk { valid_rows: chunk.valid_rows, pairs }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// decode(encode(x)) == x, and each shard of 1 to 8 gets decode's pairs filtered by owner.
    #[test]
    fn an_aggregate_survives_encoding_and_shards_split_it(chunk in aggregate(), shards in 1..=8u32) {
        let bytes = encode(chunk.valid_rows, &chunk.pairs).unwrap();
        prop_assert_eq!(decode(&bytes), Ok(chunk.clone()));
        let mut together = Vec::new();
        for shard in 0..shards {
            let part = decode_shard(&bytes, shard, shards).unwrap();
            prop_assert_eq!(&part, &shard_filter(&chunk, shard, shards));
            together.extend(part.pairs);
        }
        together.sort();
        prop_assert_eq!(together, chunk.pairs);
        prop_assert!(txp_core::fuzzing::check_encoding(&bytes).is_ok());
    }

    /// Any cut of a valid value is refused, and any change of one byte is refused or decodes to
    /// what re-encodes to exactly the changed bytes; never a panic.
    #[test]
    fn a_cut_or_a_changed_byte_is_refused_or_canonical(chunk in aggregate(), at in any::<usize>(), value in any::<u8>()) {
        let bytes = encode(chunk.valid_rows, &chunk.pairs).unwrap();
        let at = at % bytes.len();
        prop_assert!(decode(&bytes[..at]).is_err());
        let mut changed = bytes.clone();
        changed[at] = value;
        if let Err(violation) = txp_core::fuzzing::check_encoding(&changed) {
            return Err(TestCaseError::fail(violation));
        }
    }

    /// Unsorted or repeated pairs and wrong totals are refused by encode.
    #[test]
    fn encode_refuses_an_unsorted_aggregate(chunk in aggregate(), a in any::<usize>(), b in any::<usize>()) {
        prop_assume!(chunk.pairs.len() >= 2);
        let (a, b) = (a % chunk.pairs.len(), b % chunk.pairs.len());
        prop_assume!(a != b);
        let mut pairs = chunk.pairs.clone();
        pairs.swap(a, b);
        let refused = matches!(encode(chunk.valid_rows, &pairs), Err(EncodeError::OutOfOrder { .. }));
        prop_assert!(refused);
        pairs = chunk.pairs.clone();
        pairs[b] = pairs[a].clone();
        prop_assert!(encode(chunk.valid_rows, &pairs).is_err());
        let wrong = chunk.valid_rows.wrapping_add(1);
        let refused = matches!(encode(wrong, &chunk.pairs), Err(EncodeError::RowsMismatch { .. }));
        prop_assert!(refused);
    }
}

/// The chunks of a generated dataset of `rows` rows (seed 0), 10,000 rows each, aggregated.
fn generated(rows: u64) -> Vec<ChunkAggregate> {
    let (mut transactions, mut importance) = (Vec::new(), Vec::new());
    let options = GenerateOptions { rows, ..GenerateOptions::default() };
    generate(&mut transactions, &mut importance, &options, &mut |_| {}).unwrap();
    let mut lines = transactions.split_inclusive(|&b| b == b'\n');
    let header = lines.next().unwrap().to_vec();
    let rows: Vec<&[u8]> = lines.collect();
    rows.chunks(10_000)
        .enumerate()
        .map(|(index, rows)| {
            let chunk = [header.clone(), rows.concat()].concat();
            ChunkAggregate::from_part(index as u64, "part-00000.csv", &chunk[..]).unwrap()
        })
        .collect()
}

#[test]
fn a_generated_chunk_survives_encoding_and_sharding() {
    let aggregate = generated(30_000).swap_remove(1);
    assert_eq!(aggregate.valid_rows, 10_000);
    let bytes = encode(aggregate.valid_rows, &aggregate.pairs).unwrap();
    // Names written once per pair: well under the ~48 bytes a COPY text row takes.
    assert!(
        bytes.len() < aggregate.pairs.len() * 20,
        "{} bytes for {} pairs",
        bytes.len(),
        aggregate.pairs.len()
    );
    let decoded = decode(&bytes).unwrap();
    assert_eq!(decoded.clone().into_aggregate(1), ChunkAggregate { rejected: Vec::new(), ..aggregate });
    for shards in [1, 2, 4, 7] {
        let mut together = Vec::new();
        for shard in 0..shards {
            let part = decode_shard(&bytes, shard, shards).unwrap();
            assert_eq!(part, shard_filter(&decoded, shard, shards));
            together.extend(part.pairs);
        }
        together.sort();
        assert_eq!(together, decoded.pairs);
    }
}

fn pair(merchant: &str, customer: &str, count: u64, amount_micros: u128, bits: u8) -> PairAggregate {
    let (merchant, customer) = (merchant.to_owned(), customer.to_owned());
    PairAggregate { merchant, customer, count, amount_micros, genders: Genders::from_bits(bits) }
}

/// The seed corpus of the `encoding` fuzz target: valid values, then broken ones.
fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let small = vec![
        pair("'M1'", "'C1'", 2, 300, 0b0001),
        pair("'M1'", "'C2'", 1, 0, 0b0110),
        pair("'Mé'", "'C1'", 4, 1_000_000, 0b1111),
    ];
    let small = encode(7, &small).unwrap();
    let odd_names = vec![
        pair("", "", 1, 1, 0b0001),
        pair("", "\0", 1, 2, 0b0010),
        pair("tab\there", "line\nend", 3, 3, 0b0100),
        pair("😀", "\u{7f}", 1, u128::from(u64::MAX) + 1, 0b1000),
    ];
    let max = vec![pair("'M'", "'C'", u64::MAX, u128::MAX, 0b1111)];
    // A chunk of 2,000 generated rows (the first, whole, of a 2,000-row dataset).
    let real = generated(2_000).swap_remove(0);

    let mut unknown_version = small.clone();
    unknown_version[4] = 2;
    let truncated = small[..small.len() - 3].to_vec();
    let mut trailing = small.clone();
    trailing.push(0);
    // "'C1'" and "'C2'" of merchant "'M1'" swapped (same lengths): customers out of order.
    let mut out_of_order = small.clone();
    let first = small.windows(4).position(|w| w == b"'C1'").unwrap();
    let second = small.windows(4).position(|w| w == b"'C2'").unwrap();
    out_of_order[first + 2] = b'2';
    out_of_order[second + 2] = b'1';
    // The valid rows (7, one byte at offset 5) in two bytes.
    let overlong = [&small[..5], &[0x87, 0x00], &small[6..]].concat();

    vec![
        ("empty.bin", encode(0, &[]).unwrap()),
        ("small.bin", small),
        ("odd_names.bin", encode(6, &odd_names).unwrap()),
        ("max_numbers.bin", encode(u64::MAX, &max).unwrap()),
        ("generated_2000_rows.bin", encode(real.valid_rows, &real.pairs).unwrap()),
        ("unknown_version.bin", unknown_version),
        ("truncated.bin", truncated),
        ("trailing_byte.bin", trailing),
        ("out_of_order.bin", out_of_order),
        ("overlong_varint.bin", overlong),
    ]
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/encoding")
}

/// The committed seeds are exactly what this build writes (but for the generated chunk): version
/// 1's bytes do not change unnoticed. `TXP_WRITE_ENCODING_CORPUS=1 cargo test -p txp-core --test encoding` rewrites them.
#[test]
fn the_seed_corpus_is_what_this_build_writes() {
    let seeds = seeds();
    let dir = corpus_dir();
    if std::env::var_os("TXP_WRITE_ENCODING_CORPUS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in &seeds {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
    let mut committed: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    committed.sort();
    let mut names: Vec<String> = seeds.iter().map(|(name, _)| (*name).to_owned()).collect();
    names.sort();
    assert_eq!(committed, names, "fuzz/corpus/encoding holds other files than seeds() writes");
    for (name, bytes) in &seeds {
        let committed = std::fs::read(dir.join(name)).unwrap();
        // The generated chunk follows the generator, which may change: it only has to decode.
        if name.starts_with("generated") {
            assert!(decode(&committed).is_ok(), "{name}");
            continue;
        }
        assert_eq!(&committed, bytes, "{name} differs from what this build writes");
        let valid = !["unknown_version", "truncated", "trailing", "out_of_order", "overlong"]
            .iter()
            .any(|broken| name.starts_with(broken));
        assert_eq!(decode(bytes).is_ok(), valid, "{name}");
    }
}
