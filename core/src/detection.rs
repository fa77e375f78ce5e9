//! What the engines produce (docs/patterns.md §4): a detection is a key `(pattern, customer,
//! merchant)` emitted once, with the chunk after which its condition first held. Also the
//! spreadsheet-safe form of names that every output file uses (§6).

use std::borrow::Cow;
use std::fmt;

/// One of the three patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pattern {
    /// PatId1: top customers by count with a low mean weight, at a large merchant.
    Upgrade,
    /// PatId2: many transactions with a low average amount.
    Child,
    /// PatId3: a merchant with fewer female than male customers.
    DeiNeeded,
}

impl Pattern {
    /// Every pattern, in `patternId` order.
    pub const ALL: [Self; 3] = [Self::Upgrade, Self::Child, Self::DeiNeeded];

    /// The `patternId` column: `PatId1`, `PatId2`, `PatId3`.
    pub fn id(self) -> &'static str {
        match self {
            Self::Upgrade => "PatId1",
            Self::Child => "PatId2",
            Self::DeiNeeded => "PatId3",
        }
    }

    /// The `ActionType` column: `UPGRADE`, `CHILD`, `DEI-NEEDED`.
    pub fn action_type(self) -> &'static str {
        match self {
            Self::Upgrade => "UPGRADE",
            Self::Child => "CHILD",
            Self::DeiNeeded => "DEI-NEEDED",
        }
    }

    /// The pattern of a `patternId`.
    pub fn from_id(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.id() == id)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.action_type())
    }
}

/// A detection. Ordered by chunk index, then key, as `verify --emit` writes them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Detection {
    /// The chunk after which the condition first held.
    pub chunk: u64,
    pub pattern: Pattern,
    /// The customer; empty for DEI-NEEDED.
    pub customer: String,
    pub merchant: String,
}

impl Detection {
    /// The key that is emitted at most once.
    pub fn key(&self) -> (Pattern, &str, &str) {
        (self.pattern, &self.customer, &self.merchant)
    }
}

/// Characters that make a spreadsheet read a cell as a formula (OWASP, CSV injection).
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// The spreadsheet-safe form of a name: a leading `'` when it starts like a formula.
pub fn excel_safe(value: &str) -> Cow<'_, str> {
    if value.starts_with(FORMULA_STARTS) { Cow::Owned(format!("'{value}")) } else { Cow::Borrowed(value) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neutralises_formula_starts_only() {
        assert_eq!(excel_safe("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        for start in ["+1", "-1", "@SUM", "\tx", "\rx"] {
            assert_eq!(excel_safe(start), format!("'{start}"));
        }
        assert_eq!(excel_safe("C123"), "C123");
        assert_eq!(excel_safe("a=b"), "a=b");
        assert_eq!(excel_safe(""), "");
    }

    #[test]
    fn ids_round_trip() {
        for p in Pattern::ALL {
            assert_eq!(Pattern::from_id(p.id()), Some(p));
        }
        assert_eq!(Pattern::from_id("PatId4"), None);
    }
}
