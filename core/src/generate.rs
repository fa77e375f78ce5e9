//! Deterministic synthetic transactions shaped like the published BankSim data set.
//!
//! [`generate`] writes a raw BankSim transactions file and its `CustomerImportance` file, so that
//! the pipeline, the benchmarks and the tests have realistic data of any size without shipping
//! the real set. It is a port of the Python generator's model: a fixed table of 50 merchants in
//! 15 categories, customers whose number grows with the square root of the row count, step
//! volume rising 1.55x over 180 steps, gamma-distributed amounts with fraud at four times the
//! ordinary spend, and a few low-spending commuters and male-skewed merchants so that every
//! pattern of docs/patterns.md has something to find at every size.
//!
//! Counts are apportioned exactly (rows per merchant, genders, ages, steps, fraud rows), with the
//! same floating-point steps as the original, so even a small run keeps the published shape;
//! only who goes where and the amounts are random. The random stream is `ChaCha8Rng` seeded
//! with the seed, so the output depends only on (rows, seed, weight mode).
//!
//! Like the rest of this crate it does no I/O of its own: it writes to the writers handed in.

use std::collections::BTreeSet;
use std::io::Write;

use rand::distr::Open01;
use rand::seq::SliceRandom;
use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::contract::{IMPORTANCE_HEADER, TRANSACTIONS_HEADER};

/// Rows of the published BankSim data set, the default size.
pub const DEFAULT_ROWS: u64 = 594_643;

/// Customers at the default size; smaller runs scale this with the square root of the rows.
const FULL_CUSTOMERS: usize = 4_112;
/// Fewest customers, so that tiny runs still have a population to apportion.
const MIN_CUSTOMERS: usize = 20;
/// Steps (days) covered; every run spreads its rows over all of them.
const STEPS: usize = 180;
/// The single zip code BankSim uses for customers and merchants.
const ZIPCODE: &str = "28007";
/// Rows formatted per write (and per progress report).
const BLOCK_ROWS: usize = 50_000;

/// Which number goes into the importance file's `Weight` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightMode {
    /// The transaction's amount, as in BankSim.
    #[default]
    Amount,
    /// A second draw from the row's distribution: same scale, almost never the amount.
    Independent,
}

/// What to generate: the number of rows, the seed and the weight mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenerateOptions {
    /// Transactions to write; at least 1.
    pub rows: u64,
    /// The seed of the random stream.
    pub seed: u64,
    /// What the importance file's `Weight` is.
    pub weights: WeightMode,
}

impl Default for GenerateOptions {
    /// The published size with seed 0 and amounts as weights.
    fn default() -> Self {
        Self { rows: DEFAULT_ROWS, seed: 0, weights: WeightMode::Amount }
    }
}

/// What one call to [`generate`] wrote: rows, distinct customers, merchants and
/// (customer, merchant) pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenerateStats {
    /// Transaction rows written (importance rows are as many).
    pub rows: u64,
    /// Distinct customers with at least one row.
    pub customers: u64,
    /// Distinct merchants with at least one row.
    pub merchants: u64,
    /// Distinct (customer, merchant) pairs.
    pub pairs: u64,
}

/// Why [`generate`] failed.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// `rows` was 0.
    #[error("rows must be at least 1")]
    NoRows,
    /// A writer failed (or, on a 32-bit machine, the rows cannot be held in memory).
    #[error("could not write: {0}")]
    Write(#[from] std::io::Error),
}

/// A spending category: its published mean amount (fraud included) and fraud share of rows.
#[derive(Debug)]
struct Category {
    name: &'static str,
    mean: f64,
    fraud_share: f64,
}

// Category indexes into CATEGORIES, so that the merchant table reads like the original.
const TRANSPORTATION: usize = 0;
const FOOD: usize = 1;
const HEALTH: usize = 2;
const WELLNESS: usize = 3;
const FASHION: usize = 4;
const BARS: usize = 5;
const HYPER: usize = 6;
const SPORTS: usize = 7;
const TECH: usize = 8;
const HOME: usize = 9;
const HOTELS: usize = 10;
const OTHER_SERVICES: usize = 11;
const CONTENTS: usize = 12;
const TRAVEL: usize = 13;
const LEISURE: usize = 14;

/// Category means and fraud shares from the published BankSim statistics; the fraud shares
/// reproduce its 7,200 fraudulent rows.
const CATEGORIES: [Category; 15] = [
    Category { name: "es_transportation", mean: 26.96, fraud_share: 0.0 },
    Category { name: "es_food", mean: 37.07, fraud_share: 0.0 },
    Category { name: "es_health", mean: 135.62, fraud_share: 1696.0 / 16133.0 },
    Category { name: "es_wellnessandbeauty", mean: 65.51, fraud_share: 718.0 / 15086.0 },
    Category { name: "es_fashion", mean: 65.67, fraud_share: 116.0 / 6454.0 },
    Category { name: "es_barsandrestaurants", mean: 43.46, fraud_share: 120.0 / 6373.0 },
    Category { name: "es_hyper", mean: 45.97, fraud_share: 280.0 / 6098.0 },
    Category { name: "es_sportsandtoys", mean: 215.72, fraud_share: 1982.0 / 4002.0 },
    Category { name: "es_tech", mean: 120.95, fraud_share: 158.0 / 2370.0 },
    Category { name: "es_home", mean: 165.67, fraud_share: 302.0 / 1986.0 },
    Category { name: "es_hotelservices", mean: 205.61, fraud_share: 548.0 / 1744.0 },
    Category { name: "es_otherservices", mean: 135.88, fraud_share: 228.0 / 912.0 },
    Category { name: "es_contents", mean: 44.55, fraud_share: 0.0 },
    Category { name: "es_travel", mean: 2250.41, fraud_share: 578.0 / 728.0 },
    Category { name: "es_leisure", mean: 288.91, fraud_share: 474.0 / 499.0 },
];

/// A merchant: id, category, rows at the default size and the female share of its clientele
/// (`None`: the population's share).
#[derive(Debug)]
struct Merchant {
    id: &'static str,
    category: usize,
    full_rows: u32,
    female_share: Option<f64>,
}

/// Shorthand for the merchant table.
const fn merchant(id: &'static str, category: usize, full_rows: u32, female_share: Option<f64>) -> Merchant {
    Merchant { id, category, full_rows, female_share }
}

