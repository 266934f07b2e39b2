//! Which people appear in a source, in what order, and where the malformed rows go.

use rand::Rng;

use super::rng::{rng_for, Stream};

/// The people behind the rows of one source, in file order.
#[derive(Debug, Clone)]
pub(crate) struct Rows {
    /// Person id of each row.
    pub person: Vec<u32>,
    /// How many earlier rows of the file describe the same person.
    pub occurrence: Vec<u8>,
}

impl Rows {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.person.len()
    }

    /// Number of distinct people.
    pub fn people(&self) -> usize {
        self.occurrence.iter().filter(|&&o| o == 0).count()
    }

    /// Rows that describe a person already described by an earlier row.
    pub fn duplicates(&self) -> usize {
        self.len() - self.people()
    }

    /// Distinct person ids, ascending.
    pub fn distinct_sorted(&self) -> Vec<u32> {
        let mut ids = self.person.clone();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Makes row `row` describe the same person as row `source`.
    pub fn copy_person(&mut self, row: usize, source: usize) {
        self.person[row] = self.person[source];
    }

    /// Recounts occurrences after rows were changed.
    pub fn recount(&mut self, population: usize) {
        let mut seen = vec![0u8; population];
        for (row, &p) in self.person.iter().enumerate() {
            let slot = &mut seen[p as usize];
            self.occurrence[row] = *slot;
            *slot = slot.saturating_add(1);
        }
    }
}

/// Number of duplicate rows among `rows` at `rate`.
pub(crate) fn duplicate_count(rows: usize, rate: f64) -> usize {
    ((rows as f64 * rate).round() as usize).min(rows.saturating_sub(1))
}

/// Preference for people of another source (loyalty members are mostly shop customers).
pub(crate) struct Preference<'a> {
    /// Person ids of the preferred group, ascending.
    pub members: &'a [u32],
    /// Share of the distinct people taken from the group, per mille.
    pub per_mille: usize,
}

/// Picks the people of a source: `rows - duplicates` distinct people, plus `duplicates`
/// extra rows for people already picked, in shuffled order.
pub(crate) fn pick_rows(
    seed: u64,
    source: u64,
    population: usize,
    rows: usize,
    duplicates: usize,
    preference: Option<Preference<'_>>,
) -> Rows {
    let mut rng = rng_for(seed, Stream::Selection, source);
    let distinct = rows - duplicates;
    let mut chosen: Vec<u32> = Vec::with_capacity(rows);
    match preference {
        None => sample_into(
            &mut rng,
            0..population as u32,
            population,
            distinct,
            &mut chosen,
        ),
        Some(pref) => {
            let others = population - pref.members.len();
            let mut from_members = (distinct * pref.per_mille / 1000).min(pref.members.len());
            let from_others = (distinct - from_members).min(others);
            from_members = distinct - from_others;
            sample_into(
                &mut rng,
                pref.members.iter().copied(),
                pref.members.len(),
                from_members,
                &mut chosen,
            );
            let mut is_member = vec![false; population];
            for &m in pref.members {
                is_member[m as usize] = true;
            }
            let rest = (0..population as u32).filter(|&p| !is_member[p as usize]);
            sample_into(&mut rng, rest, others, from_others, &mut chosen);
        }
    }
    for _ in 0..duplicates {
        let again = chosen[rng.random_range(0..distinct)];
        chosen.push(again);
    }
    for i in (1..chosen.len()).rev() {
        let j = rng.random_range(0..=i);
        chosen.swap(i, j);
    }
    let mut rows = Rows {
        occurrence: vec![0; chosen.len()],
        person: chosen,
    };
    rows.recount(population);
    rows
}

/// Selection sampling (Knuth's algorithm S): `k` of the `n` candidates, in candidate order.
fn sample_into(
    rng: &mut impl Rng,
    candidates: impl Iterator<Item = u32>,
    n: usize,
    k: usize,
    out: &mut Vec<u32>,
) {
    let mut needed = k;
    for (seen, candidate) in candidates.enumerate() {
        if needed == 0 {
            break;
        }
        if rng.random_range(0..n - seen) < needed {
            out.push(candidate);
            needed -= 1;
        }
    }
}

/// A deliberately malformed row: its position and, for a duplicated key, the earlier row
/// whose key it repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Placed<D> {
    pub row: usize,
    pub defect: D,
    pub source: usize,
}

/// Spreads `defects` over distinct rows of a file of `rows` rows (never the first row), each
/// with a distinct earlier well-formed row as its source. Sorted by row.
pub(crate) fn place_defects<D: Copy>(
    seed: u64,
    file: u64,
    rows: usize,
    defects: &[D],
) -> Vec<Placed<D>> {
    if rows < 2 * defects.len() + 2 {
        return Vec::new();
    }
    let mut rng = rng_for(seed, Stream::Malformed, file);
    let mut taken: Vec<usize> = Vec::with_capacity(defects.len());
    for _ in defects {
        loop {
            let row = rng.random_range(1..rows);
            if !taken.contains(&row) {
                taken.push(row);
                break;
            }
        }
    }
    let mut placed: Vec<Placed<D>> = Vec::with_capacity(defects.len());
    for (&defect, &row) in defects.iter().zip(&taken) {
        let source = loop {
            let source = rng.random_range(0..row);
            if !taken.contains(&source) {
                break source;
            }
        };
        placed.push(Placed {
            row,
            defect,
            source,
        });
    }
    placed.sort_by_key(|p| p.row);
    placed
}

/// Looks up the defect of a row in a row-sorted plan.
pub(crate) fn defect_at<D: Copy>(plan: &[Placed<D>], row: usize) -> Option<Placed<D>> {
    plan.binary_search_by_key(&row, |p| p.row)
        .ok()
        .map(|i| plan[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_exact_counts() {
        let rows = pick_rows(1, 1, 1_000, 700, 21, None);
        assert_eq!(rows.len(), 700);
        assert_eq!(rows.people(), 679);
        assert_eq!(rows.duplicates(), 21);
        let members = rows.distinct_sorted();
        let pref = Preference {
            members: &members,
            per_mille: 800,
        };
        let loyal = pick_rows(1, 2, 1_000, 400, 4, Some(pref));
        assert_eq!(loyal.people(), 396);
        let overlap = loyal
            .distinct_sorted()
            .iter()
            .filter(|p| members.binary_search(p).is_ok())
            .count();
        assert!(overlap >= 316, "{overlap}");
    }

    #[test]
    fn defects_take_distinct_rows_with_earlier_sources() {
        let plan = place_defects(3, 1, 40, &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(plan.len(), 8);
        for p in &plan {
            assert!(p.source < p.row && p.row > 0);
            assert!(plan.iter().all(|q| q.row != p.source));
        }
        assert!(plan.windows(2).all(|w| w[0].row < w[1].row));
        assert_eq!(defect_at(&plan, plan[3].row), Some(plan[3]));
    }
}
