//! A chunk turned into what the engines need: per (merchant, customer) pair, the number of valid
//! rows, the exact sum of their amounts and the genders seen; plus every rejected row, for the
//! quarantine. This is what a consumer commits, and what the incremental engine folds.

use std::io::BufRead;

use crate::FastMap;
use crate::contract::{ContractError, Gender, OnWrongHeader, Rejection, Transaction, read_transactions};

/// The set of genders seen on a pair's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Genders(u8);

impl Genders {
    fn bit(gender: Gender) -> u8 {
        match gender {
            Gender::F => 1,
            Gender::M => 2,
            Gender::E => 4,
            Gender::U => 8,
        }
    }

    /// The set holding one gender.
    pub fn of(gender: Gender) -> Self {
        Self(Self::bit(gender))
    }

    /// Adds a gender.
    pub fn insert(&mut self, gender: Gender) {
        self.0 |= Self::bit(gender);
    }

    /// Both sets together.
    pub fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    pub fn contains(self, gender: Gender) -> bool {
        self.0 & Self::bit(gender) != 0
    }

    /// The set as a bit mask (F = 1, M = 2, E = 4, U = 8), for storage.
    pub fn bits(self) -> u8 {
        self.0
    }

    /// The set from [`Genders::bits`]; unknown bits are dropped.
    pub fn from_bits(bits: u8) -> Self {
        Self(bits & 0b1111)
    }
}

/// One pair's figures within one chunk.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PairAggregate {
    pub merchant: String,
    pub customer: String,
    /// Valid rows of the pair in the chunk.
    pub count: u64,
    /// Their amounts, summed exactly, in micro-units.
    pub amount_micros: u128,
    pub genders: Genders,
}

/// A rejected row and the part file it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantinedRow {
    pub part: String,
    pub rejection: Rejection,
}

/// One chunk, aggregated. Pairs are sorted by (merchant, customer).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChunkAggregate {
    pub index: u64,
    pub valid_rows: u64,
    pub pairs: Vec<PairAggregate>,
    pub rejected: Vec<QuarantinedRow>,
}

impl ChunkAggregate {
    /// Aggregates a chunk made of one part file.
    pub fn from_part(index: u64, part: &str, bytes: &[u8]) -> Result<Self, ContractError> {
        let mut aggregator = ChunkAggregator::new(index);
        aggregator.add_part(part, bytes)?;
        Ok(aggregator.finish())
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Figures {
    count: u64,
    amount_micros: u128,
    genders: Genders,
}

/// Builds a [`ChunkAggregate`] from a chunk's part files.
#[derive(Debug)]
pub struct ChunkAggregator {
    index: u64,
    valid_rows: u64,
    // Two levels so that a row is looked up by borrowed `&str`s, allocating only new pairs.
    pairs: FastMap<Box<str>, FastMap<Box<str>, Figures>>,
    rejected: Vec<QuarantinedRow>,
}

impl ChunkAggregator {
    pub fn new(index: u64) -> Self {
        Self { index, valid_rows: 0, pairs: FastMap::default(), rejected: Vec::new() }
    }

    /// Reads one part file. A wrong header rejects every line of the part (the stream goes on);
    /// only a read failure is an error.
    pub fn add_part<R: BufRead>(&mut self, part: &str, reader: R) -> Result<(), ContractError> {
        read_transactions(reader, OnWrongHeader::RejectAll, |row| match row {
            Ok(transaction) => self.add_row(&transaction),
            Err(rejection) => self.rejected.push(QuarantinedRow { part: part.to_owned(), rejection }),
        })
    }

    /// Adds one valid row.
    pub fn add_row(&mut self, row: &Transaction<'_>) {
        let customers = match self.pairs.get_mut(row.merchant) {
            Some(customers) => customers,
            None => self.pairs.entry(row.merchant.into()).or_default(),
        };
        let figures = match customers.get_mut(row.customer) {
            Some(figures) => figures,
            None => customers.entry(row.customer.into()).or_default(),
        };
        figures.count += 1;
        // Each amount is below 10^21 micro-units: u128 cannot overflow before 3 × 10^17 rows.
        figures.amount_micros = figures.amount_micros.saturating_add(row.amount_micros);
        figures.genders.insert(row.gender);
        self.valid_rows += 1;
    }

    /// The aggregate, pairs sorted by (merchant, customer).
    pub fn finish(self) -> ChunkAggregate {
        let mut pairs: Vec<PairAggregate> = self
            .pairs
            .into_iter()
            .flat_map(|(merchant, customers)| {
                customers.into_iter().map(move |(customer, f)| PairAggregate {
                    merchant: merchant.to_string(),
                    customer: customer.into_string(),
                    count: f.count,
                    amount_micros: f.amount_micros,
                    genders: f.genders,
                })
            })
            .collect();
        pairs.sort_unstable();
        ChunkAggregate { index: self.index, valid_rows: self.valid_rows, pairs, rejected: self.rejected }
    }
}