/// The two transportation ids are the real BankSim ones; the others are illustrative. Row counts
/// add up to the published category totals. The male-skewed food and sports merchants give
/// DEI-NEEDED something to find at every size.
const MERCHANTS: [Merchant; 50] = [
    merchant("M1823072687", TRANSPORTATION, 299_693, None),
    merchant("M348934600", TRANSPORTATION, 205_426, None),
    merchant("M1294061337", FOOD, 26_254, Some(0.40)),
    merchant("M1053599405", HEALTH, 6_821, None),
    merchant("M480139044", HEALTH, 3_508, None),
    merchant("M1741626453", HEALTH, 2_881, None),
    merchant("M980657600", HEALTH, 1_769, None),
    merchant("M1352454843", HEALTH, 1_154, None),
    merchant("M1946091778", WELLNESS, 5_343, None),
    merchant("M1913465890", WELLNESS, 3_988, None),
    merchant("M1600850729", WELLNESS, 2_624, None),
    merchant("M1198415165", WELLNESS, 1_608, None),
    merchant("M547558035", WELLNESS, 949, None),
    merchant("M1313686961", WELLNESS, 574, None),
    merchant("M1535107174", FASHION, 2_415, None),
    merchant("M1649169323", FASHION, 1_868, None),
    merchant("M840466850", FASHION, 1_399, None),
    merchant("M1400236507", FASHION, 772, None),
    merchant("M209847108", BARS, 3_814, None),
    merchant("M1888755466", BARS, 1_580, None),
    merchant("M1872033263", BARS, 979, None),
    merchant("M855959430", HYPER, 3_302, None),
    merchant("M1842530320", HYPER, 1_925, None),
    merchant("M692898500", HYPER, 871, None),
    merchant("M1788569036", SPORTS, 1_620, Some(0.40)),
    merchant("M2122776122", SPORTS, 1_173, None),
    merchant("M923029380", SPORTS, 858, None),
    merchant("M1873032707", SPORTS, 351, None),
    merchant("M1748431652", TECH, 1_226, None),
    merchant("M2011752106", TECH, 776, None),
    merchant("M1416436880", TECH, 368, None),
    merchant("M732195782", HOME, 916, None),
    merchant("M1294758098", HOME, 751, None),
    merchant("M857378720", HOME, 319, None),
    merchant("M1726401631", HOTELS, 900, None),
    merchant("M151143676", HOTELS, 599, None),
    merchant("M677738360", HOTELS, 245, None),
    merchant("M2080407379", OTHER_SERVICES, 608, None),
    merchant("M1353266412", OTHER_SERVICES, 304, None),
    merchant("M117188757", CONTENTS, 528, None),
    merchant("M495352832", CONTENTS, 250, None),
    merchant("M933210764", CONTENTS, 107, None),
    merchant("M1313520563", TRAVEL, 370, None),
    merchant("M1509370125", TRAVEL, 220, None),
    merchant("M1600850273", TRAVEL, 117, None),
    merchant("M1015439621", TRAVEL, 21, None),
    merchant("M1741120381", LEISURE, 282, None),
    merchant("M348875670", LEISURE, 122, None),
    merchant("M1008447320", LEISURE, 78, None),
    merchant("M1879130542", LEISURE, 17, None),
];

/// Gender letters; a customer's gender is an index into this.
const GENDERS: [&str; 4] = ["F", "M", "E", "U"];
/// Customer shares at the default size: F 2,256 / M 1,844 / E 7 / U 5 of 4,112.
const GENDER_SHARES: [f64; 4] = [2256.0, 1844.0, 7.0, 5.0];
const FEMALE: usize = 0;
const ENTERPRISE: usize = 2;

/// Age labels; `U` (the last) is added on top of the shares and always covers the `E` customers.
const AGES: [&str; 8] = ["0", "1", "2", "3", "4", "5", "6", "U"];
const AGE_UNKNOWN: usize = 7;
/// Customer shares of the ages `0`..`6`.
const AGE_SHARES: [f64; 7] = [0.4, 9.8, 31.5, 24.7, 18.3, 10.5, 4.5];
const AGE_UNKNOWN_SHARE: f64 = 0.002;

/// Step volume rises linearly by this factor from the first step to the last.
const STEP_RISE: f64 = 1.55;
/// Exact zero amounts per row at the default size (BankSim has about 50 of them).
#[allow(clippy::cast_precision_loss, reason = "594,643 is exact in an f64")]
const ZERO_SHARE: f64 = 50.0 / DEFAULT_ROWS as f64;

// Distinct customers per merchant saturate as reach * K * (1 - exp(-N / (ROWS_PER_PAIR * reach
// * K))); the figures give about 47,000 pairs and 11 merchants per customer at full size.
const ROWS_PER_PAIR: f64 = 1.4;
const FOOD_ROWS_PER_PAIR: f64 = 1.0;
const SKEWED_REACH: f64 = 0.6;

// Gamma shapes: transport fares are tight around their mean, other spending is broader and
// fraud runs about four times the category's ordinary amount.
const COMMUTE_SHAPE: f64 = 5.0;
const SPEND_SHAPE: f64 = 2.0;
const FRAUD_SHAPE: f64 = 4.5;
const FRAUD_FACTOR: f64 = 4.0;
const MULTIPLIER_SIGMA: f64 = 0.03;
/// BankSim's largest amount in cents; the fraud tail is clipped there.
const MAX_CENTS: u32 = 832_996;

// Commuters are frequent transport users with small fares; they make UPGRADE and CHILD fire
// from the smallest runs up, as the low-spending regulars in BankSim do.
const COMMUTER_SHARE: f64 = 0.0025;
const MIN_COMMUTERS: usize = 2;
const COMMUTER_POOL: f64 = 0.2;
const COMMUTER_BOOST: f64 = 1.6;
const COMMUTER_MULTIPLIER_LOW: f64 = 0.3;
const COMMUTER_MULTIPLIER_HIGH: f64 = 0.45;

/// Writes `options.rows` BankSim-format transactions and their importance rows.
///
/// Both files get their header line, then one line per transaction in the same order; lines end
/// with `\n`. The output depends only on `options`. `progress` is called with the number of rows
/// just written, once per block of 50,000 rows. Both writers are flushed before returning.
pub fn generate<T: Write, I: Write>(
    mut transactions: T,
    mut importance: I,
    options: &GenerateOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<GenerateStats, GenerateError> {
    if options.rows == 0 {
        return Err(GenerateError::NoRows);
    }
    let rows = usize::try_from(options.rows).map_err(|_| {
        std::io::Error::new(std::io::ErrorKind::OutOfMemory, "too many rows for this machine")
    })?;
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let population = Population::draw(&mut rng, customer_count(rows));
    let mut table = assign_rows(&mut rng, &population, rows);

    // Shuffling before laying out the steps spreads every merchant and customer over time.
    table.rows.shuffle(&mut rng);
    let cents = draw_cents(&mut rng, &table.rows, &population);
    let cents = zero_some(&mut rng, cents, &table.rows);
    // An independent weight is a second draw from the same row's distribution, so it keeps the
    // scale and the customer's habits but almost never equals the amount.
    let weights = match options.weights {
        WeightMode::Amount => None,
        WeightMode::Independent => Some(draw_cents(&mut rng, &table.rows, &population)),
    };

    let output = Output { rows: &table.rows, cents: &cents, weights: weights.as_deref() };
    output.write(&mut transactions, &mut importance, &population, progress)?;
    transactions.flush()?;
    importance.flush()?;

    Ok(GenerateStats {
        rows: options.rows,
        customers: distinct_customers(&table.rows, population.size()),
        merchants: table.merchants,
        pairs: table.pairs,
    })
}

/// Python's `round` for a non-negative count: halves go to the even neighbour.
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "counts are non-negative and far below 2^53"
)]
fn round_count(x: f64) -> usize {
    x.round_ties_even().max(0.0) as usize
}

