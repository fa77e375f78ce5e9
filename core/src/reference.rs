//! The reference engine: docs/patterns.md written as directly as possible, to check the
//! incremental engine and any pipeline against. After each chunk it recomputes every statistic
//! from all valid rows so far and evaluates every condition for every pair and merchant.
//!
//! It shares only the row parser with the rest of the crate. Its arithmetic is its own: amounts
//! as `rust_decimal` decimals parsed from the text, means as exact rationals, cut-off ranks as
//! decimal ceilings. Clarity first; it is still fast enough for a full BankSim run in seconds.

use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::str::FromStr;

use num_rational::Ratio;
use rust_decimal::Decimal;

use crate::contract::{ContractError, Gender, Transaction, read_importance};
use crate::detection::{Detection, Pattern};
use crate::engine::EngineError;
use crate::thresholds::Thresholds;

/// A valid transaction row as the reference keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferenceRow {
    pub customer: String,
    pub merchant: String,
    pub gender: Gender,
    pub amount: Decimal,
}

impl ReferenceRow {
    /// Keeps what the patterns use of a valid row; the amount is re-read from its text.
    pub fn from_transaction(row: &Transaction<'_>) -> Self {
        Self {
            customer: row.customer.to_owned(),
            merchant: row.merchant.to_owned(),
            gender: row.gender,
            // The contract's amount pattern is always a valid decimal of at most 21 digits.
            amount: Decimal::from_str_exact(row.amount).unwrap_or(Decimal::MAX),
        }
    }
}

type Rational = Ratio<i128>;

/// An exact rational from a decimal.
fn rational(value: Decimal) -> Rational {
    Rational::new(value.mantissa(), 10_i128.pow(value.scale()))
}

/// `max(1, ceil(pct × n / 100))`, in decimal arithmetic.
fn cutoff_rank(pct: Decimal, n: usize) -> usize {
    let k = (pct * Decimal::from(n) / Decimal::ONE_HUNDRED).ceil();
    usize::try_from(k.mantissa() / 10_i128.pow(k.scale())).unwrap_or(usize::MAX).max(1)
}

/// The reference engine's state: every row so far, and the keys already emitted.
#[derive(Debug)]
pub struct ReferenceEngine {
    thresholds: Thresholds,
    top_pct: Decimal,
    bottom_pct: Decimal,
    max_avg_amount: Decimal,
    /// `w(c,m)` for every pair with at least one valid importance row, by merchant and customer.
    weights: HashMap<String, HashMap<String, Rational>>,
    rows: Vec<ReferenceRow>,
    emitted: HashSet<(Pattern, String, String)>,
    last_chunk: Option<u64>,
}

impl ReferenceEngine {
    /// Loads the importance file and starts with no rows.
    pub fn new<R: BufRead>(thresholds: Thresholds, importance: R) -> Result<Self, ContractError> {
        // Weights have at most 6 decimals: their decimal sum is exact (and saturates past 28
        // digits, far beyond any real file).
        let mut sums: HashMap<(String, String), (Decimal, i128)> = HashMap::new();
        read_importance(importance, |row| {
            if let Ok(row) = row {
                let weight = Decimal::from_str(row.weight).unwrap_or_default();
                let entry = sums
                    .entry((row.merchant.to_owned(), row.customer.to_owned()))
                    .or_insert((Decimal::ZERO, 0));
                entry.0 = entry.0.checked_add(weight).unwrap_or(Decimal::MAX);
                entry.1 += 1;
            }
        })?;
        let mut weights: HashMap<String, HashMap<String, Rational>> = HashMap::new();
        for ((merchant, customer), (sum, count)) in sums {
            weights.entry(merchant).or_default().insert(customer, rational(sum) / count);
        }
        let decimal = |text: String| Decimal::from_str(&text).unwrap_or_default();
        Ok(Self {
            top_pct: decimal(thresholds.upgrade_top_pct.to_string()),
            bottom_pct: decimal(thresholds.upgrade_bottom_pct.to_string()),
            max_avg_amount: decimal(thresholds.child_max_avg_amount.to_string()),
            thresholds,
            weights,
            rows: Vec::new(),
            emitted: HashSet::new(),
            last_chunk: None,
        })
    }

