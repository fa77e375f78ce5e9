//! The incremental engine: folds one chunk's pair aggregates into the running state and returns
//! that chunk's new detections (docs/patterns.md §2–§4).
//!
//! Its cost is proportional to the chunk plus the merchants the chunk touches, never to all
//! customers of a merchant:
//! - a merchant untouched by a chunk has the same state as before, so none of its conditions can
//!   change; only touched pairs (CHILD) and touched merchants (DEI-NEEDED, UPGRADE) are evaluated;
//! - UPGRADE's count cut-off, the k-th largest `n(c,m)`, comes from a Fenwick tree over the
//!   multiset of counts;
//! - `w(c,m)` depends only on the importance file, so each merchant's weighted customers are
//!   ranked once by mean weight; a Fenwick tree over those ranks marks who is a customer so far
//!   (the j-th smallest mean is its j-th marked rank), and a max-tree over the same ranks holds
//!   `n(c,m)` of customers not yet detected, so "every customer with a mean at or below the
//!   cut-off and a count at or above the other" is a walk down that tree per detection.
//!
//! Means are compared by cross-multiplication; amounts are integer micro-units; no float is used.

use std::cmp::Ordering;
use std::collections::HashSet;

use crate::FastMap;
use crate::aggregate::{ChunkAggregate, Genders, PairAggregate};
use crate::contract::Gender;
use crate::detection::{Detection, Pattern};
use crate::importance::{ImportanceTable, WeightSum};
use crate::order_stats::{Fenwick, MaxTree};
use crate::thresholds::Thresholds;

/// Why a chunk could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error("chunk {got} arrived after chunk {last}: chunks must be applied in ascending index order")]
    OutOfOrder { last: u64, got: u64 },
}

/// Compares two means `a.sum / a.count` and `b.sum / b.count` exactly.
pub fn compare_means(a: WeightSum, b: WeightSum) -> Ordering {
    let (a_count, b_count) = (i128::from(a.count.max(1)), i128::from(b.count.max(1)));
    match (a.sum_micros.checked_mul(b_count), b.sum_micros.checked_mul(a_count)) {
        (Some(left), Some(right)) => left.cmp(&right),
        // Beyond i128: compare the integer parts, then the remainders, without overflow.
        _ => compare_fractions(a.sum_micros, a_count, b.sum_micros, b_count),
    }
}

/// Compares `an / ad` with `bn / bd` (positive denominators) by continued fractions.
fn compare_fractions(an: i128, ad: i128, bn: i128, bd: i128) -> Ordering {
    let (aq, ar) = (an.div_euclid(ad), an.rem_euclid(ad));
    let (bq, br) = (bn.div_euclid(bd), bn.rem_euclid(bd));
    match aq.cmp(&bq) {
        Ordering::Equal => match (ar == 0, br == 0) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            // ar/ad vs br/bd, both in (0, 1): compare the reciprocals, reversed.
            (false, false) => compare_fractions(bd, br, ad, ar),
        },
        other => other,
    }
}

#[derive(Debug, Default)]
struct Pair {
    count: u64,
    amount_micros: u128,
    genders: Genders,
    /// The pair's rank among the merchant's weighted customers; `None` when `w(c,m)` is undefined.
    weight_rank: Option<usize>,
    upgrade_emitted: bool,
    child_emitted: bool,
}

/// A merchant's weighted customers, ranked by mean weight (ascending), and who of them is a
/// customer so far.
#[derive(Debug)]
struct WeightIndex {
    customers: Vec<Box<str>>,
    rank: FastMap<Box<str>, usize>,
    /// For each rank, the last rank with an equal mean: ties at the cut-off all qualify.
    tie_end: Vec<usize>,
    /// Ranks (1-based positions) of weighted customers with `n(c,m) >= 1`.
    present: Fenwick,
    /// `n(c,m)` per rank for customers not yet detected as UPGRADE; 0 otherwise.
    candidates: MaxTree,
}