/// `floor` of a non-negative quota, as a count.
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "quotas are non-negative and far below 2^53"
)]
fn floor_count(x: f64) -> usize {
    x.floor().max(0.0) as usize
}

/// A count as an f64, as the Python does implicitly.
#[allow(clippy::cast_precision_loss, reason = "counts here are far below 2^53, so exact")]
fn real(n: usize) -> f64 {
    n as f64
}

/// Customers for a run: 4,112 at full size, scaled with the square root of the rows, at least 20.
fn customer_count(rows: usize) -> usize {
    #[allow(clippy::cast_precision_loss, reason = "same float steps as the original")]
    let full = DEFAULT_ROWS as f64;
    let scaled = round_count(real(FULL_CUSTOMERS) * (real(rows) / full).sqrt());
    scaled.clamp(MIN_CUSTOMERS, FULL_CUSTOMERS)
}

/// numpy's pairwise sum, so that apportioning rounds exactly as the original did.
fn numpy_sum(values: &[f64]) -> f64 {
    const BLOCK: usize = 128;
    const UNROLL: usize = 8;
    if values.len() < UNROLL {
        values.iter().fold(0.0, |sum, v| sum + v)
    } else if values.len() <= BLOCK {
        let whole = values.len() - values.len() % UNROLL;
        let mut r = [0.0; UNROLL];
        for chunk in values[..whole].chunks_exact(UNROLL) {
            for (acc, v) in r.iter_mut().zip(chunk) {
                *acc += v;
            }
        }
        let head = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        values[whole..].iter().fold(head, |sum, v| sum + v)
    } else {
        let half = values.len() / 2;
        let half = half - half % UNROLL;
        numpy_sum(&values[..half]) + numpy_sum(&values[half..])
    }
}

/// Splits `total` into integer parts proportional to `weights` by largest remainders.
///
/// Ties go to the earlier entry, so the split of fixed weights never depends on the seed.
fn apportion(total: usize, weights: &[f64]) -> Vec<usize> {
    let sum = numpy_sum(weights);
    if total == 0 || sum <= 0.0 {
        return vec![0; weights.len()];
    }
    let quotas: Vec<f64> = weights.iter().map(|w| real(total) * w / sum).collect();
    let mut counts: Vec<usize> = quotas.iter().map(|&q| floor_count(q)).collect();
    let short = total.saturating_sub(counts.iter().sum());
    let remainders: Vec<f64> = quotas.iter().zip(&counts).map(|(q, &c)| q - real(c)).collect();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    // A stable sort by descending remainder keeps equal remainders in index order.
    order.sort_by(|&a, &b| remainders[b].total_cmp(&remainders[a]));
    for &index in order.iter().take(short) {
        counts[index] += 1;
    }
    counts
}

/// Rows per step: volume rises linearly by STEP_RISE, and rounding the running total (not
/// largest remainders) spreads a short run over all steps instead of piling it into the last.
fn step_counts(rows: usize) -> Vec<usize> {
    // numpy.linspace(1.0, STEP_RISE, STEPS), step for step.
    let step = (STEP_RISE - 1.0) / real(STEPS - 1);
    let mut volume: Vec<f64> = (0..STEPS).map(|i| real(i) * step + 1.0).collect();
    if let Some(last) = volume.last_mut() {
        *last = STEP_RISE;
    }
    let total = numpy_sum(&volume);
    let mut counts = Vec::with_capacity(STEPS);
    let mut running = 0.0;
    let mut previous = 0;
    for (i, v) in volume.iter().enumerate() {
        running += v;
        let bound = if i + 1 == STEPS { rows } else { round_count(real(rows) * running / total) };
        counts.push(bound.saturating_sub(previous));
        previous = bound;
    }
    counts
}

/// One draw from Gamma(shape, 1) for a shape of at least 1 (Marsaglia and Tsang's method).
///
/// Every shape here is a constant of 2 or more, so sampling directly spares a constructor that
/// returns a `Result` which could never be an error.
#[derive(Debug, Clone, Copy)]
struct UnitGamma {
    d: f64,
    c: f64,
}

impl UnitGamma {
    /// The constants of the method for `shape` (which must be at least 1).
    fn new(shape: f64) -> Self {
        let d = shape - 1.0 / 3.0;
        Self { d, c: 1.0 / (9.0 * d).sqrt() }
    }

    /// One draw; at these shapes the first try is accepted well over 95% of the time.
    fn sample<R: Rng + ?Sized>(self, rng: &mut R) -> f64 {
        loop {
            let x: f64 = rng.sample(StandardNormal);
            let v = 1.0 + self.c * x;
            if v <= 0.0 {
                continue;
            }
            let v = v * v * v;
            let u: f64 = rng.sample(Open01);
            let x2 = x * x;
            if u < 1.0 - 0.0331 * x2 * x2 || u.ln() < 0.5 * x2 + self.d * (1.0 - v + v.ln()) {
                return self.d * v;
            }
        }
    }
}

/// A log-normal draw: exp(mu + sigma * Z).
fn log_normal<R: Rng + ?Sized>(rng: &mut R, mu: f64, sigma: f64) -> f64 {
    let z: f64 = rng.sample(StandardNormal);
    (mu + sigma * z).exp()
}

/// The customers of a run, by index: id, gender, age and spending habits.
#[derive(Debug)]
struct Population {
    /// Java-style positive hash codes, as BankSim ids are (written as `C<id>`).
    ids: Vec<u32>,
    /// Index into GENDERS.
    gender: Vec<usize>,
    /// Index into AGES.
    age: Vec<usize>,
    /// How many rows a customer tends to have at a merchant, relative to the others.
    activity: Vec<f64>,
    /// How many merchants a customer tends to use (the sampling weight of clienteles).
    breadth: Vec<f64>,
    /// A customer's personal factor on every amount.
    multiplier: Vec<f64>,
    commuter: Vec<bool>,
}

impl Population {
    /// Draws `size` customers with exactly apportioned genders and ages.
    fn draw<R: Rng + ?Sized>(rng: &mut R, size: usize) -> Self {
        let mut gender: Vec<usize> = apportion(size, &GENDER_SHARES)
            .into_iter()
            .enumerate()
            .flat_map(|(g, count)| std::iter::repeat_n(g, count))
            .collect();
        gender.shuffle(rng);
        let age = draw_ages(rng, &gender);
        let ids = draw_ids(rng, size);

        let beta_a = UnitGamma::new(3.0);
        let beta_b = UnitGamma::new(2.4);
        let activity: Vec<f64> = (0..size)
            .map(|_| {
                let a = beta_a.sample(rng);
                let beta = a / (a + beta_b.sample(rng));
                5.0 + 260.0 * beta
            })
            .collect();
        let mean = numpy_sum(&activity) / real(size.max(1));
        let breadth = activity.iter().map(|a| (a / mean).powf(0.7) * log_normal(rng, 0.0, 0.4)).collect();
        let mu = -(MULTIPLIER_SIGMA * MULTIPLIER_SIGMA) / 2.0;
        let multiplier = (0..size).map(|_| log_normal(rng, mu, MULTIPLIER_SIGMA)).collect();

        let mut population =
            Self { ids, gender, age, activity, breadth, multiplier, commuter: vec![false; size] };
        population.choose_commuters(rng);
        population
    }

