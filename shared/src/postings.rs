//! An inverted index of label sets (Prometheus calls it postings): for each label name and
//! value, the ids of the label sets that have it, as compressed bitmaps. It only narrows a
//! search: callers still check every candidate against the matchers, so a matcher the index
//! cannot use costs time, never correctness.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use roaring::RoaringBitmap;

use crate::labels::Labels;
use crate::query::{LabelMatcher, MatchOp};

/// Label name → value → ids.
#[derive(Debug, Default, Clone)]
pub struct Postings {
    by_label: HashMap<String, BTreeMap<String, RoaringBitmap>>,
    /// (name, value) entries, the cost of a walk over every value.
    entries: usize,
}

impl Postings {
    pub fn new() -> Self {
        Self::default()
    }

    /// Indexes label set `id` (empty values are absent labels, as everywhere).
    pub fn add(&mut self, id: u32, labels: &Labels) {
        for label in labels.iter().filter(|l| !l.value.is_empty()) {
            let values = match self.by_label.get_mut(label.name.as_str()) {
                Some(values) => values,
                None => self.by_label.entry(label.name.clone()).or_default(),
            };
            match values.get_mut(label.value.as_str()) {
                Some(ids) => {
                    ids.insert(id);
                }
                None => {
                    values.insert(label.value.clone(), RoaringBitmap::from_iter([id]));
                    self.entries += 1;
                }
            }
        }
    }

    /// Forgets label set `id`, which was added with `labels`.
    pub fn remove(&mut self, id: u32, labels: &Labels) {
        for label in labels.iter() {
            let Some(values) = self.by_label.get_mut(label.name.as_str()) else {
                continue;
            };
            if let Some(ids) = values.get_mut(label.value.as_str()) {
                ids.remove(id);
                if ids.is_empty() {
                    values.remove(label.value.as_str());
                    self.entries -= 1;
                }
            }
            if values.is_empty() {
                self.by_label.remove(label.name.as_str());
            }
        }
    }

    /// The ids that can pass every matcher: the intersection of the ids each matcher that
    /// rejects the empty value selects (such a label set must carry the label, with a value
    /// the matcher accepts). `None` when no matcher narrows: every id is a candidate.
    pub fn candidates(&self, matchers: &[LabelMatcher]) -> Option<RoaringBitmap> {
        let mut result: Option<RoaringBitmap> = None;
        for m in matchers.iter().filter(|m| !m.matches_empty()) {
            let values = self.by_label.get(m.name.as_str());
            let ids = match m.op {
                MatchOp::Equal => values
                    .and_then(|v| v.get(m.value.as_str()))
                    .cloned()
                    .unwrap_or_default(),
                MatchOp::NotEqual | MatchOp::Regex | MatchOp::NotRegex => {
                    let mut union = RoaringBitmap::new();
                    for (value, ids) in values.into_iter().flatten() {
                        if m.matches(value) {
                            union |= ids;
                        }
                    }
                    union
                }
            };
            let narrowed = match result {
                Some(so_far) => so_far & ids,
                None => ids,
            };
            let empty = narrowed.is_empty();
            result = Some(narrowed);
            if empty {
                break;
            }
        }
        result
    }

