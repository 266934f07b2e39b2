//! Scoring a unification against the truth: pairwise precision and recall (over all
//! pairs of records put in one profile) and cluster precision and recall (profiles that
//! are exactly one true person's records).

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

/// Precision, recall and F1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prf {
    /// Share of predicted items that are right.
    pub precision: f64,
    /// Share of true items that were found.
    pub recall: f64,
}

impl Prf {
    /// The harmonic mean of precision and recall.
    pub fn f1(&self) -> f64 {
        if self.precision + self.recall == 0.0 {
            0.0
        } else {
            2.0 * self.precision * self.recall / (self.precision + self.recall)
        }
    }
}

/// Scores of a unification.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scores {
    /// Records scored (those in both the truth and the result).
    pub records: usize,
    /// Profiles among them.
    pub profiles: usize,
    /// True persons among them.
    pub persons: usize,
    /// Over pairs of records.
    pub pairwise: Prf,
    /// Over whole profiles.
    pub cluster: Prf,
}

fn pairs(n: usize) -> u64 {
    (n as u64) * (n as u64).saturating_sub(1) / 2
}

/// Score `predicted` (record -> profile) against `truth` (record -> person), over the
/// records both know.
pub fn score<K: Eq + Hash + Clone>(
    truth: &HashMap<K, String>,
    predicted: &HashMap<K, String>,
) -> Scores {
    let mut by_profile: HashMap<&str, Vec<&K>> = HashMap::new();
    let mut by_person: HashMap<&str, Vec<&K>> = HashMap::new();
    for (k, profile) in predicted {
        if let Some(person) = truth.get(k) {
            by_profile.entry(profile).or_default().push(k);
            by_person.entry(person).or_default().push(k);
        }
    }
    let records = by_profile.values().map(Vec::len).sum();
    let predicted_pairs: u64 = by_profile.values().map(|v| pairs(v.len())).sum();
    let true_pairs: u64 = by_person.values().map(|v| pairs(v.len())).sum();
    let mut right_pairs = 0u64;
    for members in by_profile.values() {
        let mut count: HashMap<&str, usize> = HashMap::new();
        for k in members {
            if let Some(p) = truth.get(*k) {
                *count.entry(p.as_str()).or_default() += 1;
            }
        }
        right_pairs += count.values().map(|n| pairs(*n)).sum::<u64>();
    }
    // one index per record, shared by both groupings
    let order: HashMap<&K, usize> = by_profile
        .values()
        .flatten()
        .enumerate()
        .map(|(i, k)| (*k, i))
        .collect();
    let index_of = |k: &K| order.get(k).copied().unwrap_or(usize::MAX);
    let profiles = set_with(&by_profile, &index_of);
    let persons = set_with(&by_person, &index_of);
    let exact = profiles.intersection(&persons).count();
    let ratio = |a: u64, b: u64| if b == 0 { 1.0 } else { a as f64 / b as f64 };
    Scores {
        records,
        profiles: profiles.len(),
        persons: persons.len(),
        pairwise: Prf {
            precision: ratio(right_pairs, predicted_pairs),
            recall: ratio(right_pairs, true_pairs),
        },
        cluster: Prf {
            precision: ratio(exact as u64, profiles.len() as u64),
            recall: ratio(exact as u64, persons.len() as u64),
        },
    }
}

fn set_with<K>(
    groups: &HashMap<&str, Vec<&K>>,
    index_of: &dyn Fn(&K) -> usize,
) -> HashSet<Vec<usize>> {
    groups
        .values()
        .map(|v| {
            let mut ids: Vec<usize> = v.iter().map(|k| index_of(k)).collect();
            ids.sort_unstable();
            ids
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(items: &[(&str, &str)]) -> HashMap<String, String> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn scores_count_pairs_and_exact_profiles() {
        let truth = map(&[
            ("a", "P1"),
            ("b", "P1"),
            ("c", "P1"),
            ("d", "P2"),
            ("e", "P3"),
        ]);
        // a+b together, c alone (missed), d+e wrongly together
        let predicted = map(&[("a", "X"), ("b", "X"), ("c", "Y"), ("d", "Z"), ("e", "Z")]);
        let s = score(&truth, &predicted);
        assert_eq!((s.records, s.profiles, s.persons), (5, 3, 3));
        // predicted pairs: ab, de; right: ab; true pairs: ab, ac, bc
        assert_eq!(s.pairwise.precision, 0.5);
        assert!((s.pairwise.recall - 1.0 / 3.0).abs() < 1e-9);
        // no profile equals a person exactly
        assert_eq!(s.cluster.precision, 0.0);
        let perfect = score(&truth, &truth);
        assert_eq!(perfect.pairwise.f1(), 1.0);
        assert_eq!(perfect.cluster.f1(), 1.0);
    }
}
