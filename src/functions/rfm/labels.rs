//! The names an operations team reads: the R–F segment grid and the eight value classes,
//! in English and Chinese (`userql.rfm_language`).

/// Label language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    En,
    Zh,
}

impl Language {
    /// From the `userql.rfm_language` setting (validated at `SET`: `en` or `zh`).
    pub fn from_setting(value: &str) -> Self {
        if value.eq_ignore_ascii_case("zh") {
            Language::Zh
        } else {
            Language::En
        }
    }
}

/// A segment of the 5×5 R–F grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Segment {
    Champions,
    LoyalCustomers,
    PotentialLoyalists,
    NewCustomers,
    Promising,
    NeedAttention,
    AboutToSleep,
    AtRisk,
    CantLoseThem,
    Hibernating,
}

impl Segment {
    /// The grid cell for scores 1..=5 (`None` outside the grid).
    pub fn of(r: i64, f: i64) -> Option<Self> {
        use Segment::*;
        Some(match (r, f) {
            (5, 1) => NewCustomers,
            (5, 2 | 3) | (4, 2 | 3) => PotentialLoyalists,
            (5, 4 | 5) => Champions,
            (4, 1) => Promising,
            (4, 4 | 5) | (3, 4 | 5) => LoyalCustomers,
            (3, 1 | 2) => AboutToSleep,
            (3, 3) => NeedAttention,
            (1 | 2, 1 | 2) => Hibernating,
            (1 | 2, 3 | 4) => AtRisk,
            (1 | 2, 5) => CantLoseThem,
            _ => return None,
        })
    }

    /// The label in `language`.
    pub fn label(self, language: Language) -> &'static str {
        use Segment::*;
        match (self, language) {
            (Champions, Language::En) => "Champions",
            (Champions, Language::Zh) => "冠军客户",
            (LoyalCustomers, Language::En) => "Loyal Customers",
            (LoyalCustomers, Language::Zh) => "忠诚客户",
            (PotentialLoyalists, Language::En) => "Potential Loyalists",
            (PotentialLoyalists, Language::Zh) => "潜力忠诚客户",
            (NewCustomers, Language::En) => "New Customers",
            (NewCustomers, Language::Zh) => "新客户",
            (Promising, Language::En) => "Promising",
            (Promising, Language::Zh) => "有潜力客户",
            (NeedAttention, Language::En) => "Need Attention",
            (NeedAttention, Language::Zh) => "需要关注客户",
            (AboutToSleep, Language::En) => "About to Sleep",
            (AboutToSleep, Language::Zh) => "即将沉睡客户",
            (AtRisk, Language::En) => "At Risk",
            (AtRisk, Language::Zh) => "有流失风险客户",
            (CantLoseThem, Language::En) => "Can't Lose Them",
            (CantLoseThem, Language::Zh) => "不能失去的客户",
            (Hibernating, Language::En) => "Hibernating",
            (Hibernating, Language::Zh) => "沉睡客户",
        }
    }
}

/// One of the eight value classes (重要价值客户 ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ValueClass {
    pub r_high: bool,
    pub f_high: bool,
    pub m_high: bool,
}

impl ValueClass {
    /// Each of R, F, M is high when better than the average: fewer days since the last
    /// order than average, more orders, more spent (strictly).
    pub fn of(
        recency_days: f64,
        frequency: f64,
        monetary: f64,
        avg_recency_days: f64,
        avg_frequency: f64,
        avg_monetary: f64,
    ) -> Self {
        Self {
            r_high: recency_days < avg_recency_days,
            f_high: frequency > avg_frequency,
            m_high: monetary > avg_monetary,
        }
    }

    /// The label in `language`.
    pub fn label(self, language: Language) -> &'static str {
        let en = language == Language::En;
        match (self.r_high, self.f_high, self.m_high) {
            (true, true, true) => {
                if en {
                    "Important Value"
                } else {
                    "重要价值客户"
                }
            }
            (true, false, true) => {
                if en {
                    "Important Development"
                } else {
                    "重要发展客户"
                }
            }
            (false, true, true) => {
                if en {
                    "Important Retention"
                } else {
                    "重要保持客户"
                }
            }
            (false, false, true) => {
                if en {
                    "Important Recall"
                } else {
                    "重要挽留客户"
                }
            }
            (true, true, false) => {
                if en {
                    "General Value"
                } else {
                    "一般价值客户"
                }
            }
            (true, false, false) => {
                if en {
                    "General Development"
                } else {
                    "一般发展客户"
                }
            }
            (false, true, false) => {
                if en {
                    "General Retention"
                } else {
                    "一般保持客户"
                }
            }
            (false, false, false) => {
                if en {
                    "General Recall"
                } else {
                    "一般挽留客户"
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SQL_API.md's R–F grid, row by row (R = 5 first), every cell.
    const GRID: [[&str; 5]; 5] = [
        [
            "New Customers",
            "Potential Loyalists",
            "Potential Loyalists",
            "Champions",
            "Champions",
        ],
        [
            "Promising",
            "Potential Loyalists",
            "Potential Loyalists",
            "Loyal Customers",
            "Loyal Customers",
        ],
        [
            "About to Sleep",
            "About to Sleep",
            "Need Attention",
            "Loyal Customers",
            "Loyal Customers",
        ],
        [
            "Hibernating",
            "Hibernating",
            "At Risk",
            "At Risk",
            "Can't Lose Them",
        ],
        [
            "Hibernating",
            "Hibernating",
            "At Risk",
            "At Risk",
            "Can't Lose Them",
        ],
    ];

    #[test]
    fn every_grid_cell_matches_the_contract() {
        for (row, r) in (1..=5).rev().enumerate() {
            for f in 1..=5 {
                let seg = Segment::of(r, f).expect("in the grid");
                assert_eq!(
                    seg.label(Language::En),
                    GRID[row][f as usize - 1],
                    "R{r} F{f}"
                );
                assert!(!seg.label(Language::Zh).is_ascii());
            }
        }
        assert_eq!(Segment::of(0, 3), None);
        assert_eq!(Segment::of(6, 1), None);
    }

    #[test]
    fn every_value_class_matches_the_contract() {
        let table = [
            (true, true, true, "Important Value", "重要价值客户"),
            (true, false, true, "Important Development", "重要发展客户"),
            (false, true, true, "Important Retention", "重要保持客户"),
            (false, false, true, "Important Recall", "重要挽留客户"),
            (true, true, false, "General Value", "一般价值客户"),
            (true, false, false, "General Development", "一般发展客户"),
            (false, true, false, "General Retention", "一般保持客户"),
            (false, false, false, "General Recall", "一般挽留客户"),
        ];
        for (r, f, m, en, zh) in table {
            // Better than average: fewer days, more orders, more money.
            let c = ValueClass::of(
                if r { 5.0 } else { 50.0 },
                if f { 9.0 } else { 1.0 },
                if m { 900.0 } else { 10.0 },
                20.0,
                3.0,
                100.0,
            );
            assert_eq!(c.label(Language::En), en);
            assert_eq!(c.label(Language::Zh), zh);
        }
        // Equal to the average is not better than it.
        let c = ValueClass::of(20.0, 3.0, 100.0, 20.0, 3.0, 100.0);
        assert_eq!(c.label(Language::En), "General Recall");
    }
}