    /// Names of the labels of the ids that are candidates (every id when `None`) and pass
    /// `keep`, sorted. `labels_of` gives an id's label set. With fewer candidates than label
    /// values, the candidates' label sets are read; otherwise each name stops at its first
    /// kept id, about one check per label value rather than one per label set.
    pub fn label_names<'a>(
        &self,
        candidates: Option<&RoaringBitmap>,
        keep: impl Fn(u32) -> bool,
        labels_of: impl Fn(u32) -> Option<&'a Labels>,
    ) -> Vec<String> {
        if let Some(few) = candidates.filter(|c| c.len() < self.entries as u64) {
            let names: BTreeSet<&str> = few
                .iter()
                .filter(|id| keep(*id))
                .filter_map(&labels_of)
                .flat_map(|l| {
                    l.iter()
                        .filter(|l| !l.value.is_empty())
                        .map(|l| l.name.as_str())
                })
                .collect();
            return names.into_iter().map(str::to_string).collect();
        }
        let mut names: Vec<String> = self
            .by_label
            .iter()
            .filter(|(_, values)| values.values().any(|ids| any_kept(ids, candidates, &keep)))
            .map(|(name, _)| name.clone())
            .collect();
        names.sort();
        names
    }

    /// Values of label `name` on the ids that are candidates and pass `keep`, sorted (the
    /// same two strategies as [`Postings::label_names`]).
    pub fn label_values<'a>(
        &self,
        name: &str,
        candidates: Option<&RoaringBitmap>,
        keep: impl Fn(u32) -> bool,
        labels_of: impl Fn(u32) -> Option<&'a Labels>,
    ) -> Vec<String> {
        let Some(values) = self.by_label.get(name) else {
            return Vec::new();
        };
        if let Some(few) = candidates.filter(|c| c.len() < values.len() as u64) {
            let found: BTreeSet<&str> = few
                .iter()
                .filter(|id| keep(*id))
                .filter_map(&labels_of)
                .filter_map(|l| l.get(name).filter(|v| !v.is_empty()))
                .collect();
            return found.into_iter().map(str::to_string).collect();
        }
        values
            .iter()
            .filter(|(_, ids)| any_kept(ids, candidates, &keep))
            .map(|(value, _)| value.clone())
            .collect()
    }

    /// Approximate heap bytes.
    pub fn heap_bytes(&self) -> usize {
        self.by_label
            .iter()
            .map(|(name, values)| {
                name.capacity()
                    + values
                        .iter()
                        .map(|(value, ids)| value.capacity() + ids.serialized_size() + 48)
                        .sum::<usize>()
            })
            .sum()
    }
}