    /// Appends a chunk's valid rows, recomputes everything, and returns the new detections.
    pub fn apply(&mut self, chunk: u64, rows: Vec<ReferenceRow>) -> Result<Vec<Detection>, EngineError> {
        if let Some(last) = self.last_chunk
            && chunk <= last
        {
            return Err(EngineError::OutOfOrder { last, got: chunk });
        }
        self.last_chunk = Some(chunk);
        self.rows.extend(rows);
        let mut found: Vec<Detection> = self
            .holding()
            .into_iter()
            .filter(|(pattern, customer, merchant)| {
                !self.emitted.contains(&(*pattern, customer.clone(), merchant.clone()))
            })
            .map(|(pattern, customer, merchant)| Detection { chunk, pattern, customer, merchant })
            .collect();
        for d in &found {
            self.emitted.insert((d.pattern, d.customer.clone(), d.merchant.clone()));
        }
        found.sort_unstable();
        Ok(found)
    }

    /// Every key whose condition holds on all rows so far.
    fn holding(&self) -> Vec<(Pattern, String, String)> {
        let t = &self.thresholds;
        let mut merchants: HashMap<&str, MerchantStats<'_>> = HashMap::new();
        for row in &self.rows {
            let m = merchants.entry(&row.merchant).or_default();
            m.transactions += 1;
            let p = m.customers.entry(&row.customer).or_default();
            p.count += 1;
            // Past Decimal's 28 digits the sum saturates; far beyond any real stream.
            p.amount_sum = p.amount_sum.checked_add(row.amount).unwrap_or(Decimal::MAX);
            p.female |= row.gender == Gender::F;
            p.male |= row.gender == Gender::M;
        }
        let mut holding = Vec::new();
        for (merchant, stats) in &merchants {
            // CHILD: n > min_txns and the average strictly below the limit.
            for (customer, p) in &stats.customers {
                // average < limit, written without a division.
                let limit = self.max_avg_amount.checked_mul(Decimal::from(p.count));
                if p.count > t.child_min_txns && limit.is_none_or(|limit| p.amount_sum < limit) {
                    holding.push((Pattern::Child, (*customer).to_owned(), (*merchant).to_owned()));
                }
            }
            // DEI-NEEDED: F > min and F < M, counting distinct customers.
            let females = stats.customers.values().filter(|p| p.female).count() as u64;
            let males = stats.customers.values().filter(|p| p.male).count() as u64;
            if females > t.dei_min_female_customers && females < males {
                holding.push((Pattern::DeiNeeded, String::new(), (*merchant).to_owned()));
            }
            // UPGRADE.
            if stats.transactions <= t.upgrade_min_merchant_txns {
                continue;
            }
            let mut counts: Vec<u64> = stats.customers.values().map(|p| p.count).collect();
            counts.sort_unstable_by(|a, b| b.cmp(a));
            let count_cutoff = counts[cutoff_rank(self.top_pct, counts.len()).min(counts.len()) - 1];
            let weight_of = |customer: &str| self.weights.get(*merchant).and_then(|w| w.get(customer));
            let mut weights: Vec<Rational> =
                stats.customers.keys().filter_map(|c| weight_of(c).copied()).collect();
            if weights.is_empty() {
                continue;
            }
            weights.sort_unstable();
            let weight_cutoff = weights[cutoff_rank(self.bottom_pct, weights.len()).min(weights.len()) - 1];
            for (customer, p) in &stats.customers {
                if p.count >= count_cutoff && weight_of(customer).is_some_and(|w| *w <= weight_cutoff) {
                    holding.push((Pattern::Upgrade, (*customer).to_owned(), (*merchant).to_owned()));
                }
            }
        }
        holding
    }
}

#[derive(Debug, Default)]
struct MerchantStats<'a> {
    transactions: u64,
    customers: HashMap<&'a str, PairStats>,
}

#[derive(Debug, Default)]
struct PairStats {
    count: u64,
    amount_sum: Decimal,
    female: bool,
    male: bool,
}