    /// The number of customers.
    fn size(&self) -> usize {
        self.ids.len()
    }

    /// Makes a few of the busiest customers commuters with small personal multipliers.
    fn choose_commuters<R: Rng + ?Sized>(&mut self, rng: &mut R) {
        let size = self.size();
        let commuters = MIN_COMMUTERS.max(round_count(COMMUTER_SHARE * real(size))).min(size);
        let pool = commuters.max(round_count(COMMUTER_POOL * real(size))).min(size);
        let mut busiest: Vec<usize> = (0..size).collect();
        busiest.sort_by(|&a, &b| self.activity[b].total_cmp(&self.activity[a]));
        busiest.truncate(pool);
        let (chosen, _) = busiest.partial_shuffle(rng, commuters);
        for &c in chosen.iter() {
            self.commuter[c] = true;
            self.multiplier[c] = rng.random_range(COMMUTER_MULTIPLIER_LOW..COMMUTER_MULTIPLIER_HIGH);
        }
    }
}

/// Ages by exact shares: `U` for every `E` customer and a few others, the rest apportioned over
/// `0`..`6` in random order.
fn draw_ages<R: Rng + ?Sized>(rng: &mut R, gender: &[usize]) -> Vec<usize> {
    let size = gender.len();
    let mut age = vec![AGE_UNKNOWN; size];
    let mut others: Vec<usize> = (0..size).filter(|&c| gender[c] != ENTERPRISE).collect();
    others.shuffle(rng);
    let enterprises = size - others.len();
    let unknown = round_count(AGE_UNKNOWN_SHARE * real(size)).saturating_sub(enterprises);
    let rest = others.get(unknown..).unwrap_or_default();
    let labels = apportion(rest.len(), &AGE_SHARES)
        .into_iter()
        .enumerate()
        .flat_map(|(a, count)| std::iter::repeat_n(a, count));
    for (&c, a) in rest.iter().zip(labels) {
        age[c] = a;
    }
    age
}

/// Distinct random ids in BankSim's range (9 or 10 digits), in random order.
fn draw_ids<R: Rng + ?Sized>(rng: &mut R, size: usize) -> Vec<u32> {
    let mut seen = BTreeSet::new();
    let mut ids = Vec::with_capacity(size);
    while ids.len() < size {
        let id = rng.random_range(100_000_000..2_147_483_647_u32);
        if seen.insert(id) {
            ids.push(id);
        }
    }
    ids
}

/// One transaction before it gets a step and an amount.
#[derive(Debug, Clone, Copy)]
struct Row {
    customer: usize,
    merchant: usize,
    fraud: bool,
}

/// Every row of a run (grouped by merchant until shuffled), with the distinct pairs and merchants.
#[derive(Debug)]
struct Table {
    rows: Vec<Row>,
    pairs: u64,
    merchants: u64,
}

/// Apportions the rows over merchants, picks each merchant's clientele and spreads its rows
/// over them, and flags the fraud rows.
fn assign_rows<R: Rng + ?Sized>(rng: &mut R, population: &Population, rows: usize) -> Table {
    let full_rows: Vec<f64> = MERCHANTS.iter().map(|m| f64::from(m.full_rows)).collect();
    let merchant_rows = apportion(rows, &full_rows);
    let fraud_rows = fraud_counts(&merchant_rows);

    let size = population.size();
    let (female, other): (Vec<usize>, Vec<usize>) = (0..size).partition(|&c| population.gender[c] == FEMALE);
    let female_share = real(female.len()) / real(size);
    let pools = Pools { female: &female, other: &other, female_share };

    let mut table = Table { rows: Vec::with_capacity(rows), pairs: 0, merchants: 0 };
    for (index, merchant) in MERCHANTS.iter().enumerate() {
        let n = merchant_rows[index];
        if n == 0 {
            continue;
        }
        let clientele = clientele(rng, population, &pools, merchant, n);
        let weight = visit_weights(population, &pools, merchant, &clientele);
        let extra = apportion(n - clientele.len(), &weight);
        let flags = choose_flags(rng, n, fraud_rows[index]);
        let customers = clientele.iter().zip(&extra).flat_map(|(&c, &e)| std::iter::repeat_n(c, e + 1));
        table.rows.extend(customers.zip(flags).map(|(customer, fraud)| Row {
            customer,
            merchant: index,
            fraud,
        }));
        table.pairs += clientele.len() as u64;
        table.merchants += 1;
    }
    table
}

/// `n` flags of which exactly `k` (at random places) are set.
fn choose_flags<R: Rng + ?Sized>(rng: &mut R, n: usize, k: usize) -> Vec<bool> {
    let mut flags = vec![false; n];
    if k > 0 {
        let mut positions: Vec<usize> = (0..n).collect();
        let (chosen, _) = positions.partial_shuffle(rng, k);
        for &p in chosen.iter() {
            flags[p] = true;
        }
    }
    flags
}

/// Fraud rows per merchant: the category's fraud share of its rows, apportioned exactly.
fn fraud_counts(merchant_rows: &[usize]) -> Vec<usize> {
    let expected: Vec<f64> = MERCHANTS
        .iter()
        .zip(merchant_rows)
        .map(|(m, &n)| CATEGORIES[m.category].fraud_share * real(n))
        .collect();
    apportion(round_count(numpy_sum(&expected)), &expected)
}

/// The customers split by gender (female, and everyone else) for picking clienteles.
#[derive(Debug)]
struct Pools<'a> {
    female: &'a [usize],
    other: &'a [usize],
    female_share: f64,
}

/// Distinct customers of a merchant with `n` rows: saturating in `n`, at most the merchant's
/// reach of the population.
fn clientele_size(size: usize, merchant: &Merchant, n: usize) -> usize {
    let reach = if merchant.female_share.is_some() { SKEWED_REACH } else { 1.0 };
    let per_pair = if merchant.category == FOOD { FOOD_ROWS_PER_PAIR } else { ROWS_PER_PAIR };
    let ceiling = reach * real(size);
    let k = round_count(ceiling * (1.0 - (-real(n) / (per_pair * ceiling)).exp()));
    k.min(n).max(1)
}

/// Picks a merchant's distinct customers, in index order, with a fixed female count and
/// favouring broad customers.
fn clientele<R: Rng + ?Sized>(
    rng: &mut R,
    population: &Population,
    pools: &Pools<'_>,
    merchant: &Merchant,
    n: usize,
) -> Vec<usize> {
    let k = clientele_size(population.size(), merchant, n);
    let share = merchant.female_share.unwrap_or(pools.female_share);
    let k_female = round_count(share * real(k)).min(pools.female.len());
    let k_other = (k - k_female).min(pools.other.len());
    let k_female = (k - k_other).min(pools.female.len());
    let commute = merchant.category == TRANSPORTATION;
    let mut picked = weighted_sample(rng, population, pools.female, k_female, commute);
    picked.extend(weighted_sample(rng, population, pools.other, k_other, commute));
    picked.sort_unstable();
    picked
}

