//! Lifecycle stages of one customer from their order timestamps: plain Rust.
//!
//! Timestamps are microseconds since the epoch. Durations compare at full precision:
//! "more than D days before as_of" is `as_of − ts > D days` (exactly D days is not more),
//! "within D days of as_of" is `as_of − ts ≤ D days`.

const DAY: i64 = 86_400_000_000;

/// The `userql.lifecycle_*` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageRules {
    pub new_days: i64,
    pub active_days: i64,
    pub churn_days: i64,
    pub mature_orders: i64,
}

impl Default for StageRules {
    fn default() -> Self {
        Self {
            new_days: 30,
            active_days: 90,
            churn_days: 180,
            mature_orders: 5,
        }
    }
}

/// A lifecycle stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    New,
    Growing,
    Mature,
    AtRisk,
    Churned,
}

impl Stage {
    /// The stage's name in results (`churned`, `at_risk`, ...).
    pub fn code(self) -> &'static str {
        match self {
            Stage::New => "new",
            Stage::Growing => "growing",
            Stage::Mature => "mature",
            Stage::AtRisk => "at_risk",
            Stage::Churned => "churned",
        }
    }

    /// Its Chinese name (引入期 ...), for docs and dashboards.
    pub fn chinese(self) -> &'static str {
        match self {
            Stage::New => "引入期",
            Stage::Growing => "成长期",
            Stage::Mature => "成熟期",
            Stage::AtRisk => "衰退期",
            Stage::Churned => "流失期",
        }
    }
}

impl StageRules {
    /// The stage of a customer whose first and last orders (at or before `as_of`) are
    /// `first` and `last`, `orders` of them in all. First matching rule wins.
    pub fn stage(&self, first: i64, last: i64, orders: i64, as_of: i64) -> Stage {
        if as_of - last > self.churn_days * DAY {
            Stage::Churned
        } else if as_of - last > self.active_days * DAY {
            Stage::AtRisk
        } else if as_of - first <= self.new_days * DAY && orders == 1 {
            Stage::New
        } else if orders >= self.mature_orders {
            Stage::Mature
        } else {
            Stage::Growing
        }
    }

    /// The stage at `at` from a customer's sorted order timestamps, using only orders at
    /// or before `at`; `None` when there are none.
    pub fn stage_at(&self, sorted: &[i64], at: i64) -> Option<Stage> {
        let n = sorted.partition_point(|&t| t <= at);
        (n > 0).then(|| self.stage(sorted[0], sorted[n - 1], n as i64, at))
    }

    /// Reactivated (回流): two consecutive orders more than `churn_days` apart, the later
    /// of them within `active_days` of `as_of` (orders after `as_of` are not looked at).
    pub fn reactivated(&self, sorted: &[i64], as_of: i64) -> bool {
        let n = sorted.partition_point(|&t| t <= as_of);
        sorted[..n]
            .windows(2)
            .any(|w| w[1] - w[0] > self.churn_days * DAY && as_of - w[1] <= self.active_days * DAY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AS_OF: i64 = 1_000 * DAY;

    fn days_before(d: i64) -> i64 {
        AS_OF - d * DAY
    }

    /// SQL_API.md's stage table, rule by rule, at and around each boundary.
    #[test]
    fn every_rule_and_boundary() {
        let r = StageRules::default();
        // churned: last order more than 180 days before as_of.
        assert_eq!(
            r.stage(days_before(400), days_before(181), 3, AS_OF),
            Stage::Churned
        );
        assert_eq!(
            r.stage(days_before(400), days_before(180) - 1, 3, AS_OF),
            Stage::Churned
        );
        // exactly 180 days is not more: at_risk (more than 90).
        assert_eq!(
            r.stage(days_before(400), days_before(180), 3, AS_OF),
            Stage::AtRisk
        );
        assert_eq!(
            r.stage(days_before(400), days_before(91), 9, AS_OF),
            Stage::AtRisk
        );
        // exactly 90 days: still active.
        assert_eq!(
            r.stage(days_before(400), days_before(90), 9, AS_OF),
            Stage::Mature
        );
        // new: first order within 30 days and one order.
        assert_eq!(
            r.stage(days_before(30), days_before(30), 1, AS_OF),
            Stage::New
        );
        assert_eq!(
            r.stage(days_before(30) - 1, days_before(30) - 1, 1, AS_OF),
            Stage::Growing
        );
        assert_eq!(
            r.stage(days_before(10), days_before(2), 2, AS_OF),
            Stage::Growing
        );
        // mature: at least 5 orders.
        assert_eq!(
            r.stage(days_before(200), days_before(2), 5, AS_OF),
            Stage::Mature
        );
        assert_eq!(
            r.stage(days_before(200), days_before(2), 4, AS_OF),
            Stage::Growing
        );
        // An order exactly at as_of counts.
        assert_eq!(r.stage(AS_OF, AS_OF, 1, AS_OF), Stage::New);
    }

    #[test]
    fn stages_in_time_and_reactivation() {
        let r = StageRules::default();
        let orders = [days_before(500), days_before(450), days_before(20)];
        assert_eq!(r.stage_at(&orders, AS_OF), Some(Stage::Growing));
        assert_eq!(r.stage_at(&orders, days_before(30)), Some(Stage::Churned));
        assert_eq!(r.stage_at(&orders, days_before(600)), None);
        assert!(r.reactivated(&orders, AS_OF));
        // The return is more than 90 days ago: no longer "reactivated".
        assert!(!r.reactivated(&orders, AS_OF + 71 * DAY));
        // A gap of exactly 180 days is not a churn.
        assert!(!r.reactivated(&[days_before(200), days_before(20)], AS_OF));
        assert!(r.reactivated(&[days_before(201), days_before(20)], AS_OF));
    }

    #[test]
    fn names() {
        assert_eq!(Stage::AtRisk.code(), "at_risk");
        assert_eq!(Stage::Churned.chinese(), "流失期");
    }
}
