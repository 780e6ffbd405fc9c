//! OneID resolved a part at a time, for inputs whose plain components were found
//! elsewhere (on a cluster, see [`cluster`](super::cluster)).
//!
//! **Why parts give the whole's answer.** A part is a set of whole *plain components*:
//! the connected components of records linked by every usable key (junk values and
//! values held by more than `oneid_max_records_per_value` records removed) and by link
//! overrides. Splits and type limits only ever refuse a join, so every customer of the
//! whole input lies inside one plain component, and how a component is linked depends
//! only on its own rows: links go in (family priority, first holder in the canonical
//! record order, key) order, the canonical order compares two records by their own
//! stable hashes, and a usable key's holders are all in its component, so the junk
//! guard counts the same there. The caller leaves out rows of keys that are not usable
//! (a junk spelling or too many holders elsewhere would go unseen in a part), keeping
//! their records.
//!
//! What no part can decide alone is the `one_id`s: collisions and earlier ids are
//! settled across all customers at the end, by the same rules as one resolution
//! ([`assign_one_ids`]).

use std::collections::HashMap;

use super::error::OneIdError;
use super::graph::{IdentityGraph, OverrideAction, RecordOrder, ResolverConfig};
use super::stable_ids::{assign_one_ids, record_hash};

/// A customer found in one part.
#[derive(Debug)]
struct Customer {
    /// Its anchor: the smallest `(record_hash, record id)` of its records.
    anchor: (u64, usize),
    /// Its records: `records[start..start + len]`.
    start: usize,
    len: usize,
}

/// One `oneid()` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartwiseRow {
    pub record_id: String,
    pub one_id: i64,
    pub component_size: i64,
}

/// Customers gathered part by part; [`PartwiseResolution::finish`] gives their ids.
#[derive(Debug)]
pub struct PartwiseResolution {
    config: ResolverConfig,
    /// Overrides by either record, as indices into `overrides`.
    overrides: Vec<(String, String, OverrideAction)>,
    overrides_of: HashMap<String, Vec<usize>>,
    records: Vec<String>,
    customers: Vec<Customer>,
}

