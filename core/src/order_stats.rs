//! The two order-statistics structures that make the incremental engine's cost independent of a
//! merchant's number of customers: a Fenwick tree answering "the k-th smallest value" of a
//! multiset of small integers, and a max-tree answering "the first position up to `end` whose
//! value is at least `limit`". Both are O(log n) per operation.

/// A Fenwick (binary indexed) tree over positions `1..=capacity` holding counts, whose capacity
/// is a power of two so that it can double in place and find the k-th element by binary lifting.
#[derive(Debug, Clone)]
pub(crate) struct Fenwick {
    // tree[0] is unused; tree[i] covers (i - lowbit(i), i].
    tree: Vec<u64>,
    total: u64,
}

impl Fenwick {
    /// A tree for positions `1..=capacity` (rounded up to a power of two), all zero.
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1).next_power_of_two();
        Self { tree: vec![0; capacity + 1], total: 0 }
    }

    fn capacity(&self) -> usize {
        self.tree.len() - 1
    }

    /// Doubles the capacity until `position` fits. With a power-of-two capacity `n`, the node
    /// `2n` covers everything (the old total) and nodes `n+1..2n-1` cover only new, empty
    /// positions, so the old nodes stay valid.
    fn grow_to(&mut self, position: usize) {
        while position > self.capacity() {
            let old = self.capacity();
            self.tree.resize(2 * old + 1, 0);
            self.tree[2 * old] = self.total;
        }
    }

    /// Adds one at `position` (1-based), growing as needed.
    pub(crate) fn increment(&mut self, position: usize) {
        self.grow_to(position);
        let mut i = position;
        while i < self.tree.len() {
            self.tree[i] += 1;
            i += i & i.wrapping_neg();
        }
        self.total += 1;
    }

    /// Removes one at `position` (1-based), which must hold at least one.
    pub(crate) fn decrement(&mut self, position: usize) {
        let mut i = position;
        while i < self.tree.len() {
            self.tree[i] = self.tree[i].saturating_sub(1);
            i += i & i.wrapping_neg();
        }
        self.total = self.total.saturating_sub(1);
    }

    /// How many elements in all.
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// The position of the k-th smallest element (1-based k, `1 <= k <= total`).
    pub(crate) fn kth_smallest(&self, k: u64) -> usize {
        let mut position = 0;
        let mut remaining = k;
        let mut step = self.capacity();
        while step > 0 {
            let next = position + step;
            if next < self.tree.len() && self.tree[next] < remaining {
                position = next;
                remaining -= self.tree[next];
            }
            step /= 2;
        }
        position + 1
    }

    /// The position of the k-th largest element (1-based k, `1 <= k <= total`).
    pub(crate) fn kth_largest(&self, k: u64) -> usize {
        self.kth_smallest(self.total - k + 1)
    }
}

/// A max segment tree over positions `0..len`.
#[derive(Debug, Clone)]
pub(crate) struct MaxTree {
    size: usize,
    // Node 1 is the root; leaves are size..2*size.
    nodes: Vec<u64>,
}

impl MaxTree {
    /// A tree of `len` zeros.
    pub(crate) fn new(len: usize) -> Self {
        let size = len.max(1).next_power_of_two();
        Self { size, nodes: vec![0; 2 * size] }
    }

    /// Sets the value at `position`.
    pub(crate) fn set(&mut self, position: usize, value: u64) {
        let mut i = self.size + position;
        self.nodes[i] = value;
        while i > 1 {
            i /= 2;
            self.nodes[i] = self.nodes[2 * i].max(self.nodes[2 * i + 1]);
        }
    }

    /// The first position `p <= end` whose value is at least `limit`.
    pub(crate) fn first_at_least(&self, limit: u64, end: usize) -> Option<usize> {
        self.search(1, 0, self.size - 1, limit, end)
    }

    fn search(&self, node: usize, lo: usize, hi: usize, limit: u64, end: usize) -> Option<usize> {
        if lo > end || self.nodes[node] < limit {
            return None;
        }
        if lo == hi {
            return Some(lo);
        }
        let mid = lo + (hi - lo) / 2;
        self.search(2 * node, lo, mid, limit, end)
            .or_else(|| self.search(2 * node + 1, mid + 1, hi, limit, end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn fenwick_matches_a_sorted_vector(values in proptest::collection::vec(1usize..300, 1..200), removals in 0usize..50) {
            let mut tree = Fenwick::new(4);
            let mut sorted = values.clone();
            for &v in &values {
                tree.increment(v);
            }
            for &v in values.iter().take(removals.min(values.len() - 1)) {
                tree.decrement(v);
                let at = sorted.iter().position(|&x| x == v).unwrap();
                sorted.remove(at);
            }
            sorted.sort_unstable();
            prop_assert_eq!(tree.total(), sorted.len() as u64);
            for k in 1..=sorted.len() {
                prop_assert_eq!(tree.kth_smallest(k as u64), sorted[k - 1]);
                prop_assert_eq!(tree.kth_largest(k as u64), sorted[sorted.len() - k]);
            }
        }

        #[test]
        fn max_tree_finds_the_first_match(values in proptest::collection::vec(0u64..20, 1..100), limit in 0u64..25, end in 0usize..120) {
            let mut tree = MaxTree::new(values.len());
            for (i, &v) in values.iter().enumerate() {
                tree.set(i, v);
            }
            let expected = values.iter().enumerate().find(|&(i, &v)| i <= end && v >= limit).map(|(i, _)| i);
            // Positions past the values hold zeros: a zero limit may match one.
            let found = tree.first_at_least(limit, end);
            if limit == 0 {
                prop_assert_eq!(found, Some(0));
            } else {
                prop_assert_eq!(found, expected);
            }
        }
    }
}
