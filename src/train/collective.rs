//! Data-parallel training: several processes (MPI ranks) share every global
//! batch and take identical optimiser steps.
//!
//! Every rank draws the whole batch's examples from the shared random
//! stream (so augmentation is the single-process run's), builds and runs
//! only its contiguous share of them, and weights its loss by the *global*
//! batch's atom and crystal counts: the shares' losses add up to the
//! single-process loss, and so do their gradients (the single-point batch
//! of the energy-surface heads is shared the same way, weighted by its
//! whole count of structures and atoms). One sum over the ranks per step
//! (the gradients flattened in parameter-name order, and the loss) gives
//! every rank the same gradient, hence the same clipping, the same AdamW
//! step and the same EMA. The validation pass is shared too: each rank
//! evaluates its share of the pairs and one sum combines the means.
//!
//! The library does not link MPI: the command-line tool implements
//! [`Collective`] with the `mpi` crate (build feature `mpi`), and
//! [`ThreadGroup`] implements it with threads for the tests.

use std::ops::Range;
use std::sync::{Arc, Barrier, Mutex};

/// The processes a training run is shared by.
pub trait Collective {
    /// This process's index, 0 to `size() - 1`; rank 0 writes the run
    /// folder.
    fn rank(&self) -> usize;
    /// How many processes share the run.
    fn size(&self) -> usize;
    /// Replaces `values` by their element-wise sum over all processes
    /// (every process passes the same length). The sum must not depend on
    /// timing: the same inputs give the same bits on every rank.
    fn sum(&self, values: &mut [f64]);
}

/// The part of a batch of `len` examples that `rank` of `size` runs:
/// contiguous, sizes differing by at most one, in rank order.
pub fn share(len: usize, rank: usize, size: usize) -> Range<usize> {
    (rank * len / size)..((rank + 1) * len / size)
}

/// `size` threads of one process as a [`Collective`] (for tests): each
/// thread holds its own member, and [`Collective::sum`] adds the members'
/// values in rank order.
pub struct ThreadGroup {
    rank: usize,
    size: usize,
    shared: Arc<Shared>,
}

struct Shared {
    slots: Mutex<Vec<Vec<f64>>>,
    barrier: Barrier,
}

impl ThreadGroup {
    /// The members of a group of `size` (one per thread).
    pub fn new(size: usize) -> Vec<ThreadGroup> {
        let shared = Arc::new(Shared {
            slots: Mutex::new(vec![Vec::new(); size]),
            barrier: Barrier::new(size),
        });
        (0..size)
            .map(|rank| ThreadGroup {
                rank,
                size,
                shared: Arc::clone(&shared),
            })
            .collect()
    }
}

impl Collective for ThreadGroup {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn sum(&self, values: &mut [f64]) {
        self.shared.slots.lock().unwrap()[self.rank] = values.to_vec();
        self.shared.barrier.wait();
        {
            let slots = self.shared.slots.lock().unwrap();
            for (k, v) in values.iter_mut().enumerate() {
                *v = slots.iter().map(|s| s[k]).sum();
            }
        }
        // Nobody deposits the next sum's values before all have read.
        self.shared.barrier.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_a_batch_once_in_order() {
        for len in 0..20 {
            for size in 1..6 {
                let mut next = 0;
                for rank in 0..size {
                    let s = share(len, rank, size);
                    assert_eq!(s.start, next);
                    assert!(s.len() <= len.div_ceil(size));
                    next = s.end;
                }
                assert_eq!(next, len);
            }
        }
    }

    #[test]
    fn a_thread_group_sums_in_rank_order() {
        let group = ThreadGroup::new(3);
        let results: Vec<Vec<f64>> = std::thread::scope(|scope| {
            let handles: Vec<_> = group
                .iter()
                .map(|member| {
                    scope.spawn(move || {
                        let mut all = Vec::new();
                        for round in 0..4 {
                            let mut v = vec![member.rank() as f64 + round as f64, 1.0];
                            member.sum(&mut v);
                            all.extend(v);
                        }
                        all
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for r in &results {
            assert_eq!(r, &results[0]);
        }
        assert_eq!(results[0][..2], [3.0, 3.0]);
        assert_eq!(results[0][6..], [12.0, 3.0]);
    }
}