impl PartwiseResolution {
    /// `overrides`: every `(record_a, record_b, action)` of `userql.oneid_overrides`.
    pub fn new(config: ResolverConfig, overrides: Vec<(String, String, OverrideAction)>) -> Self {
        let mut overrides_of: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, (a, b, _)) in overrides.iter().enumerate() {
            overrides_of.entry(a.clone()).or_default().push(i);
            if b != a {
                overrides_of.entry(b.clone()).or_default().push(i);
            }
        }
        PartwiseResolution {
            config,
            overrides,
            overrides_of,
            records: Vec::new(),
            customers: Vec::new(),
        }
    }

    /// Resolves one part: `rows` are `(record_id, (id_type, id_value))` of whole plain
    /// components, a record without a usable identifier given with `None`.
    pub fn add_part<'a>(
        &mut self,
        rows: impl IntoIterator<Item = (&'a str, Option<(&'a str, &'a str)>)>,
    ) -> Result<(), OneIdError> {
        let mut graph = IdentityGraph::new();
        let mut seen: Vec<&str> = Vec::new();
        for (record, identifier) in rows {
            match identifier {
                Some((t, v)) => graph.add_identifier(record, t, v)?,
                None => graph.add_record(record)?,
            }
            if seen.last() != Some(&record) {
                seen.push(record);
            }
        }
        let mut wanted: Vec<usize> = seen
            .iter()
            .filter_map(|r| self.overrides_of.get(*r))
            .flatten()
            .copied()
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        for i in wanted {
            let (a, b, action) = &self.overrides[i];
            graph.add_override(a, b, *action)?;
        }
        graph.shrink_to_fit();
        let resolution = graph.resolve_with(&self.config, RecordOrder::Any)?;
        // Rows come grouped by customer (by part-local one_id).
        let mut current: Option<i64> = None;
        for row in resolution.iter() {
            if current != Some(row.one_id) {
                current = Some(row.one_id);
                self.customers.push(Customer {
                    anchor: (u64::MAX, usize::MAX),
                    start: self.records.len(),
                    len: 0,
                });
            }
            let index = self.records.len();
            self.records.push(row.record_id.to_string());
            if let Some(c) = self.customers.last_mut() {
                c.len += 1;
                let candidate = (record_hash(row.record_id), index);
                if c.anchor.1 == usize::MAX
                    || (candidate.0, row.record_id)
                        < (c.anchor.0, self.records[c.anchor.1].as_str())
                {
                    c.anchor = candidate;
                }
            }
        }
        Ok(())
    }

    /// Number of records resolved so far.
    pub fn record_count(&self) -> usize {
        self.records.len()
    }

    /// The rows of every part, with `one_id`s assigned across all of them (earlier ids
    /// from `previous`: `(record_id, one_id)`, a record listed twice counting with its
    /// smallest), ordered by `one_id`, then record id.
    pub fn finish(self, previous: &[(String, i64)]) -> Vec<PartwiseRow> {
        let PartwiseResolution {
            records,
            mut customers,
            ..
        } = self;
        customers.sort_unstable_by(|a, b| {
            a.anchor
                .0
                .cmp(&b.anchor.0)
                .then_with(|| records[a.anchor.1].cmp(&records[b.anchor.1]))
        });
        let anchor_hashes: Vec<u64> = customers.iter().map(|c| c.anchor.0).collect();

        let mut earlier: HashMap<&str, i64> = HashMap::new();
        for (record, id) in previous {
            earlier
                .entry(record.as_str())
                .and_modify(|e| *e = (*e).min(*id))
                .or_insert(*id);
        }
        let mut votes: Vec<(u32, i64)> = Vec::new();
        if !earlier.is_empty() {
            for (c, customer) in customers.iter().enumerate() {
                for record in &records[customer.start..customer.start + customer.len] {
                    if let Some(&id) = earlier.get(record.as_str()) {
                        votes.push((c as u32, id));
                    }
                }
            }
        }
        let mut previous_ids: Vec<i64> = earlier.values().copied().collect();
        previous_ids.sort_unstable();
        previous_ids.dedup();
        let ids = assign_one_ids(&anchor_hashes, votes, &previous_ids);

        let mut order: Vec<usize> = (0..customers.len()).collect();
        order.sort_unstable_by_key(|&c| ids[c]);
        let mut rows = Vec::with_capacity(records.len());
        let mut slots: Vec<Option<String>> = records.into_iter().map(Some).collect();
        for c in order {
            let customer = &customers[c];
            let mut mine: Vec<String> = slots[customer.start..customer.start + customer.len]
                .iter_mut()
                .filter_map(Option::take)
                .collect();
            mine.sort_unstable();
            for record_id in mine {
                rows.push(PartwiseRow {
                    record_id,
                    one_id: ids[c],
                    component_size: customer.len as i64,
                });
            }
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    type Row = (String, String, String);

    /// The plain components of `rows` by union-find over usable keys (as the cluster
    /// finds them), each as the rows of its records, usable keys only.
    fn parts(rows: &[Row], config: &ResolverConfig, links: &[(String, String)]) -> Vec<Vec<Row>> {
        let mut keys = super::super::keys::RowKeys::new(config);
        let mut holders: BTreeMap<String, (bool, Vec<String>)> = BTreeMap::new();
        let mut key = String::new();
        let mut key_of: Vec<Option<String>> = Vec::new();
        for (r, t, v) in rows {
            match keys.key_into(t, v, &mut key) {
                Some(junk) => {
                    let h = holders.entry(key.clone()).or_default();
                    h.0 |= junk;
                    if !h.1.contains(r) {
                        h.1.push(r.clone());
                    }
                    key_of.push(Some(key.clone()));
                }
                None => key_of.push(None),
            }
        }
        let usable = |k: &str| {
            let (junk, hs) = &holders[k];
            !junk && hs.len() <= config.max_records_per_value as usize
        };
        let mut parent: BTreeMap<String, String> = BTreeMap::new();
        fn find(p: &mut BTreeMap<String, String>, x: &str) -> String {
            let up = p.get(x).cloned().unwrap_or_else(|| x.to_string());
            if up == x {
                return up;
            }
            let root = find(p, &up);
            p.insert(x.to_string(), root.clone());
            root
        }
        let mut union = |a: &str, b: &str| {
            let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
            if ra != rb {
                parent.insert(ra, rb);
            }
        };
        for (k, (_, hs)) in &holders {
            if usable(k) {
                for h in &hs[1..] {
                    union(&hs[0], h);
                }
            }
        }
        for (a, b) in links {
            union(a, b);
        }
        let mut by_root: BTreeMap<String, Vec<Row>> = BTreeMap::new();
        for ((r, t, v), k) in rows.iter().zip(&key_of) {
            let root = find(&mut parent, r);
            let row = match k {
                Some(k) if usable(k) => (r.clone(), t.clone(), v.clone()),
                _ => (r.clone(), String::new(), String::new()),
            };
            by_root.entry(root).or_default().push(row);
        }
        by_root.into_values().collect()
    }

    fn whole(
        rows: &[Row],
        config: &ResolverConfig,
        overrides: &[(String, String, OverrideAction)],
        previous: &[(String, i64)],
    ) -> Vec<PartwiseRow> {
        let mut g = IdentityGraph::new();
        for (r, t, v) in rows {
            g.add_identifier(r, t, v).unwrap();
        }
        for (a, b, act) in overrides {
            g.add_override(a, b, *act).unwrap();
        }
        for (r, id) in previous {
            g.add_previous(r, *id).unwrap();
        }
        let res = g.resolve(config).unwrap();
        res.iter()
            .map(|row| PartwiseRow {
                record_id: row.record_id.to_string(),
                one_id: row.one_id,
                component_size: row.component_size,
            })
            .collect()
    }

    /// Resolves `rows` part by part, `per_chunk` parts to a chunk.
    fn partwise(
        rows: &[Row],
        config: &ResolverConfig,
        overrides: &[(String, String, OverrideAction)],
        previous: &[(String, i64)],
        per_chunk: usize,
    ) -> Vec<PartwiseRow> {
        let links: Vec<(String, String)> = overrides
            .iter()
            .filter(|o| o.2 == OverrideAction::Link)
            .map(|o| (o.0.clone(), o.1.clone()))
            .collect();
        let mut p = PartwiseResolution::new(config.clone(), overrides.to_vec());
        let parts = parts(rows, config, &links);
        for chunk in parts.chunks(per_chunk.max(1)) {
            p.add_part(chunk.iter().flatten().map(|(r, t, v)| {
                let id = (!t.is_empty()).then_some((t.as_str(), v.as_str()));
                (r.as_str(), id)
            }))
            .unwrap();
        }
        p.finish(previous)
    }

    fn config(settings: &[(&str, &str)]) -> ResolverConfig {
        ResolverConfig::from_settings(settings.iter().copied()).unwrap()
    }

    fn rows(raw: &[(&str, &str, &str)]) -> Vec<Row> {
        raw.iter()
            .map(|(r, t, v)| (r.to_string(), t.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_chain_split_by_a_type_limit_matches_the_whole() {
        let rows = rows(&[
            ("a", "member_no", "m1"),
            ("b", "member_no", "m1"),
            ("b", "phone", "13800138001"),
            ("c", "phone", "13800138001"),
            ("c", "member_no", "m2"),
            ("d", "email", "X@y.com"),
            (
                "e",
                "email_sha256",
                &crate::functions::identity::normalize::hash_id(
                    "email",
                    "x@y.com",
                    Default::default(),
                )
                .unwrap(),
            ),
            ("f", "device_id", "unknown"),
            ("g", "device_id", "unknown"),
        ]);
        let cfg = config(&[("oneid_type_limits", "member_no:1")]);
        for per_chunk in [1, 2, 100] {
            assert_eq!(
                partwise(&rows, &cfg, &[], &[], per_chunk),
                whole(&rows, &cfg, &[], &[])
            );
        }
    }

    /// Identifier rows, overrides and earlier ids.
    type Input = (
        Vec<Row>,
        Vec<(String, String, OverrideAction)>,
        Vec<(String, i64)>,
    );

    fn arb_input() -> impl Strategy<Value = Input> {
        let row = (0u8..40, 0u8..5, 0u8..12).prop_map(|(r, t, v)| {
            let types = ["phone", "email", "member_no", "device_id", "email_sha256"];
            let t = types[t as usize];
            let value = match t {
                "phone" => format!("138001380{v:02}"),
                "email" => format!("U{v}@x.com"),
                "email_sha256" => crate::functions::identity::normalize::hash_id(
                    "email",
                    &format!("u{v}@x.com"),
                    Default::default(),
                )
                .unwrap_or_default(),
                _ => format!("{t}-{}", v % 6),
            };
            (format!("r{r}"), t.to_string(), value)
        });
        let over = (0u8..40, 0u8..40, any::<bool>()).prop_map(|(a, b, link)| {
            let act = if link {
                OverrideAction::Link
            } else {
                OverrideAction::Split
            };
            (format!("r{a}"), format!("r{b}"), act)
        });
        let prev = (0u8..40, 1i64..6).prop_map(|(r, id)| (format!("r{r}"), id));
        (
            proptest::collection::vec(row, 0..120),
            proptest::collection::vec(over, 0..4),
            proptest::collection::vec(prev, 0..10),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn parts_resolve_as_the_whole(
            (rows, overrides, previous) in arb_input(),
            per_chunk in 1usize..4,
            limits in prop::sample::select(vec!["", "member_no:1", "phone:1,email:1", "device_id:2"]),
            max_per_value in 2u32..6,
        ) {
            let max = max_per_value.to_string();
            let cfg = config(&[
                ("oneid_type_limits", limits),
                ("oneid_max_records_per_value", &max),
                ("oneid_blocked_values", "device_id-5"),
            ]);
            prop_assert_eq!(
                partwise(&rows, &cfg, &overrides, &previous, per_chunk),
                whole(&rows, &cfg, &overrides, &previous)
            );
        }
    }
}