impl WeightIndex {
    fn new(weights: Option<&FastMap<Box<str>, WeightSum>>) -> Self {
        let mut ranked: Vec<(&Box<str>, WeightSum)> =
            weights.map(|w| w.iter().map(|(c, s)| (c, *s)).collect()).unwrap_or_default();
        ranked.sort_by(|a, b| compare_means(a.1, b.1).then_with(|| a.0.cmp(b.0)));
        let mut tie_end = vec![0; ranked.len()];
        for i in (0..ranked.len()).rev() {
            let same_as_next =
                ranked.get(i + 1).is_some_and(|next| compare_means(ranked[i].1, next.1).is_eq());
            tie_end[i] = if same_as_next { tie_end[i + 1] } else { i };
        }
        let customers: Vec<Box<str>> = ranked.iter().map(|(c, _)| (*c).clone()).collect();
        let rank = customers.iter().enumerate().map(|(i, c)| (c.clone(), i)).collect();
        Self {
            present: Fenwick::new(customers.len()),
            candidates: MaxTree::new(customers.len()),
            customers,
            rank,
            tie_end,
        }
    }
}

#[derive(Debug)]
struct Merchant {
    transactions: u64,
    customers: FastMap<Box<str>, Pair>,
    /// The multiset `{ n(c,m) }`, by value.
    counts: Fenwick,
    female_customers: u64,
    male_customers: u64,
    dei_emitted: bool,
    weights: WeightIndex,
}

/// The figures that made a detection, as they stand right after the chunk that made it
/// (docs/patterns.md §2): what a user checks a detection against. Amounts and weights are exact
/// decimal text; a mean is its sum and count, never a rounded quotient.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Figures {
    /// `n(c,m)`: the pair's transactions (UPGRADE, CHILD).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pair_txns: Option<u64>,
    /// The pair's amount sum (CHILD; the average is `pair_amount / pair_txns`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pair_amount: Option<String>,
    /// `N(m)`: the merchant's transactions.
    pub merchant_txns: u64,
    /// The merchant's distinct customers.
    pub merchant_customers: u64,
    /// Customers of the merchant seen with gender F, and with M (DEI-NEEDED).
    pub female_customers: u64,
    pub male_customers: u64,
    /// UPGRADE: `k`, the rank of the count cut-off, and the cut-off (the k-th largest count).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub k: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub count_cutoff: Option<u64>,
    /// UPGRADE: `j`, the rank of the weight cut-off among weighted customers, and the cut-off
    /// mean as `[sum, count]`; the pair's own mean weight the same way.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub j: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub weight_cutoff: Option<(String, u64)>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pair_weight: Option<(String, u64)>,
}

/// UPGRADE's cut-offs of a merchant.
#[derive(Debug, Clone, Copy)]
struct UpgradeCutoffs {
    k: u64,
    count_cutoff: u64,
    j: u64,
    /// The weight rank (0-based) of the j-th smallest mean among present customers.
    weight_cutoff_rank: usize,
}

fn weight_text(w: WeightSum) -> (String, u64) {
    (crate::decimal::format_micros(w.sum_micros), w.count)
}

/// The running state of one stream and the detections emitted so far.
#[derive(Debug)]
pub struct Engine {
    thresholds: Thresholds,
    importance: ImportanceTable,
    merchants: FastMap<Box<str>, Merchant>,
    last_chunk: Option<u64>,
    detections: u64,
    /// Pairs changed since the last [`take_changes`](Engine::take_changes), by merchant.
    changed: FastMap<Box<str>, HashSet<Box<str>>>,
}

/// A merchant's running statistics (docs/patterns.md §2), as persisted for users to query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerchantStats {
    pub merchant: String,
    /// `N(m)`.
    pub transactions: u64,
    pub customers: u64,
    pub female_customers: u64,
    pub male_customers: u64,
}

/// The running statistics changed since the last call: each changed pair's running totals
/// (count, exact amount sum, genders seen) and each touched merchant's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineChanges {
    pub pairs: Vec<PairAggregate>,
    pub merchants: Vec<MerchantStats>,
}

/// Why a persisted state could not be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the persisted statistics do not match the recorded detections: {0} holds now but was never emitted")]
pub struct RestoreError(pub String);