/// Whether some id of `ids` is a candidate and passes `keep`.
fn any_kept(
    ids: &RoaringBitmap,
    candidates: Option<&RoaringBitmap>,
    keep: &impl Fn(u32) -> bool,
) -> bool {
    ids.iter()
        .any(|id| candidates.is_none_or(|c| c.contains(id)) && keep(id))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    fn matcher(name: &str, op: MatchOp, value: &str) -> LabelMatcher {
        LabelMatcher::new(op, name, value).unwrap()
    }

    /// The candidates always contain every id whose labels pass the matchers.
    #[test]
    fn candidates_narrow_without_losing_a_match() {
        let sets = [
            labels(&[("__name__", "up"), ("job", "node"), ("i", "1")]),
            labels(&[("__name__", "up"), ("job", "api")]),
            labels(&[("__name__", "cpu"), ("job", "node"), ("mode", "idle")]),
            labels(&[("__name__", "cpu"), ("job", "node"), ("mode", "user")]),
            labels(&[("__name__", "mem")]),
        ];
        let mut postings = Postings::new();
        for (id, l) in sets.iter().enumerate() {
            postings.add(id as u32, l);
        }
        let cases: Vec<(Vec<LabelMatcher>, Option<Vec<u32>>)> = vec![
            (
                vec![matcher("__name__", MatchOp::Equal, "up")],
                Some(vec![0, 1]),
            ),
            (
                vec![
                    matcher("__name__", MatchOp::Equal, "cpu"),
                    matcher("mode", MatchOp::NotEqual, "idle"),
                ],
                Some(vec![2, 3]),
            ),
            (
                vec![matcher("__name__", MatchOp::Regex, "up|mem")],
                Some(vec![0, 1, 4]),
            ),
            (
                vec![matcher("job", MatchOp::Regex, ".+")],
                Some(vec![0, 1, 2, 3]),
            ),
            (
                vec![matcher("job", MatchOp::NotRegex, "")],
                Some(vec![0, 1, 2, 3]),
            ),
            (vec![matcher("job", MatchOp::Equal, "nope")], Some(vec![])),
            // Matchers that accept a missing label cannot narrow.
            (vec![matcher("job", MatchOp::NotEqual, "node")], None),
            (vec![matcher("mode", MatchOp::Regex, "idle|")], None),
            (vec![matcher("x", MatchOp::Equal, "")], None),
            (vec![], None),
        ];
        for (matchers, want) in cases {
            let got = postings
                .candidates(&matchers)
                .map(|c| c.iter().collect::<Vec<u32>>());
            assert_eq!(got, want, "{matchers:?}");
            let passing: Vec<u32> = sets
                .iter()
                .enumerate()
                .filter(|(_, l)| crate::query::matches_all(&matchers, l))
                .map(|(id, _)| id as u32)
                .collect();
            if let Some(got) = got {
                assert!(passing.iter().all(|id| got.contains(id)), "{matchers:?}");
            }
        }
    }

    #[test]
    fn names_and_values_are_those_of_the_kept_candidates() {
        let sets = [
            labels(&[("__name__", "up"), ("job", "node"), ("i", "1")]),
            labels(&[("__name__", "up"), ("job", "api")]),
            labels(&[("__name__", "cpu"), ("job", "node"), ("mode", "idle")]),
            labels(&[("__name__", "mem"), ("zone", "a")]),
        ];
        let mut postings = Postings::new();
        for (id, l) in sets.iter().enumerate() {
            postings.add(id as u32, l);
        }
        // keep: ids 0..=2 (say, those with samples in the range).
        let keep = |id: u32| id <= 2;
        let of = |id: u32| sets.get(id as usize);
        assert_eq!(
            postings.label_names(None, keep, of),
            vec!["__name__", "i", "job", "mode"]
        );
        assert_eq!(
            postings.label_values("__name__", None, keep, of),
            vec!["cpu", "up"]
        );
        let up = postings.candidates(&[matcher("__name__", MatchOp::Equal, "up")]);
        assert_eq!(
            postings.label_names(up.as_ref(), keep, of),
            vec!["__name__", "i", "job"]
        );
        assert_eq!(
            postings.label_values("job", up.as_ref(), |_| true, of),
            vec!["api", "node"]
        );
        assert_eq!(
            postings.label_values("zone", None, keep, of),
            Vec::<String>::new()
        );
        assert!(postings.label_values("nope", None, keep, of).is_empty());
    }

    /// Both strategies (walk the values, or read the candidates' label sets) give the same
    /// answer whichever the candidate count picks.
    #[test]
    fn both_strategies_agree() {
        let sets: Vec<Labels> = (0..50u32)
            .map(|i| {
                let zone = if i.is_multiple_of(2) { "even" } else { "odd" };
                labels(&[("__name__", "up"), ("zone", zone)])
            })
            .collect();
        let mut postings = Postings::new();
        for (id, l) in sets.iter().enumerate() {
            postings.add(id as u32, l);
        }
        let of = |id: u32| sets.get(id as usize);
        let keep = |id: u32| id.is_multiple_of(4) || id == 7;
        let many: RoaringBitmap = (0..50).collect();
        let few: RoaringBitmap = [7].into_iter().collect();
        assert!(many.len() >= postings.entries as u64 && few.len() < 2);
        assert_eq!(
            postings.label_values("zone", Some(&many), keep, of),
            vec!["even", "odd"]
        );
        assert_eq!(
            postings.label_values("zone", Some(&few), keep, of),
            vec!["odd"]
        );
        assert_eq!(
            postings.label_names(Some(&many), keep, of),
            vec!["__name__", "zone"]
        );
        assert_eq!(
            postings.label_names(Some(&few), |_| false, of),
            Vec::<String>::new()
        );
    }

    #[test]
    fn removal_forgets_ids_and_empty_entries() {
        let mut postings = Postings::new();
        let a = labels(&[("__name__", "up"), ("job", "x")]);
        let b = labels(&[("__name__", "up"), ("job", "y")]);
        postings.add(0, &a);
        postings.add(1, &b);
        postings.remove(0, &a);
        let up = [matcher("__name__", MatchOp::Equal, "up")];
        assert_eq!(
            postings
                .candidates(&up)
                .map(|c| c.iter().collect::<Vec<_>>()),
            Some(vec![1])
        );
        postings.remove(1, &b);
        assert!(postings.by_label.is_empty());
        // An id can come back with other labels (a reused slot).
        postings.add(0, &b);
        let y = [matcher("job", MatchOp::Equal, "y")];
        assert_eq!(
            postings
                .candidates(&y)
                .map(|c| c.iter().collect::<Vec<_>>()),
            Some(vec![0])
        );
    }
}