/// Picks `k` of `pool` without replacement, weighted by breadth (Efraimidis-Spirakis: the k
/// largest ln(u) / w). Commuters get the top key at transport merchants, so every transport
/// merchant sees them.
fn weighted_sample<R: Rng + ?Sized>(
    rng: &mut R,
    population: &Population,
    pool: &[usize],
    k: usize,
    commute: bool,
) -> Vec<usize> {
    let keys: Vec<f64> = pool
        .iter()
        .map(|&c| {
            let u: f64 = rng.sample(Open01);
            if commute && population.commuter[c] { 0.0 } else { u.ln() / population.breadth[c] }
        })
        .collect();
    let mut order: Vec<usize> = (0..pool.len()).collect();
    order.sort_by(|&a, &b| keys[b].total_cmp(&keys[a]));
    order.into_iter().take(k).map(|i| pool[i]).collect()
}

/// How a merchant's rows beyond one per customer are shared out over its clientele.
fn visit_weights(
    population: &Population,
    pools: &Pools<'_>,
    merchant: &Merchant,
    clientele: &[usize],
) -> Vec<f64> {
    // Fewer women shop at a skewed merchant but they come as often as elsewhere, so row shares
    // by gender stay close to the population's.
    let fs = pools.female_share;
    let odds = merchant.female_share.map(|skew| (fs / (1.0 - fs)) / (skew / (1.0 - skew)));
    let commute = merchant.category == TRANSPORTATION;
    clientele
        .iter()
        .map(|&c| {
            let mut w = population.activity[c];
            if let Some(odds) = odds.filter(|_| population.gender[c] == FEMALE) {
                w *= odds;
            }
            if commute && population.commuter[c] {
                w *= COMMUTER_BOOST;
            }
            w
        })
        .collect()
}

/// The gamma draw behind one row's amount: its shape and mean.
#[derive(Debug, Clone, Copy)]
struct Spend {
    gamma: UnitGamma,
    shape: f64,
    mean: f64,
}

/// The amount distribution of one category, ordinary and fraud.
#[derive(Debug, Clone, Copy)]
struct CategorySpend {
    ordinary: Spend,
    fraud: Spend,
}

/// Per category, the ordinary mean is chosen so that, with fraud at FRAUD_FACTOR times it, the
/// category mean matches the published one.
fn category_spends() -> Vec<CategorySpend> {
    let fraud_gamma = UnitGamma::new(FRAUD_SHAPE);
    CATEGORIES
        .iter()
        .enumerate()
        .map(|(index, c)| {
            let rate = c.fraud_share;
            let ordinary = c.mean / (1.0 - rate + rate * FRAUD_FACTOR);
            let shape = if index == TRANSPORTATION { COMMUTE_SHAPE } else { SPEND_SHAPE };
            CategorySpend {
                ordinary: Spend { gamma: UnitGamma::new(shape), shape, mean: ordinary },
                fraud: Spend { gamma: fraud_gamma, shape: FRAUD_SHAPE, mean: ordinary * FRAUD_FACTOR },
            }
        })
        .collect()
}

/// Draws one amount per row in integer cents from its category, fraud flag and customer.
fn draw_cents<R: Rng + ?Sized>(rng: &mut R, rows: &[Row], population: &Population) -> Vec<u32> {
    let spends = category_spends();
    rows.iter()
        .map(|row| {
            let category = &spends[MERCHANTS[row.merchant].category];
            let spend = if row.fraud { category.fraud } else { category.ordinary };
            let mean = spend.mean * population.multiplier[row.customer];
            to_cents(spend.gamma.sample(rng) * mean / spend.shape)
        })
        .collect()
}

/// An amount rounded half-to-even to cents and clipped to 0.01 ..= BankSim's maximum.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "clamped to 1..=832,996 first")]
fn to_cents(amount: f64) -> u32 {
    (amount * 100.0).round_ties_even().clamp(1.0, f64::from(MAX_CENTS)) as u32
}

/// Sets about 50 (at full size) ordinary transport amounts to exactly zero, as in BankSim.
fn zero_some<R: Rng + ?Sized>(rng: &mut R, mut cents: Vec<u32>, rows: &[Row]) -> Vec<u32> {
    let mut candidates: Vec<usize> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| MERCHANTS[r.merchant].category == TRANSPORTATION && !r.fraud)
        .map(|(i, _)| i)
        .collect();
    let zeros = round_count(ZERO_SHARE * real(rows.len())).min(candidates.len());
    let (chosen, _) = candidates.partial_shuffle(rng, zeros);
    for &i in chosen.iter() {
        cents[i] = 0;
    }
    cents
}

/// Distinct customers that got at least one row.
fn distinct_customers(rows: &[Row], size: usize) -> u64 {
    let mut seen = vec![false; size];
    for row in rows {
        seen[row.customer] = true;
    }
    seen.iter().filter(|&&s| s).count() as u64
}

/// The finished rows, ready to be formatted.
#[derive(Debug)]
struct Output<'a> {
    rows: &'a [Row],
    cents: &'a [u32],
    /// `None`: the weight is the amount.
    weights: Option<&'a [u32]>,
}

/// The text of every customer and merchant, formatted once and copied into each line.
#[derive(Debug)]
struct Fragments {
    /// `'C…','age','gender','28007',`
    tx_customer: Vec<Vec<u8>>,
    /// `'M…','28007','category',`
    tx_merchant: Vec<Vec<u8>>,
    /// `'C…','`
    imp_customer: Vec<Vec<u8>>,
    /// `M…',`
    imp_merchant: Vec<Vec<u8>>,
    /// `,'category',`
    imp_category: Vec<Vec<u8>>,
}

impl Fragments {
    /// Formats every customer's and merchant's fields once, as the original's `_write` did.
    fn new(population: &Population) -> Self {
        let customers = 0..population.size();
        Self {
            tx_customer: customers
                .clone()
                .map(|c| {
                    let (id, age, gender) =
                        (population.ids[c], AGES[population.age[c]], GENDERS[population.gender[c]]);
                    format!("'C{id}','{age}','{gender}','{ZIPCODE}',").into_bytes()
                })
                .collect(),
            tx_merchant: MERCHANTS
                .iter()
                .map(|m| {
                    let category = CATEGORIES[m.category].name;
                    format!("'{}','{ZIPCODE}','{category}',", m.id).into_bytes()
                })
                .collect(),
            imp_customer: customers.map(|c| format!("'C{}','", population.ids[c]).into_bytes()).collect(),
            imp_merchant: MERCHANTS.iter().map(|m| format!("{}',", m.id).into_bytes()).collect(),
            imp_category: MERCHANTS
                .iter()
                .map(|m| format!(",'{}',", CATEGORIES[m.category].name).into_bytes())
                .collect(),
        }
    }
}