impl Engine {
    /// An engine with no chunk applied yet.
    pub fn new(thresholds: Thresholds, importance: ImportanceTable) -> Self {
        Self {
            thresholds,
            importance,
            merchants: FastMap::default(),
            last_chunk: None,
            detections: 0,
            changed: FastMap::default(),
        }
    }

    /// An engine as it stood after `last_chunk`, from the running totals of every pair (as
    /// [`take_changes`](Self::take_changes) gave them) and the keys emitted through that chunk.
    /// Every derived figure (merchant counts, genders, cut-offs) follows from the pairs. As a
    /// check, every condition that holds in the restored state must be among the emitted keys:
    /// the engine evaluates a merchant whenever it changes, so nothing can hold unemitted.
    pub fn restore(
        thresholds: Thresholds,
        importance: ImportanceTable,
        pairs: Vec<PairAggregate>,
        emitted: &HashSet<(Pattern, String, String)>,
        last_chunk: u64,
    ) -> Result<Self, RestoreError> {
        let mut engine = Self::new(thresholds, importance);
        let state = ChunkAggregate { index: last_chunk, pairs, ..ChunkAggregate::default() };
        let holding = engine.apply(&state).map_err(|e| RestoreError(e.to_string()))?;
        for d in &holding {
            if !emitted.contains(&(d.pattern, d.customer.clone(), d.merchant.clone())) {
                return Err(RestoreError(format!("{} {} {}", d.pattern, d.customer, d.merchant)));
            }
        }
        // Conditions that held once and no longer do are emitted too: mark them.
        for (pattern, customer, merchant) in emitted {
            let Some(m) = engine.merchants.get_mut(merchant.as_str()) else { continue };
            match pattern {
                Pattern::DeiNeeded => m.dei_emitted = true,
                Pattern::Child | Pattern::Upgrade => {
                    let Some(pair) = m.customers.get_mut(customer.as_str()) else { continue };
                    if *pattern == Pattern::Child {
                        pair.child_emitted = true;
                    } else {
                        pair.upgrade_emitted = true;
                        if let Some(rank) = pair.weight_rank {
                            m.weights.candidates.set(rank, 0);
                        }
                    }
                }
            }
        }
        engine.detections = emitted.len() as u64;
        engine.changed.clear();
        Ok(engine)
    }

    /// The running statistics changed since the last call (see [`EngineChanges`]).
    pub fn take_changes(&mut self) -> EngineChanges {
        let mut changes = EngineChanges::default();
        for (name, customers) in std::mem::take(&mut self.changed) {
            let Some(merchant) = self.merchants.get(&name) else { continue };
            for customer in customers {
                if let Some(pair) = merchant.customers.get(&customer) {
                    changes.pairs.push(PairAggregate {
                        merchant: name.to_string(),
                        customer: customer.to_string(),
                        count: pair.count,
                        amount_micros: pair.amount_micros,
                        genders: pair.genders,
                    });
                }
            }
            changes.merchants.push(MerchantStats {
                merchant: name.to_string(),
                transactions: merchant.transactions,
                customers: merchant.customers.len() as u64,
                female_customers: merchant.female_customers,
                male_customers: merchant.male_customers,
            });
        }
        changes.pairs.sort_unstable();
        changes.merchants.sort_unstable_by(|a, b| a.merchant.cmp(&b.merchant));
        changes
    }

    /// The thresholds in force.
    pub fn thresholds(&self) -> &Thresholds {
        &self.thresholds
    }

    /// The last chunk applied.
    pub fn last_chunk(&self) -> Option<u64> {
        self.last_chunk
    }

    /// How many detections have been emitted in all.
    pub fn detections(&self) -> u64 {
        self.detections
    }

