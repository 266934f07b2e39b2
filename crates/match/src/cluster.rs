//! Clustering of matched pairs: a disjoint-set forest (union-find) over record
//! indexes, the clusters it forms, and statistics about them.
//!
//! Records are numbered `0..n` with `u32` indexes. Every matched pair is a
//! [`UnionFind::union`]; once all pairs are in, [`UnionFind::clusters`] lists the
//! transitive closure: one cluster per customer, singletons included.
//!
//! The forest is two `Vec<u32>` (parent and set size), 8 bytes a record and no
//! allocation per record, so 10 million records take 80 MB. `find` compresses paths
//! and `union` attaches the smaller set under the larger one, which keeps every
//! operation close to constant time; both are iterative, so long chains never
//! deepen the stack.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

/// Disjoint sets over the record indexes `0..n`, each record starting alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnionFind {
    /// The parent of every index; a root is its own parent.
    parent: Vec<u32>,
    /// The number of records in the set rooted at an index (kept for roots only).
    size: Vec<u32>,
    /// The number of disjoint sets.
    sets: usize,
}

impl UnionFind {
    /// `n` records, each in a set of its own.
    ///
    /// # Panics
    ///
    /// When `n` exceeds `u32::MAX` (indexes are `u32`).
    pub fn new(n: usize) -> Self {
        assert!(
            n <= u32::MAX as usize,
            "union-find over {n} records: at most {} are supported",
            u32::MAX
        );
        Self {
            parent: (0..n as u32).collect(),
            size: vec![1; n],
            sets: n,
        }
    }

    /// The number of records.
    pub fn len(&self) -> usize {
        self.parent.len()
    }

    /// Whether there are no records at all.
    pub fn is_empty(&self) -> bool {
        self.parent.is_empty()
    }

    /// The number of disjoint sets (clusters), singletons included.
    pub fn set_count(&self) -> usize {
        self.sets
    }

    /// The representative (root) of the set holding `a`. Every index on the way to
    /// the root is re-attached directly to it (path compression).
    ///
    /// # Panics
    ///
    /// When `a` is not below [`UnionFind::len`].
    pub fn find(&mut self, a: u32) -> u32 {
        let mut root = a;
        loop {
            let parent = self.parent[root as usize];
            if parent == root {
                break;
            }
            root = parent;
        }
        let mut at = a;
        while at != root {
            let next = self.parent[at as usize];
            self.parent[at as usize] = root;
            at = next;
        }
        root
    }

    /// The number of records in the set holding `a`.
    ///
    /// # Panics
    ///
    /// When `a` is not below [`UnionFind::len`].
    pub fn set_size(&mut self, a: u32) -> usize {
        let root = self.find(a);
        self.size[root as usize] as usize
    }

    /// Puts `a` and `b` in the same set; the smaller set goes under the larger one
    /// (union by size). Returns `true` when two sets were joined, `false` when `a`
    /// and `b` already were together.
    ///
    /// # Panics
    ///
    /// When `a` or `b` is not below [`UnionFind::len`].
    pub fn union(&mut self, a: u32, b: u32) -> bool {
        let mut big = self.find(a);
        let mut small = self.find(b);
        if big == small {
            return false;
        }
        if self.size[big as usize] < self.size[small as usize] {
            std::mem::swap(&mut big, &mut small);
        }
        self.parent[small as usize] = big;
        self.size[big as usize] += self.size[small as usize];
        self.sets -= 1;
        true
    }

    /// Every set as a cluster: members ascending, clusters ordered by their smallest
    /// member. Every index appears exactly once, singletons included.
    ///
    /// Each cluster is allocated once at its final size. The forest stays valid (its
    /// paths are fully compressed afterwards), so more unions may follow.
    pub fn clusters(&mut self) -> Vec<Vec<u32>> {
        // The cluster number of every root, `u32::MAX` until its smallest member is
        // met. Indexes are visited ascending, so that member comes first, clusters
        // are numbered in order of their smallest member and members are pushed in
        // ascending order.
        let mut slot = vec![u32::MAX; self.parent.len()];
        let mut clusters: Vec<Vec<u32>> = Vec::with_capacity(self.sets);
        for index in 0..self.parent.len() as u32 {
            let root = self.find(index) as usize;
            let number = match slot[root] {
                u32::MAX => {
                    slot[root] = clusters.len() as u32;
                    clusters.push(Vec::with_capacity(self.size[root] as usize));
                    clusters.len() - 1
                }
                number => number as usize,
            };
            clusters[number].push(index);
        }
        clusters
    }
}