impl Output<'_> {
    /// Writes both headers, then the rows in blocks of BLOCK_ROWS, reporting each block.
    fn write(
        &self,
        transactions: &mut dyn Write,
        importance: &mut dyn Write,
        population: &Population,
        progress: &mut dyn FnMut(u64),
    ) -> std::io::Result<()> {
        let text = Fragments::new(population);
        writeln!(transactions, "{TRANSACTIONS_HEADER}")?;
        writeln!(importance, "{IMPORTANCE_HEADER}")?;
        let steps = step_counts(self.rows.len())
            .into_iter()
            .enumerate()
            .flat_map(|(step, count)| std::iter::repeat_n(step, count));
        let mut tx = Vec::with_capacity(BLOCK_ROWS * 112);
        let mut imp = Vec::with_capacity(BLOCK_ROWS * 64);
        let mut in_block = 0;
        for (i, (row, step)) in self.rows.iter().zip(steps).enumerate() {
            let amount = self.cents[i];
            let weight = self.weights.map_or(amount, |w| w[i]);
            text.push_transaction(&mut tx, row, step, amount)?;
            text.push_importance(&mut imp, row, weight)?;
            in_block += 1;
            if in_block == BLOCK_ROWS || i + 1 == self.rows.len() {
                transactions.write_all(&tx)?;
                importance.write_all(&imp)?;
                tx.clear();
                imp.clear();
                progress(in_block as u64);
                in_block = 0;
            }
        }
        Ok(())
    }
}

impl Fragments {
    /// Appends one transactions line: `step,'C…','age','gender','28007','M…','28007','category',amount,fraud`.
    fn push_transaction(&self, out: &mut Vec<u8>, row: &Row, step: usize, cents: u32) -> std::io::Result<()> {
        write!(out, "{step},")?;
        out.extend_from_slice(&self.tx_customer[row.customer]);
        out.extend_from_slice(&self.tx_merchant[row.merchant]);
        push_money(out, cents)?;
        out.push(b',');
        out.extend_from_slice(fraud_text(row));
        Ok(())
    }

    /// Appends one importance line: `'C…','M…',weight,'category',fraud`.
    fn push_importance(&self, out: &mut Vec<u8>, row: &Row, cents: u32) -> std::io::Result<()> {
        out.extend_from_slice(&self.imp_customer[row.customer]);
        out.extend_from_slice(&self.imp_merchant[row.merchant]);
        push_money(out, cents)?;
        out.extend_from_slice(&self.imp_category[row.merchant]);
        out.extend_from_slice(fraud_text(row));
        Ok(())
    }
}

/// The `fraud` field and the line ending.
fn fraud_text(row: &Row) -> &'static [u8] {
    if row.fraud { b"1\n" } else { b"0\n" }
}