    /// Applies one chunk and returns its new detections, ordered by key.
    pub fn apply(&mut self, chunk: &ChunkAggregate) -> Result<Vec<Detection>, EngineError> {
        if let Some(last) = self.last_chunk
            && chunk.index <= last
        {
            return Err(EngineError::OutOfOrder { last, got: chunk.index });
        }
        self.last_chunk = Some(chunk.index);
        let mut found = Vec::new();
        let mut touched: Vec<&str> = Vec::new();
        let mut seen: HashSet<&str> = HashSet::new();
        for pair in &chunk.pairs {
            if seen.insert(&pair.merchant) {
                touched.push(&pair.merchant);
            }
            self.apply_pair(chunk.index, pair, &mut found);
            let changed = match self.changed.get_mut(pair.merchant.as_str()) {
                Some(changed) => changed,
                None => self.changed.entry(pair.merchant.as_str().into()).or_default(),
            };
            changed.insert(pair.customer.as_str().into());
        }
        for name in touched {
            if let Some(merchant) = self.merchants.get_mut(name) {
                merchant.evaluate(name, &self.thresholds, chunk.index, &mut found);
            }
        }
        found.sort_unstable();
        self.detections += found.len() as u64;
        Ok(found)
    }

    /// The figures behind a detection of the last chunk applied (see [`Figures`]); `None` for a
    /// merchant the engine has not seen.
    pub fn figures(&self, detection: &Detection) -> Option<Figures> {
        let merchant = self.merchants.get(detection.merchant.as_str())?;
        let pair = merchant.customers.get(detection.customer.as_str());
        let mut figures = Figures {
            pair_txns: pair.map(|p| p.count),
            pair_amount: pair
                .map(|p| crate::decimal::format_micros(i128::try_from(p.amount_micros).unwrap_or(i128::MAX))),
            merchant_txns: merchant.transactions,
            merchant_customers: merchant.customers.len() as u64,
            female_customers: merchant.female_customers,
            male_customers: merchant.male_customers,
            k: None,
            count_cutoff: None,
            j: None,
            weight_cutoff: None,
            pair_weight: None,
        };
        if detection.pattern == Pattern::DeiNeeded {
            figures.pair_txns = None;
            figures.pair_amount = None;
        }
        if detection.pattern == Pattern::Upgrade
            && let Some(cut) = merchant.upgrade_cutoffs(&self.thresholds)
        {
            let weights = self.importance.merchant(&detection.merchant);
            let weight_of = |customer: &str| weights.and_then(|w| w.get(customer)).copied().map(weight_text);
            figures.k = Some(cut.k);
            figures.count_cutoff = Some(cut.count_cutoff);
            figures.j = Some(cut.j);
            figures.weight_cutoff = weight_of(&merchant.weights.customers[cut.weight_cutoff_rank]);
            figures.pair_weight = weight_of(&detection.customer);
            figures.pair_amount = None;
        }
        Some(figures)
    }

    /// Applies several chunks in order, as a detector folding a batch does; the result is the
    /// same as applying them one by one.
    pub fn apply_batch(&mut self, chunks: &[ChunkAggregate]) -> Result<Vec<Detection>, EngineError> {
        let mut found = Vec::new();
        for chunk in chunks {
            found.extend(self.apply(chunk)?);
        }
        Ok(found)
    }

    fn apply_pair(&mut self, chunk: u64, pair: &PairAggregate, found: &mut Vec<Detection>) {
        let merchant = match self.merchants.get_mut(pair.merchant.as_str()) {
            Some(merchant) => merchant,
            None => self.merchants.entry(pair.merchant.as_str().into()).or_insert_with(|| Merchant {
                transactions: 0,
                customers: FastMap::default(),
                counts: Fenwick::new(64),
                female_customers: 0,
                male_customers: 0,
                dei_emitted: false,
                weights: WeightIndex::new(self.importance.merchant(&pair.merchant)),
            }),
        };
        let state = match merchant.customers.get_mut(pair.customer.as_str()) {
            Some(state) => state,
            None => {
                let weight_rank = merchant.weights.rank.get(pair.customer.as_str()).copied();
                if let Some(rank) = weight_rank {
                    merchant.weights.present.increment(rank + 1);
                }
                merchant
                    .customers
                    .entry(pair.customer.as_str().into())
                    .or_insert(Pair { weight_rank, ..Pair::default() })
            }
        };
        if state.count > 0 {
            merchant.counts.decrement(to_position(state.count));
        }
        state.count += pair.count;
        state.amount_micros = state.amount_micros.saturating_add(pair.amount_micros);
        merchant.counts.increment(to_position(state.count));
        merchant.transactions += pair.count;
        for (gender, tally) in
            [(Gender::F, &mut merchant.female_customers), (Gender::M, &mut merchant.male_customers)]
        {
            if pair.genders.contains(gender) && !state.genders.contains(gender) {
                *tally += 1;
            }
        }
        state.genders = state.genders.union(pair.genders);
        if let Some(rank) = state.weight_rank
            && !state.upgrade_emitted
        {
            merchant.weights.candidates.set(rank, state.count);
        }
        let limit = self.thresholds.child_max_avg_amount.micros();
        if !state.child_emitted
            && state.count > self.thresholds.child_min_txns
            && state.amount_micros < limit.saturating_mul(u128::from(state.count))
        {
            state.child_emitted = true;
            found.push(Detection {
                chunk,
                pattern: Pattern::Child,
                customer: pair.customer.clone(),
                merchant: pair.merchant.clone(),
            });
        }
    }
}