/// Statistics of a clustering, for run reports and for spotting over-merged clusters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterStats {
    /// The number of records over all clusters.
    pub records: usize,
    /// The number of clusters.
    pub clusters: usize,
    /// Cluster size -> how many clusters have that size.
    pub sizes: BTreeMap<usize, usize>,
    /// The largest clusters as `(size, smallest member)`, largest first; clusters of
    /// equal size by smallest member. At most `top` of them.
    pub largest: Vec<(usize, u32)>,
}

/// The statistics of `clusters`, keeping the `top` largest ones.
///
/// Runs in one pass with a heap of `top` entries, so it suits millions of clusters.
/// Empty clusters count in [`ClusterStats::clusters`] and [`ClusterStats::sizes`]
/// (as size 0) but never among the largest, having no member.
pub fn stats(clusters: &[Vec<u32>], top: usize) -> ClusterStats {
    let mut records = 0;
    let mut sizes = BTreeMap::new();
    // A min-heap of the best `top` candidates: a candidate ranks higher with a larger
    // size, then with a smaller smallest member, so the heap's top is the weakest.
    let mut heap: BinaryHeap<Reverse<(usize, Reverse<u32>)>> =
        BinaryHeap::with_capacity(top.min(clusters.len()));
    for cluster in clusters {
        let size = cluster.len();
        records += size;
        *sizes.entry(size).or_insert(0) += 1;
        if top == 0 {
            continue;
        }
        let weakest = match heap.peek() {
            Some(Reverse(weakest)) if heap.len() == top => {
                if size < weakest.0 {
                    continue;
                }
                Some(*weakest)
            }
            _ => None,
        };
        let Some(&smallest) = cluster.iter().min() else {
            continue;
        };
        let candidate = (size, Reverse(smallest));
        match weakest {
            None => heap.push(Reverse(candidate)),
            Some(weakest) if candidate > weakest => {
                heap.pop();
                heap.push(Reverse(candidate));
            }
            Some(_) => {}
        }
    }
    // Ascending order of `Reverse(candidate)` is the best candidate first.
    let largest = heap
        .into_sorted_vec()
        .into_iter()
        .map(|Reverse((size, Reverse(smallest)))| (size, smallest))
        .collect();
    ClusterStats {
        records,
        clusters: clusters.len(),
        sizes,
        largest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clusters_of(n: usize, pairs: &[(u32, u32)]) -> Vec<Vec<u32>> {
        let mut uf = UnionFind::new(n);
        for &(a, b) in pairs {
            uf.union(a, b);
        }
        uf.clusters()
    }

    #[test]
    fn transitive_closure_and_singletons() {
        // 0-3-5 by chain, 1-4 directly, 2 and 6 alone, 7-8 joined in reverse.
        let clusters = clusters_of(9, &[(5, 3), (3, 0), (4, 1), (8, 7)]);
        assert_eq!(
            clusters,
            vec![vec![0, 3, 5], vec![1, 4], vec![2], vec![6], vec![7, 8]]
        );
    }

    #[test]
    fn every_index_once_members_ascending_ordered_by_smallest() {
        let n = 1000u32;
        let mut pairs = Vec::new();
        // Join indexes with equal value mod 7, pairing far-apart members first.
        for i in 0..n {
            let j = (i * 389 + 11) % n;
            if i % 7 == j % 7 {
                pairs.push((j, i));
            }
            if i >= 7 {
                pairs.push((i, i - 7));
            }
        }
        let clusters = clusters_of(n as usize, &pairs);
        assert_eq!(clusters.len(), 7);
        for (k, cluster) in clusters.iter().enumerate() {
            assert_eq!(cluster[0], k as u32);
            assert!(cluster.windows(2).all(|w| w[0] < w[1]));
            assert!(cluster.iter().all(|&m| m % 7 == k as u32));
        }
        let mut all: Vec<u32> = clusters.concat();
        all.sort_unstable();
        assert_eq!(all, (0..n).collect::<Vec<_>>());
    }

    #[test]
    fn unions_are_idempotent_and_report_joins() {
        let mut uf = UnionFind::new(5);
        assert_eq!(uf.len(), 5);
        assert!(!uf.is_empty());
        assert_eq!(uf.set_count(), 5);
        assert!(uf.union(0, 1));
        assert!(!uf.union(0, 1));
        assert!(!uf.union(1, 0));
        assert!(!uf.union(2, 2));
        assert!(uf.union(1, 2));
        assert!(!uf.union(0, 2), "already joined through 1");
        assert_eq!(uf.set_count(), 3);
        assert_eq!(uf.find(0), uf.find(2));
        assert_ne!(uf.find(0), uf.find(3));
        let first = uf.clusters();
        assert_eq!(first, vec![vec![0, 1, 2], vec![3], vec![4]]);
        // Listing clusters leaves the forest usable and unchanged.
        assert_eq!(uf.clusters(), first);
        assert!(uf.union(4, 3));
        assert_eq!(uf.clusters(), vec![vec![0, 1, 2], vec![3, 4]]);
    }

    #[test]
    fn union_by_size_keeps_the_larger_root() {
        let mut uf = UnionFind::new(4);
        uf.union(0, 1);
        uf.union(0, 2);
        let root = uf.find(0);
        uf.union(3, 0);
        assert_eq!(uf.find(3), root);
    }

    #[test]
    fn long_chain_is_compressed_without_recursion() {
        let n = 200_000u32;
        let mut uf = UnionFind::new(n as usize);
        for i in 1..n {
            uf.union(i - 1, i);
        }
        let root = uf.find(0);
        assert!((0..n).all(|i| uf.find(i) == root));
        assert_eq!(uf.set_count(), 1);
        assert_eq!(uf.clusters().len(), 1);
    }

    #[test]
    fn empty_forest() {
        let mut uf = UnionFind::new(0);
        assert!(uf.is_empty());
        assert!(uf.clusters().is_empty());
        assert_eq!(stats(&[], 3), ClusterStats::default());
    }

    #[test]
    fn stats_counts_sizes_and_largest() {
        let clusters = clusters_of(
            12,
            &[(0, 1), (1, 2), (3, 4), (5, 6), (6, 7), (7, 8), (9, 10)],
        );
        // {0,1,2} {3,4} {5,6,7,8} {9,10} {11}
        let s = stats(&clusters, 3);
        assert_eq!(s.records, 12);
        assert_eq!(s.clusters, 5);
        assert_eq!(s.sizes, BTreeMap::from([(1, 1), (2, 2), (3, 1), (4, 1)]));
        assert_eq!(s.largest, vec![(4, 5), (3, 0), (2, 3)]);

        let all = stats(&clusters, 10);
        assert_eq!(all.largest, vec![(4, 5), (3, 0), (2, 3), (2, 9), (1, 11)]);
        assert!(stats(&clusters, 0).largest.is_empty());
    }

    #[test]
    fn stats_ties_prefer_smallest_member_whatever_the_order() {
        let clusters = vec![
            vec![9, 8],
            vec![7],
            vec![5, 6],
            vec![],
            vec![1, 0],
            vec![3, 2],
        ];
        let s = stats(&clusters, 2);
        assert_eq!(s.largest, vec![(2, 0), (2, 2)]);
        assert_eq!(s.clusters, 6);
        assert_eq!(s.sizes, BTreeMap::from([(0, 1), (1, 1), (2, 4)]));
        assert_eq!(s.records, 9);
    }
}