/// Formats cents as `units.cc`, the way BankSim writes amounts.
fn push_money(out: &mut Vec<u8>, cents: u32) -> std::io::Result<()> {
    write!(out, "{}.{:02}", cents / 100, cents % 100)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashMap, HashSet};

    fn run(rows: u64, seed: u64, weights: WeightMode) -> (String, String, GenerateStats) {
        let mut tx = Vec::new();
        let mut imp = Vec::new();
        let options = GenerateOptions { rows, seed, weights };
        let stats = generate(&mut tx, &mut imp, &options, &mut |_| {}).unwrap();
        (String::from_utf8(tx).unwrap(), String::from_utf8(imp).unwrap(), stats)
    }

    fn unquote(field: &str) -> &str {
        field.strip_prefix('\'').and_then(|f| f.strip_suffix('\'')).unwrap_or(field)
    }

    fn is_amount(text: &str) -> bool {
        let (units, cents) = text.split_once('.').unwrap_or((text, "0"));
        (1..=15).contains(&units.len())
            && units.bytes().all(|b| b.is_ascii_digit())
            && (1..=6).contains(&cents.len())
            && cents.bytes().all(|b| b.is_ascii_digit())
    }

    fn quoted(field: &str) -> bool {
        field.len() >= 2 && field.starts_with('\'') && field.ends_with('\'')
    }

    #[test]
    fn defaults() {
        let options = GenerateOptions::default();
        assert_eq!(options.rows, DEFAULT_ROWS);
        assert_eq!(options.seed, 0);
        assert_eq!(options.weights, WeightMode::Amount);
        assert_eq!(WeightMode::default(), WeightMode::Amount);
    }

    #[test]
    fn zero_rows_is_an_error() {
        let options = GenerateOptions { rows: 0, ..GenerateOptions::default() };
        let result = generate(Vec::new(), Vec::new(), &options, &mut |_| {});
        assert!(matches!(result, Err(GenerateError::NoRows)));
    }

    #[test]
    fn one_row_works() {
        let (tx, imp, stats) = run(1, 0, WeightMode::Amount);
        assert_eq!(tx.lines().count(), 2);
        assert_eq!(imp.lines().count(), 2);
        assert_eq!(stats, GenerateStats { rows: 1, customers: 1, merchants: 1, pairs: 1 });
        let line = tx.lines().nth(1).unwrap();
        assert_eq!(line.split(',').count(), 10);
        assert!(line.split(',').nth(1).unwrap().starts_with("'C"));
        assert!(line.split(',').nth(5).unwrap().starts_with("'M1823072687'"));
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let a = run(2_000, 7, WeightMode::Amount);
        let b = run(2_000, 7, WeightMode::Amount);
        let c = run(2_000, 8, WeightMode::Amount);
        assert_eq!(a.0, b.0);
        assert_eq!(a.1, b.1);
        assert_ne!(a.0, c.0);
        assert_ne!(a.1, c.1);
        let d = run(2_000, 7, WeightMode::Independent);
        assert_eq!(a.0, d.0, "the weight mode only changes the importance file");
        assert_ne!(a.1, d.1);
    }

    #[test]
    fn lines_match_the_contract() {
        for weights in [WeightMode::Amount, WeightMode::Independent] {
            let (tx, imp, stats) = run(3_000, 3, weights);
            assert!(tx.ends_with('\n') && imp.ends_with('\n') && !tx.contains('\r'));
            let mut tx_lines = tx.lines();
            let mut imp_lines = imp.lines();
            assert_eq!(tx_lines.next(), Some(TRANSACTIONS_HEADER));
            assert_eq!(imp_lines.next(), Some(IMPORTANCE_HEADER));
            let mut rows = 0;
            let mut equal_weights = 0;
            let mut previous_step = 0;
            for (t, i) in tx_lines.zip(imp_lines) {
                rows += 1;
                let t: Vec<&str> = t.split(',').collect();
                let i: Vec<&str> = i.split(',').collect();
                assert_eq!(t.len(), 10, "{t:?}");
                assert_eq!(i.len(), 5, "{i:?}");
                for &field in [1, 2, 3, 4, 5, 6, 7].iter().map(|&f| &t[f]) {
                    assert!(quoted(field), "{t:?}");
                }
                let step: usize = t[0].parse().unwrap();
                assert!((previous_step..STEPS).contains(&step), "steps never go back");
                previous_step = step;
                let customer = unquote(t[1]);
                assert!(customer.starts_with('C'));
                assert!((10..=11).contains(&customer.len()), "{customer}");
                assert!(customer[1..].bytes().all(|b| b.is_ascii_digit()));
                assert!(AGES.contains(&unquote(t[2])));
                assert!(GENDERS.contains(&unquote(t[3])));
                assert_eq!(unquote(t[4]), ZIPCODE);
                assert!(unquote(t[5]).starts_with('M'));
                assert_eq!(unquote(t[6]), ZIPCODE);
                assert!(CATEGORIES.iter().any(|c| c.name == unquote(t[7])));
                assert!(is_amount(t[8]), "{}", t[8]);
                assert!(t[9] == "0" || t[9] == "1");

                assert_eq!(i[0], t[1]);
                assert_eq!(i[1], t[5]);
                assert!(is_amount(i[2]), "{}", i[2]);
                assert_eq!(i[3], t[7]);
                assert_eq!(i[4], t[9]);
                if i[2] == t[8] {
                    equal_weights += 1;
                }
            }
            assert_eq!(rows, 3_000);
            assert_eq!(stats.rows, 3_000);
            match weights {
                WeightMode::Amount => assert_eq!(equal_weights, rows),
                WeightMode::Independent => assert!(equal_weights < rows / 10),
            }
        }
    }

    #[test]
    fn progress_reports_every_row_once() {
        let mut reports = Vec::new();
        let options = GenerateOptions { rows: 120_001, seed: 1, weights: WeightMode::Amount };
        generate(std::io::sink(), std::io::sink(), &options, &mut |n| reports.push(n)).unwrap();
        assert_eq!(reports, vec![50_000, 50_000, 20_001]);
    }

    #[test]
    fn apportion_matches_the_original() {
        assert_eq!(apportion(10, &[1.0, 1.0, 1.0]), vec![4, 3, 3]);
        assert_eq!(apportion(0, &[1.0, 2.0]), vec![0, 0]);
        assert_eq!(apportion(5, &[0.0, 0.0]), vec![0, 0]);
        assert_eq!(apportion(4_112, &GENDER_SHARES), vec![2256, 1844, 7, 5]);
        assert_eq!(customer_count(1), MIN_CUSTOMERS);
        assert_eq!(customer_count(1_000), 169);
        let steps = step_counts(1_000);
        assert_eq!(steps.len(), STEPS);
        assert_eq!(steps.iter().sum::<usize>(), 1_000);
        assert!(steps.iter().all(|&s| (4..=7).contains(&s)));
    }

    #[test]
    fn gamma_draws_have_the_right_mean() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for shape in [SPEND_SHAPE, COMMUTE_SHAPE, FRAUD_SHAPE, 2.4, 3.0] {
            let gamma = UnitGamma::new(shape);
            let mean = (0..20_000).map(|_| gamma.sample(&mut rng)).sum::<f64>() / 20_000.0;
            assert!((mean - shape).abs() < 0.05 * shape, "shape {shape}: mean {mean}");
        }
    }

    /// One transaction line, parsed for the shape and pattern checks.
    struct Parsed<'a> {
        step: usize,
        customer: &'a str,
        age: &'a str,
        gender: &'a str,
        merchant: &'a str,
        cents: u64,
        fraud: bool,
    }

    fn cents(text: &str) -> u64 {
        let (units, cents) = text.split_once('.').unwrap();
        units.parse::<u64>().unwrap() * 100 + cents.parse::<u64>().unwrap()
    }

    fn parse(tx: &str) -> Vec<Parsed<'_>> {
        tx.lines()
            .skip(1)
            .map(|line| {
                let f: Vec<&str> = line.split(',').collect();
                Parsed {
                    step: f[0].parse().unwrap(),
                    customer: unquote(f[1]),
                    age: unquote(f[2]),
                    gender: unquote(f[3]),
                    merchant: unquote(f[5]),
                    cents: cents(f[8]),
                    fraud: f[9] == "1",
                }
            })
            .collect()
    }

    /// The published shape, within the sampling noise of 100,000 rows (as the Python tests).
    #[test]
    fn mid_size_run_has_the_published_shape() {
        let (tx, _, stats) = run(100_000, 0, WeightMode::Amount);
        let rows = parse(&tx);
        let per_merchant = rows.iter().fold(HashMap::<&str, u64>::new(), |mut m, r| {
            *m.entry(r.merchant).or_default() += 1;
            m
        });
        assert!((per_merchant["M1823072687"] * 1_000 / 100_000).abs_diff(504) <= 20);
        assert!((per_merchant["M348934600"] * 1_000 / 100_000).abs_diff(345) <= 20);

        let mut amounts: Vec<u64> = rows.iter().map(|r| r.cents).collect();
        amounts.sort_unstable();
        let mean = amounts.iter().sum::<u64>() / 100_000;
        assert!((3_200..=4_400).contains(&mean), "mean {mean}");
        assert!((2_200..=3_200).contains(&amounts[50_000]), "median {}", amounts[50_000]);
        assert!(amounts[99_999] <= u64::from(MAX_CENTS));
        let zeros = amounts.iter().take_while(|&&a| a == 0).count();
        assert!((1..=50).contains(&zeros), "zeros {zeros}");
        let fraud = rows.iter().filter(|r| r.fraud).count();
        assert!((800..=1_600).contains(&fraud), "fraud {fraud}");

        let mut per_step = [0_u64; STEPS];
        let mut who: HashMap<&str, (&str, &str)> = HashMap::new();
        let mut merchants: HashMap<&str, HashSet<&str>> = HashMap::new();
        for r in &rows {
            per_step[r.step] += 1;
            assert_eq!(*who.entry(r.customer).or_insert((r.gender, r.age)), (r.gender, r.age));
            merchants.entry(r.customer).or_default().insert(r.merchant);
        }
        assert!(per_step.iter().all(|&n| n > 0));
        assert!(per_step[150..].iter().sum::<u64>() > per_step[..30].iter().sum::<u64>());
        assert!(who.values().all(|&(g, a)| g != "E" || a == "U"));
        let mut breadth: Vec<usize> = merchants.values().map(HashSet::len).collect();
        breadth.sort_unstable();
        assert!((4..=9).contains(&breadth[breadth.len() / 2]));
        assert!(breadth.last().is_some_and(|&b| b <= 35));
        assert_eq!(stats.customers, who.len() as u64);
        assert_eq!(stats.pairs, merchants.values().map(|m| m.len() as u64).sum::<u64>());
    }

    /// Detections per pattern (UPGRADE pairs, CHILD pairs, DEI-NEEDED merchants) over a whole
    /// run, by docs/patterns.md with the given thresholds.
    fn detections(
        tx: &str,
        imp: &str,
        upgrade_min: u64,
        child_min: u64,
        child_avg_cents: u64,
        dei_min: usize,
    ) -> (usize, usize, usize) {
        let rows = parse(tx);
        let mut n: HashMap<(&str, &str), u64> = HashMap::new();
        let mut sum: HashMap<(&str, &str), u64> = HashMap::new();
        let mut weight: HashMap<(&str, &str), u64> = HashMap::new();
        let mut per_merchant: HashMap<&str, u64> = HashMap::new();
        let mut genders: HashMap<&str, HashSet<(&str, &str)>> = HashMap::new();
        for (r, line) in rows.iter().zip(imp.lines().skip(1)) {
            let key = (r.customer, r.merchant);
            *n.entry(key).or_default() += 1;
            *sum.entry(key).or_default() += r.cents;
            *weight.entry(key).or_default() += cents(line.split(',').nth(2).unwrap());
            *per_merchant.entry(r.merchant).or_default() += 1;
            genders.entry(r.merchant).or_default().insert((r.customer, r.gender));
        }
        let mut clienteles: HashMap<&str, Vec<&str>> = HashMap::new();
        for &(c, m) in n.keys() {
            clienteles.entry(m).or_default().push(c);
        }
        let mut upgrade = 0;
        for (m, cs) in &clienteles {
            if per_merchant[m] <= upgrade_min {
                continue;
            }
            let mut counts: Vec<u64> = cs.iter().map(|&c| n[&(c, *m)]).collect();
            counts.sort_unstable_by(|a, b| b.cmp(a));
            let top = counts[(cs.len() * 10).div_ceil(100).max(1) - 1];
            // Mean weights compared exactly: a/b <= c/d  <=>  a*d <= c*b.
            let mean = |c: &str| (weight[&(c, *m)], n[&(c, *m)]);
            let mut means: Vec<(u64, u64)> = cs.iter().map(|&c| mean(c)).collect();
            means.sort_unstable_by(|a, b| (a.0 * b.1).cmp(&(b.0 * a.1)));
            let cut = means[(cs.len() * 10).div_ceil(100).max(1) - 1];
            upgrade +=
                cs.iter().filter(|&&c| n[&(c, *m)] >= top && mean(c).0 * cut.1 <= cut.0 * mean(c).1).count();
        }
        let child = n.iter().filter(|&(k, &v)| v > child_min && sum[k] < child_avg_cents * v).count();
        let dei = genders
            .values()
            .filter(|set| {
                let females = set.iter().filter(|(_, g)| *g == "F").count();
                let males = set.iter().filter(|(_, g)| *g == "M").count();
                females > dei_min && females < males
            })
            .count();
        (upgrade, child, dei)
    }

    /// With the `seed` preset's thresholds every pattern fires on 1,000 rows.
    #[test]
    fn seed_preset_patterns_fire_on_a_small_run() {
        for seed in 0..3 {
            let (tx, imp, _) = run(1_000, seed, WeightMode::Amount);
            let (upgrade, child, dei) = detections(&tx, &imp, 500, 2, 80_000, 10);
            assert!(upgrade > 0 && child > 0 && dei > 0, "seed {seed}: {upgrade} {child} {dei}");
        }
    }

    /// Figures printed by the Python original for 1,000 rows.
    #[test]
    fn small_run_keeps_the_original_shape() {
        let merchant_rows = [
            504, 345, 44, 11, 6, 5, 3, 2, 9, 7, 4, 3, 2, 1, 4, 3, 2, 1, 6, 3, 2, 6, 3, 1, 3, 2, 1, 1, 2, 1,
            1, 2, 1, 1, 2, 1, 0, 1, 1, 1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0,
        ];
        let fraud_rows = [
            0, 0, 0, 1, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 1, 1, 1, 0, 0, 0, 0,
            0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0,
        ];
        let full: Vec<f64> = MERCHANTS.iter().map(|m| f64::from(m.full_rows)).collect();
        assert_eq!(apportion(1_000, &full), merchant_rows);
        assert_eq!(fraud_counts(&merchant_rows), fraud_rows);
        assert_eq!(customer_count(1_000), 169);
        assert_eq!(apportion(169, &GENDER_SHARES), [93, 76, 0, 0]);
        assert_eq!(apportion(169, &AGE_SHARES), [1, 16, 53, 42, 31, 18, 8]);

        let (tx, _, stats) = run(1_000, 0, WeightMode::Amount);
        let mut per_merchant: HashMap<&str, usize> = HashMap::new();
        let mut fraud = 0;
        for line in tx.lines().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            *per_merchant.entry(unquote(f[5])).or_default() += 1;
            fraud += usize::from(f[9] == "1");
        }
        for (m, &n) in MERCHANTS.iter().zip(&merchant_rows) {
            assert_eq!(per_merchant.get(m.id).copied().unwrap_or(0), n, "{}", m.id);
        }
        assert_eq!(fraud, 12);
        assert_eq!((stats.merchants, stats.pairs), (41, 391));
        assert!(stats.customers <= 169);
    }

    /// One full-size run checks every exactly apportioned count against BankSim's.
    #[test]
    fn full_size_counts_are_exact() {
        let (tx, imp, stats) = run(DEFAULT_ROWS, 0, WeightMode::Amount);
        let (upgrade, child, dei) = detections(&tx, &imp, 50_000, 80, 2_300, 100);
        assert!(upgrade > 0 && child > 0 && dei > 0, "banksim preset: {upgrade} {child} {dei}");
        let mut per_merchant: HashMap<&str, u64> = HashMap::new();
        let mut gender_of: HashMap<&str, &str> = HashMap::new();
        let mut steps: BTreeMap<u64, u64> = BTreeMap::new();
        let mut pairs: HashSet<(&str, &str)> = HashSet::new();
        let mut fraud = 0;
        let mut zeros = 0;
        let mut max_cents = 0;
        for line in tx.lines().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            *per_merchant.entry(unquote(f[5])).or_default() += 1;
            gender_of.insert(unquote(f[1]), unquote(f[3]));
            *steps.entry(f[0].parse().unwrap()).or_default() += 1;
            pairs.insert((f[1], f[5]));
            fraud += u64::from(f[9] == "1");
            zeros += u64::from(f[8] == "0.00");
            let (units, cents) = f[8].split_once('.').unwrap();
            max_cents = max_cents.max(units.parse::<u64>().unwrap() * 100 + cents.parse::<u64>().unwrap());
        }
        assert_eq!(per_merchant.values().sum::<u64>(), DEFAULT_ROWS);
        assert_eq!(per_merchant["M1823072687"], 299_693);
        assert_eq!(per_merchant["M348934600"], 205_426);
        for m in &MERCHANTS {
            assert_eq!(per_merchant[m.id], u64::from(m.full_rows), "{}", m.id);
        }
        assert_eq!(gender_of.len(), FULL_CUSTOMERS);
        let count = |g: &str| gender_of.values().filter(|&&v| v == g).count();
        assert_eq!((count("F"), count("M"), count("E"), count("U")), (2256, 1844, 7, 5));
        assert_eq!(fraud, 7_200);
        assert_eq!(zeros, 50);
        assert!(max_cents <= u64::from(MAX_CENTS));
        assert_eq!(steps.len(), STEPS);
        assert_eq!(steps.keys().next(), Some(&0));
        assert_eq!(steps.keys().last(), Some(&179));
        assert_eq!(
            stats,
            GenerateStats { rows: DEFAULT_ROWS, customers: 4_112, merchants: 50, pairs: pairs.len() as u64 }
        );
    }
}