/// A count as a Fenwick position.
fn to_position(count: u64) -> usize {
    usize::try_from(count).unwrap_or(usize::MAX)
}

impl Merchant {
    /// UPGRADE's cut-offs now; `None` while the merchant is too small or has no weighted
    /// customer.
    fn upgrade_cutoffs(&self, thresholds: &Thresholds) -> Option<UpgradeCutoffs> {
        if self.transactions <= thresholds.upgrade_min_merchant_txns {
            return None;
        }
        let weighted = self.weights.present.total();
        if weighted == 0 {
            return None;
        }
        let k = thresholds.upgrade_top_pct.rank_of(self.customers.len() as u64);
        let count_cutoff = self.counts.kth_largest(k) as u64;
        let j = thresholds.upgrade_bottom_pct.rank_of(weighted);
        let weight_cutoff_rank = self.weights.present.kth_smallest(j) - 1;
        Some(UpgradeCutoffs { k, count_cutoff, j, weight_cutoff_rank })
    }

    /// Evaluates DEI-NEEDED and UPGRADE after a chunk that touched this merchant.
    fn evaluate(&mut self, name: &str, thresholds: &Thresholds, chunk: u64, found: &mut Vec<Detection>) {
        if !self.dei_emitted
            && self.female_customers > thresholds.dei_min_female_customers
            && self.female_customers < self.male_customers
        {
            self.dei_emitted = true;
            found.push(Detection {
                chunk,
                pattern: Pattern::DeiNeeded,
                customer: String::new(),
                merchant: name.to_owned(),
            });
        }
        let Some(UpgradeCutoffs { count_cutoff, weight_cutoff_rank, .. }) = self.upgrade_cutoffs(thresholds)
        else {
            return;
        };
        let end = self.weights.tie_end[weight_cutoff_rank];
        while let Some(rank) = self.weights.candidates.first_at_least(count_cutoff, end) {
            self.weights.candidates.set(rank, 0);
            let customer = &self.weights.customers[rank];
            if let Some(pair) = self.customers.get_mut(customer) {
                pair.upgrade_emitted = true;
            }
            found.push(Detection {
                chunk,
                pattern: Pattern::Upgrade,
                customer: customer.to_string(),
                merchant: name.to_owned(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws(sum_micros: i128, count: u64) -> WeightSum {
        WeightSum { sum_micros, count }
    }

    #[test]
    fn means_compare_exactly() {
        assert_eq!(compare_means(ws(1, 3), ws(2, 6)), Ordering::Equal);
        assert_eq!(compare_means(ws(1, 3), ws(333_333, 1_000_000)), Ordering::Greater);
        assert_eq!(compare_means(ws(-5, 2), ws(-2, 1)), Ordering::Less);
        let huge = i128::MAX / 3;
        assert_eq!(compare_means(ws(huge, 7), ws(huge, 8)), Ordering::Greater);
        assert_eq!(compare_means(ws(-huge, 7), ws(-huge, 8)), Ordering::Less);
        assert_eq!(compare_means(ws(huge, u64::MAX), ws(huge, u64::MAX)), Ordering::Equal);
    }
}
