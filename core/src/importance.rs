//! Importance weights (docs/patterns.md §2, `w(c,m)`): the valid rows of an importance file
//! summed per (customer, merchant) pair, so that a pair's mean weight is the exact rational
//! `sum / count`. Loaded once per run.

use std::io::BufRead;

use crate::FastMap;
use crate::contract::{ContractError, Rejection, read_importance};

/// The sum and count of a pair's weights, in micro-units: its mean is `sum / count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WeightSum {
    pub sum_micros: i128,
    pub count: u64,
}

/// Every pair's weights, by merchant then customer, and the importance rows that were rejected.
#[derive(Debug, Clone, Default)]
pub struct ImportanceTable {
    by_merchant: FastMap<Box<str>, FastMap<Box<str>, WeightSum>>,
    rejected: Vec<Rejection>,
    valid_rows: u64,
}

impl ImportanceTable {
    /// Reads an importance file (`Source,Target,Weight,typeTrans,fraud`).
    pub fn read<R: BufRead>(reader: R) -> Result<Self, ContractError> {
        let mut table = Self::default();
        read_importance(reader, |row| match row {
            Ok(row) => table.add(row.customer, row.merchant, row.weight_micros),
            Err(rejection) => table.rejected.push(rejection),
        })?;
        Ok(table)
    }

    /// Adds one weight to a pair.
    pub fn add(&mut self, customer: &str, merchant: &str, weight_micros: i128) {
        let customers = match self.by_merchant.get_mut(merchant) {
            Some(customers) => customers,
            None => self.by_merchant.entry(merchant.into()).or_default(),
        };
        let entry = match customers.get_mut(customer) {
            Some(entry) => entry,
            None => customers.entry(customer.into()).or_default(),
        };
        entry.sum_micros = entry.sum_micros.saturating_add(weight_micros);
        entry.count += 1;
        self.valid_rows += 1;
    }

    /// The weights of one merchant's customers.
    pub fn merchant(&self, merchant: &str) -> Option<&FastMap<Box<str>, WeightSum>> {
        self.by_merchant.get(merchant)
    }

    /// Every merchant with at least one weighted pair.
    pub fn merchants(&self) -> impl Iterator<Item = (&str, &FastMap<Box<str>, WeightSum>)> {
        self.by_merchant.iter().map(|(m, c)| (&**m, c))
    }

    /// The rows that broke the contract.
    pub fn rejected(&self) -> &[Rejection] {
        &self.rejected
    }

    /// How many valid rows were read.
    pub fn valid_rows(&self) -> u64 {
        self.valid_rows
    }

    /// How many distinct (customer, merchant) pairs have a weight.
    pub fn pairs(&self) -> usize {
        self.by_merchant.values().map(|customers| customers.len()).sum()
    }
}
