//! Thresholds and presets (docs/patterns.md §5). Percentages and the amount limit are exact
//! decimals with at most six digits after the point, held as integer millionths, so that
//! `k = max(1, ceil(p × n / 100))` is computed with integers: `ceil(7.5% × 10) = 1`, and
//! `ceil(7% × 100 / 100)` is exactly 7, never 8.

use std::fmt;
use std::str::FromStr;

use crate::decimal::{MICROS_PER_UNIT, format_micros, parse_unsigned_micros};

/// A non-negative exact decimal with at most 6 digits after the point (and 15 before).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Decimal6 {
    micros: u128,
}

impl Decimal6 {
    /// The value in millionths.
    pub fn micros(self) -> u128 {
        self.micros
    }

    /// A whole number.
    pub const fn from_units(units: u64) -> Self {
        Self { micros: units as u128 * MICROS_PER_UNIT }
    }
}

/// Why a decimal setting was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    #[error("`{0}` is not a non-negative decimal with at most 15 digits before the point and 6 after")]
    Syntax(String),
    #[error("`{0}` is not a percentage between 0 and 100")]
    Percent(String),
}

impl FromStr for Decimal6 {
    type Err = DecimalError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_unsigned_micros(text.trim().as_bytes())
            .map(|micros| Self { micros })
            .ok_or_else(|| DecimalError::Syntax(text.to_owned()))
    }
}

impl fmt::Display for Decimal6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // At most 15 + 6 digits: always within i128.
        f.write_str(&format_micros(i128::try_from(self.micros).unwrap_or(i128::MAX)))
    }
}

/// A percentage from 0 to 100, exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Percent(Decimal6);

impl Percent {
    /// A whole percentage (at most 100).
    pub const fn whole(pct: u8) -> Self {
        let pct = if pct > 100 { 100 } else { pct };
        Self(Decimal6::from_units(pct as u64))
    }

    /// `max(1, ceil(self × n / 100))`: how many of `n` values fall at or beyond the cut-off.
    pub fn rank_of(self, n: u64) -> u64 {
        // p ≤ 100 × 10^6 and n < 2^64, so the product stays far inside u128.
        let numerator = self.0.micros() * u128::from(n);
        let denominator = 100 * MICROS_PER_UNIT;
        let k = numerator.div_ceil(denominator);
        u64::try_from(k).unwrap_or(u64::MAX).max(1)
    }
}

impl FromStr for Percent {
    type Err = DecimalError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let value: Decimal6 = text.parse().map_err(|_| DecimalError::Percent(text.to_owned()))?;
        if value > Decimal6::from_units(100) {
            return Err(DecimalError::Percent(text.to_owned()));
        }
        Ok(Self(value))
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Every threshold of the three patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Thresholds {
    /// UPGRADE: `N(m)` must be greater than this.
    pub upgrade_min_merchant_txns: u64,
    /// UPGRADE: the top share of a merchant's customers by count.
    pub upgrade_top_pct: Percent,
    /// UPGRADE: the bottom share of a merchant's weighted customers by mean weight.
    pub upgrade_bottom_pct: Percent,
    /// CHILD: `n(c,m)` must be greater than this.
    pub child_min_txns: u64,
    /// CHILD: the average amount must be strictly below this.
    pub child_max_avg_amount: Decimal6,
    /// DEI-NEEDED: `F(m)` must be greater than this.
    pub dei_min_female_customers: u64,
}

/// A named set of thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Preset {
    /// The brief's original figures, for full-size BankSim data.
    #[default]
    Banksim,
    /// The brief's scaled-down figures, for ~1,000-row data.
    Seed,
}

impl Preset {
    /// Every preset.
    pub const ALL: [Self; 2] = [Self::Banksim, Self::Seed];

    /// The name used in settings and flags.
    pub fn name(self) -> &'static str {
        match self {
            Self::Banksim => "banksim",
            Self::Seed => "seed",
        }
    }

    /// The preset's thresholds.
    pub fn thresholds(self) -> Thresholds {
        match self {
            Self::Banksim => Thresholds {
                upgrade_min_merchant_txns: 50_000,
                upgrade_top_pct: Percent::whole(10),
                upgrade_bottom_pct: Percent::whole(10),
                child_min_txns: 80,
                child_max_avg_amount: Decimal6::from_units(23),
                dei_min_female_customers: 100,
            },
            Self::Seed => Thresholds {
                upgrade_min_merchant_txns: 500,
                upgrade_top_pct: Percent::whole(10),
                upgrade_bottom_pct: Percent::whole(10),
                child_min_txns: 2,
                child_max_avg_amount: Decimal6::from_units(800),
                dei_min_female_customers: 10,
            },
        }
    }
}

impl FromStr for Preset {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|p| p.name() == text).ok_or_else(|| {
            format!("unknown preset `{text}`: use one of {}", Self::ALL.map(Self::name).join(", "))
        })
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Default for Thresholds {
    fn default() -> Self {
        Preset::default().thresholds()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pct(text: &str) -> Percent {
        text.parse().unwrap()
    }

    #[test]
    fn rank_is_exact_ceiling_at_least_one() {
        assert_eq!(pct("10").rank_of(4112), 412);
        assert_eq!(pct("10").rank_of(10), 1);
        assert_eq!(pct("10").rank_of(11), 2);
        assert_eq!(pct("7.5").rank_of(10), 1);
        assert_eq!(pct("7.5").rank_of(40), 3);
        // 7/10 × 10 in binary floating point is 7.000000000000001.
        assert_eq!(pct("70").rank_of(10), 7);
        assert_eq!(pct("0").rank_of(50), 1);
        assert_eq!(pct("100").rank_of(50), 50);
        assert_eq!(pct("0.000001").rank_of(u64::MAX), 184_467_440_738);
    }

    #[test]
    fn percent_bounds_and_syntax() {
        assert!("100.000001".parse::<Percent>().is_err());
        assert!("-1".parse::<Percent>().is_err());
        assert!("1e1".parse::<Percent>().is_err());
        assert!("2.1234567".parse::<Percent>().is_err());
        assert_eq!(pct("2.50").to_string(), "2.5");
    }

    #[test]
    fn presets_hold_the_brief_figures() {
        let b = Preset::Banksim.thresholds();
        assert_eq!(b.upgrade_min_merchant_txns, 50_000);
        assert_eq!(b.child_max_avg_amount.to_string(), "23");
        let s: Preset = "seed".parse().unwrap();
        assert_eq!(s.thresholds().child_max_avg_amount.micros(), 800_000_000);
        assert!("other".parse::<Preset>().unwrap_err().contains("banksim, seed"));
    }
}
