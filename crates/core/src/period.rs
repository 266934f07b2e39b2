//! Periods of relative windows: `90 days`, `2 weeks`, `1 month`, `3 years`, used by
//! measures (`window = { last = "90 days" }`) and segments (`within "last 30 days"`).

use std::str::FromStr;

use chrono::{DateTime, Days, Months, Utc};

/// A period of a relative window, e.g. 90 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    /// How many units (at least 1).
    pub amount: u32,
    /// The unit.
    pub unit: PeriodUnit,
}

/// Units of a [`Period`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeriodUnit {
    /// Days.
    Days,
    /// Weeks of seven days.
    Weeks,
    /// Calendar months.
    Months,
    /// Calendar years.
    Years,
}

impl Period {
    /// The instant one period before `now` (`None` when out of range).
    pub fn before(self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let n = u64::from(self.amount);
        match self.unit {
            PeriodUnit::Days => now.checked_sub_days(Days::new(n)),
            PeriodUnit::Weeks => now.checked_sub_days(Days::new(n.checked_mul(7)?)),
            PeriodUnit::Months => now.checked_sub_months(Months::new(self.amount)),
            PeriodUnit::Years => now.checked_sub_months(Months::new(self.amount.checked_mul(12)?)),
        }
    }

    /// The instant one period after `now` (`None` when out of range).
    pub fn after(self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let n = u64::from(self.amount);
        match self.unit {
            PeriodUnit::Days => now.checked_add_days(Days::new(n)),
            PeriodUnit::Weeks => now.checked_add_days(Days::new(n.checked_mul(7)?)),
            PeriodUnit::Months => now.checked_add_months(Months::new(self.amount)),
            PeriodUnit::Years => now.checked_add_months(Months::new(self.amount.checked_mul(12)?)),
        }
    }
}

/// Why a period does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeriodError {
    /// Not `<number> <unit>`.
    #[error("`{0}` is not a period")]
    Shape(String),
    /// The number is not a positive whole number.
    #[error("`{0}` is not a positive whole number")]
    Amount(String),
    /// The unit is unknown.
    #[error("unknown unit `{0}`")]
    Unit(String),
}

impl FromStr for Period {
    type Err = PeriodError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.split_whitespace();
        let (Some(amount), Some(unit), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(PeriodError::Shape(s.to_string()));
        };
        let amount = match amount.parse::<u32>() {
            Ok(n) if n > 0 => n,
            _ => return Err(PeriodError::Amount(amount.to_string())),
        };
        let unit = match unit.to_ascii_lowercase().as_str() {
            "day" | "days" => PeriodUnit::Days,
            "week" | "weeks" => PeriodUnit::Weeks,
            "month" | "months" => PeriodUnit::Months,
            "year" | "years" => PeriodUnit::Years,
            _ => return Err(PeriodError::Unit(unit.to_string())),
        };
        Ok(Period { amount, unit })
    }
}
