//! The periodic neighbour graph of docs/model.md.
//!
//! Atom-atom edges are found once, on the input structure, with a cell list
//! (O(N) for large cells, one rayon task per atom, deterministic order). The
//! number of image shells along each axis comes from the distance between
//! opposite faces of the cell, so small and skewed cells get every image
//! within the radius.

use rayon::prelude::*;

use crate::linalg::{self, Mat3, Vec3};

/// The six self-image offsets every atom receives (docs/model.md, Graph).
pub const SELF_IMAGE_OFFSETS: [[i32; 3]; 6] = [
    [0, 0, 1],
    [0, 1, 0],
    [1, 0, 0],
    [0, 1, 1],
    [1, 0, 1],
    [1, 1, 0],
];

/// One periodic image `j + k . L` near an atom `i`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neighbor {
    /// Index of the neighbouring atom.
    pub index: usize,
    /// Integer lattice offset `k` of the image.
    pub offset: [i32; 3],
    /// `|pos[j] + k . L - pos[i]|`, Å.
    pub distance: f64,
}

/// A directed edge: messages flow from `source` (at `offset`) to `target`;
/// its vector is `pos[source] + offset . L - pos[target]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Edge {
    pub source: usize,
    pub target: usize,
    pub offset: [i32; 3],
}

/// Settings of the model graph.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GraphSettings {
    /// Search radius, Å (published: 6.0).
    pub radius: f64,
    /// Neighbours kept per atom: the nearest ones (published: 50).
    pub max_neighbors: usize,
    /// `None`: the paper's graph (exactly `max_neighbors`, ties at the cut
    /// broken by index; an atom's own images replaced by six fixed offsets).
    /// `Some(tol)`: the symmetric graph (every neighbour within `tol` Å of
    /// the last one kept is kept too, and an atom's own images are ordinary
    /// neighbours), which a symmetry operation of the crystal maps onto
    /// itself.
    pub shell_tolerance: Option<f64>,
}

impl Default for GraphSettings {
    fn default() -> Self {
        GraphSettings {
            radius: 6.0,
            max_neighbors: 50,
            shell_tolerance: None,
        }
    }
}

/// Distance between the two faces of the cell spanned by the other two
/// lattice vectors, for each axis: how far one image shell reaches.
pub fn face_distances(lattice: &Mat3) -> Vec3 {
    let volume = linalg::det(lattice).abs();
    [
        volume / linalg::norm(linalg::cross(lattice[1], lattice[2])),
        volume / linalg::norm(linalg::cross(lattice[2], lattice[0])),
        volume / linalg::norm(linalg::cross(lattice[0], lattice[1])),
    ]
}

/// Orders neighbours by distance, ties broken by index then offset, so the
/// nearest-K cut is reproducible.
fn sort_neighbors(list: &mut [Neighbor]) {
    list.sort_by(|a, b| {
        a.distance
            .total_cmp(&b.distance)
            .then(a.index.cmp(&b.index))
            .then(a.offset.cmp(&b.offset))
    });
}

/// Atoms binned by their wrapped fractional coordinates.
struct CellList {
    bins: [usize; 3],
    shells: [i64; 3],
    /// Atom indices grouped by bin (CSR with `bin_start`).
    atoms_by_bin: Vec<usize>,
    bin_start: Vec<usize>,
    /// `wrapped` in the order of `atoms_by_bin`, for cache-friendly scans.
    binned_positions: Vec<Vec3>,
    bin_of_atom: Vec<[usize; 3]>,
    /// Positions moved into the cell, and the integer shift `n_i` with
    /// `pos_i = wrapped_i + n_i . L`.
    wrapped: Vec<Vec3>,
    shift: Vec<[i64; 3]>,
}

impl CellList {
    fn new(lattice: &Mat3, positions: &[Vec3], radius: f64) -> Self {
        let inverse = linalg::inverse(lattice).expect("lattice must be invertible");
        let heights = face_distances(lattice);
        // Bins at least one radius wide: one shell of 27 bins per atom.
        // (Half-radius bins scan fewer atoms but visit 125 bins; measured no
        // faster at oxide densities.)
        // A vacuum-filled cell would make many empty bins; keep the count
        // within a few per atom (each axis capped first so the product
        // cannot overflow).
        let max_bins = 4 * positions.len() + 64;
        let mut bins = heights.map(|h| ((h / radius).floor() as usize).clamp(1, max_bins));
        while bins.iter().fold(1usize, |acc, &b| acc.saturating_mul(b)) > max_bins {
            let largest = (0..3).max_by_key(|&a| bins[a]).unwrap();
            bins[largest] = bins[largest].div_ceil(2);
        }
        let shells = [0, 1, 2].map(|a| {
            let width = heights[a] / bins[a] as f64;
            (radius / width).ceil() as i64
        });
        let mut wrapped = Vec::with_capacity(positions.len());
        let mut shift = Vec::with_capacity(positions.len());
        let mut bin_of_atom = Vec::with_capacity(positions.len());
        for &p in positions {
            let frac = linalg::vec_mat(p, &inverse);
            let mut n = [0i64; 3];
            let mut f = [0.0; 3];
            for a in 0..3 {
                let floor = frac[a].floor();
                n[a] = floor as i64;
                f[a] = frac[a] - floor;
                // frac - floor(frac) rounds up to exactly 1.0 for tiny negatives.
                if f[a] >= 1.0 {
                    f[a] = 0.0;
                    n[a] += 1;
                }
            }
            let bin = [0, 1, 2].map(|a| ((f[a] * bins[a] as f64) as usize).min(bins[a] - 1));
            // wrapped = pos - n . L, computed from the original position so
            // that no fractional round trip error enters the distances.
            let n_f = n.map(|v| v as f64);
            wrapped.push(linalg::sub(p, linalg::vec_mat(n_f, lattice)));
            shift.push(n);
            bin_of_atom.push(bin);
        }
        let flat = |b: [usize; 3]| (b[0] * bins[1] + b[1]) * bins[2] + b[2];
        let nbins = bins.iter().product::<usize>();
        let mut counts = vec![0usize; nbins + 1];
        for b in &bin_of_atom {
            counts[flat(*b) + 1] += 1;
        }
        for k in 0..nbins {
            counts[k + 1] += counts[k];
        }
        let bin_start = counts.clone();
        let mut fill = counts;
        let mut atoms_by_bin = vec![0; positions.len()];
        for (atom, b) in bin_of_atom.iter().enumerate() {
            let slot = &mut fill[flat(*b)];
            atoms_by_bin[*slot] = atom;
            *slot += 1;
        }
        let binned_positions = atoms_by_bin.iter().map(|&a| wrapped[a]).collect();
        CellList {
            bins,
            shells,
            binned_positions,
            atoms_by_bin,
            bin_start,
            bin_of_atom,
            wrapped,
            shift,
        }
    }

    /// Calls `visit(j, offset, squared distance)` for every image within
    /// `radius` of atom `i` (itself at zero offset excluded), in a fixed
    /// order (bins, then atoms within a bin).
    fn for_each_neighbor(
        &self,
        i: usize,
        lattice: &Mat3,
        radius: f64,
        mut visit: impl FnMut(usize, [i32; 3], f64),
    ) {
        let home = self.bin_of_atom[i];
        let r2 = radius * radius;
        let bins = self.bins.map(|b| b as i64);
        let [s0, s1, s2] = self.shells;
        let origin = self.wrapped[i];
        let shift_i = self.shift[i];
        for d0 in -s0..=s0 {
            for d1 in -s1..=s1 {
                for d2 in -s2..=s2 {
                    // Each (bin, image shift) pair is reached exactly once.
                    let c0 = home[0] as i64 + d0;
                    let c1 = home[1] as i64 + d1;
                    let c2 = home[2] as i64 + d2;
                    let image = [
                        c0.div_euclid(bins[0]),
                        c1.div_euclid(bins[1]),
                        c2.div_euclid(bins[2]),
                    ];
                    let flat = ((c0.rem_euclid(bins[0]) * bins[1] + c1.rem_euclid(bins[1]))
                        * bins[2]
                        + c2.rem_euclid(bins[2])) as usize;
                    let range = self.bin_start[flat]..self.bin_start[flat + 1];
                    if range.is_empty() {
                        continue;
                    }
                    let image_cart = linalg::vec_mat(
                        [image[0] as f64, image[1] as f64, image[2] as f64],
                        lattice,
                    );
                    // Vector from atom i to the origin of this image.
                    let base = linalg::sub(image_cart, origin);
                    let image_offset = [
                        image[0] + shift_i[0],
                        image[1] + shift_i[1],
                        image[2] + shift_i[2],
                    ];
                    for slot in range {
                        let p = self.binned_positions[slot];
                        let r = [p[0] + base[0], p[1] + base[1], p[2] + base[2]];
                        let d2 = r[0] * r[0] + r[1] * r[1] + r[2] * r[2];
                        if d2 > r2 {
                            continue;
                        }
                        let j = self.atoms_by_bin[slot];
                        let shift_j = self.shift[j];
                        let offset = [
                            (image_offset[0] - shift_j[0]) as i32,
                            (image_offset[1] - shift_j[1]) as i32,
                            (image_offset[2] - shift_j[2]) as i32,
                        ];
                        if j == i && offset == [0, 0, 0] {
                            continue;
                        }
                        visit(j, offset, d2);
                    }
                }
            }
        }
    }

    /// Every image within `radius` of atom `i`, unsorted.
    fn neighbors_of(&self, i: usize, lattice: &Mat3, radius: f64) -> Vec<Neighbor> {
        let mut found = Vec::new();
        self.for_each_neighbor(i, lattice, radius, |index, offset, d2| {
            found.push(Neighbor {
                index,
                offset,
                distance: d2.sqrt(),
            })
        });
        found
    }
}

/// Image shells per axis a search of `radius` visits in `lattice`.
pub fn image_shells(lattice: &Mat3, radius: f64) -> [f64; 3] {
    face_distances(lattice).map(|h| (radius / h).ceil())
}

/// Most bins (of the cell list's 3-D neighbourhood) one atom may visit;
/// cells thinner than this allows are rejected instead of searched for
/// minutes.
pub const MAX_SEARCH_BINS: f64 = 1e6;

/// Checks that a radius search in this cell is of reasonable size: the
/// needed image shells per axis (radius / face distance) must stay below
/// ~49. Only absurdly thin or skewed cells fail; reducing them (Niggli)
/// gives the same crystal with a searchable basis.
pub fn check_search_size(lattice: &Mat3, radius: f64) -> Result<(), String> {
    let shells = image_shells(lattice, radius);
    let visits: f64 = shells.iter().map(|s| 2.0 * s + 1.0).product();
    if visits.is_nan() || visits > MAX_SEARCH_BINS {
        let heights = face_distances(lattice);
        return Err(format!(
            "the cell is too thin or skewed for a {radius} Å neighbour search (distances between opposite faces {:.3e}, {:.3e}, {:.3e} Å); use a reduced (Niggli) cell or a supercell",
            heights[0], heights[1], heights[2]
        ));
    }
    Ok(())
}

/// For every atom, all periodic images within `radius` (the atom itself at
/// zero offset excluded), nearest first. `lattice` must be invertible.
pub fn radius_neighbors(lattice: &Mat3, positions: &[Vec3], radius: f64) -> Vec<Vec<Neighbor>> {
    if positions.is_empty() {
        return Vec::new();
    }
    let cells = CellList::new(lattice, positions, radius);
    (0..positions.len())
        .into_par_iter()
        .map(|i| {
            let mut list = cells.neighbors_of(i, lattice, radius);
            sort_neighbors(&mut list);
            list
        })
        .collect()
}

/// The closest pair `(i, j, distance)` with `i <= j` among images within
/// `radius` (`i == j` when an atom is close to its own image).
pub fn closest_pair_within(
    lattice: &Mat3,
    positions: &[Vec3],
    radius: f64,
) -> Option<(usize, usize, f64)> {
    radius_neighbors(lattice, positions, radius)
        .iter()
        .enumerate()
        .filter_map(|(i, list)| {
            list.first()
                .map(|n| (i.min(n.index), i.max(n.index), n.distance))
        })
        .min_by(|a, b| a.2.total_cmp(&b.2).then((a.0, a.1).cmp(&(b.0, b.1))))
}

/// A neighbour found by the search: squared distance, atom, image offset.
type Candidate = (f64, usize, [i32; 3]);

/// The bit pattern of the `max`-th smallest squared distance (the cut of a
/// nearest-`max` selection; `keys` holds every candidate's pattern after the
/// call), or `None` when there is nothing to cut: all candidates fit, or
/// `max` is 0 and they have been removed.
fn cut_key(candidates: &mut Vec<Candidate>, max: usize, keys: &mut Vec<u64>) -> Option<u64> {
    if candidates.len() <= max {
        return None;
    }
    if max == 0 {
        candidates.clear();
        return None;
    }
    keys.clear();
    keys.extend(candidates.iter().map(|c| c.0.to_bits()));
    Some(*keys.select_nth_unstable(max - 1).1)
}

/// Keeps exactly the `max` nearest candidates (ties at the cut broken by
/// atom index, then offset), in the order they were found. The cut distance
/// is found by selecting on the squared distances' bit patterns (ordered
/// like the values for non-negative floats), which is several times cheaper
/// than selecting on the full tuples; only candidates tied with the cut
/// distance, which are rare, need the tuple order.
fn keep_nearest(candidates: &mut Vec<Candidate>, max: usize, keys: &mut Vec<u64>) {
    let Some(cut) = cut_key(candidates, max, keys) else {
        return;
    };
    let below = keys.iter().filter(|&&k| k < cut).count();
    // Of the candidates at exactly the cut distance, the first by (atom,
    // offset) fill the remaining places.
    let mut tied: Vec<(usize, [i32; 3])> = candidates
        .iter()
        .filter(|c| c.0.to_bits() == cut)
        .map(|c| (c.1, c.2))
        .collect();
    tied.sort_unstable();
    tied.truncate(max - below);
    candidates.retain(|c| {
        let k = c.0.to_bits();
        k < cut || (k == cut && tied.binary_search(&(c.1, c.2)).is_ok())
    });
}

/// Keeps the `max` nearest candidates and every candidate within
/// `tolerance` Å of the farthest of them (a whole shell of symmetry-equivalent
/// neighbours is kept or dropped together), in the order they were found.
fn keep_nearest_shells(
    candidates: &mut Vec<Candidate>,
    max: usize,
    tolerance: f64,
    keys: &mut Vec<u64>,
) {
    let Some(cut) = cut_key(candidates, max, keys) else {
        return;
    };
    let cut = f64::from_bits(cut);
    let limit = (cut.sqrt() + tolerance).powi(2);
    candidates.retain(|c| c.0 <= limit);
}

/// The model graph of docs/model.md: for each target atom `i`, the nearest
/// `max_neighbors` images within the radius (sorted by distance), minus the
/// edges to `i`'s own images, followed by the six fixed self-image edges.
/// Edges are grouped by target in atom order; within a target the kept
/// neighbours come in a fixed order (not sorted by distance: sorting cost
/// a third of the time and the network sums over edges).
pub fn build_graph(lattice: &Mat3, positions: &[Vec3], settings: &GraphSettings) -> Vec<Edge> {
    if positions.is_empty() {
        return Vec::new();
    }
    let cells = CellList::new(lattice, positions, settings.radius);
    let per_atom: Vec<Vec<Edge>> = (0..positions.len())
        .into_par_iter()
        .with_min_len(32)
        .map_init(
            || (Vec::new(), Vec::new()),
            |(candidates, keys): &mut (Vec<Candidate>, Vec<u64>), i| {
                candidates.clear();
                cells.for_each_neighbor(i, lattice, settings.radius, |j, offset, d2| {
                    candidates.push((d2, j, offset))
                });
                let Some(tolerance) = settings.shell_tolerance else {
                    keep_nearest(candidates, settings.max_neighbors, keys);
                    return paper_edges(i, candidates);
                };
                keep_nearest_shells(candidates, settings.max_neighbors, tolerance, keys);
                candidates
                    .iter()
                    .map(|&(_, source, offset)| Edge {
                        source,
                        target: i,
                        offset,
                    })
                    .collect()
            },
        )
        .collect();
    per_atom.concat()
}

/// The paper's edges into atom `i`: the kept neighbours other than `i`'s
/// own images, then the six fixed self-image edges.
fn paper_edges(i: usize, candidates: &[Candidate]) -> Vec<Edge> {
    let mut edges = Vec::with_capacity(candidates.len() + SELF_IMAGE_OFFSETS.len());
    edges.extend(
        candidates
            .iter()
            .filter(|c| c.1 != i)
            .map(|&(_, source, offset)| Edge {
                source,
                target: i,
                offset,
            }),
    );
    edges.extend(SELF_IMAGE_OFFSETS.iter().map(|&offset| Edge {
        source: i,
        target: i,
        offset,
    }));
    edges
}

/// Slow, obvious references the fast kernels are tested against.
#[doc(hidden)]
pub mod reference {
    use super::*;

    /// Every image of every atom within `radius` by looping over all atoms
    /// and a generous box of offsets, nearest first.
    pub fn radius_neighbors(lattice: &Mat3, positions: &[Vec3], radius: f64) -> Vec<Vec<Neighbor>> {
        // Offsets reach the radius plus however far apart (in cells) the
        // given positions are, since they need not lie inside the cell.
        let inverse = linalg::inverse(lattice).expect("invertible lattice");
        let frac: Vec<Vec3> = positions
            .iter()
            .map(|&p| linalg::vec_mat(p, &inverse))
            .collect();
        let heights = face_distances(lattice);
        let reach = [0, 1, 2].map(|a| {
            let lo = frac.iter().map(|f| f[a]).fold(f64::INFINITY, f64::min);
            let hi = frac.iter().map(|f| f[a]).fold(f64::NEG_INFINITY, f64::max);
            (radius / heights[a] + (hi - lo)).ceil() as i32 + 1
        });
        positions
            .iter()
            .enumerate()
            .map(|(i, &pi)| {
                let mut list = Vec::new();
                for (j, &pj) in positions.iter().enumerate() {
                    for k0 in -reach[0]..=reach[0] {
                        for k1 in -reach[1]..=reach[1] {
                            for k2 in -reach[2]..=reach[2] {
                                if i == j && [k0, k1, k2] == [0, 0, 0] {
                                    continue;
                                }
                                let shift = linalg::vec_mat([k0, k1, k2].map(f64::from), lattice);
                                let d = linalg::norm(linalg::sub(linalg::add(pj, shift), pi));
                                if d <= radius {
                                    list.push(Neighbor {
                                        index: j,
                                        offset: [k0, k1, k2],
                                        distance: d,
                                    });
                                }
                            }
                        }
                    }
                }
                sort_neighbors(&mut list);
                list
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn random_lattice(rng: &mut impl Rng, scale: f64, skew: f64) -> Mat3 {
        loop {
            let mut l = [[0.0; 3]; 3];
            for (a, row) in l.iter_mut().enumerate() {
                for (b, v) in row.iter_mut().enumerate() {
                    *v = if a == b {
                        scale * rng.random_range(0.5..1.5)
                    } else {
                        scale * skew * rng.random_range(-1.0..1.0)
                    };
                }
            }
            let lengths = l.map(linalg::norm);
            if linalg::det(&l).abs() / (lengths[0] * lengths[1] * lengths[2]) > 0.2 {
                return l;
            }
        }
    }

    fn random_positions(rng: &mut impl Rng, lattice: &Mat3, n: usize, spill: f64) -> Vec<Vec3> {
        (0..n)
            .map(|_| {
                let f = [0; 3].map(|_| rng.random_range(-spill..1.0 + spill));
                linalg::vec_mat(f, lattice)
            })
            .collect()
    }

    fn assert_same(fast: &[Vec<Neighbor>], slow: &[Vec<Neighbor>]) {
        assert_eq!(fast.len(), slow.len());
        for (i, (a, b)) in fast.iter().zip(slow).enumerate() {
            let key = |n: &Neighbor| (n.index, n.offset);
            let mut ka: Vec<_> = a.iter().map(key).collect();
            let mut kb: Vec<_> = b.iter().map(key).collect();
            ka.sort();
            kb.sort();
            assert_eq!(ka, kb, "neighbours of atom {i} differ");
            for (x, y) in a.iter().zip(b) {
                assert!((x.distance - y.distance).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn cell_list_matches_brute_force_on_random_triclinic_cells() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for trial in 0..120 {
            let scale = [2.5, 4.0, 7.0, 12.0][trial % 4];
            let skew = [0.0, 0.3, 0.6][trial % 3];
            let lattice = random_lattice(&mut rng, scale, skew);
            let n = 1 + trial % 9;
            let positions = random_positions(&mut rng, &lattice, n, 0.7);
            let radius = rng.random_range(2.0..7.0);
            let fast = radius_neighbors(&lattice, &positions, radius);
            let slow = reference::radius_neighbors(&lattice, &positions, radius);
            assert_same(&fast, &slow);
        }
    }

    #[test]
    fn strongly_skewed_and_one_atom_cells() {
        // 20 degrees between a and b, a 2.5 A axis: many shells needed.
        let g = 20f64.to_radians();
        let lattice = [
            [2.5, 0.0, 0.0],
            [3.0 * g.cos(), 3.0 * g.sin(), 0.0],
            [0.4, 0.3, 2.6],
        ];
        let positions = vec![[0.3, 0.2, 0.1]];
        let fast = radius_neighbors(&lattice, &positions, 6.0);
        let slow = reference::radius_neighbors(&lattice, &positions, 6.0);
        assert!(fast[0].len() > 100);
        assert_same(&fast, &slow);
    }

    #[test]
    fn large_cell_uses_many_bins_and_agrees() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let lattice = random_lattice(&mut rng, 20.0, 0.2);
        let positions = random_positions(&mut rng, &lattice, 300, 0.0);
        let cells = CellList::new(&lattice, &positions, 4.0);
        assert!(cells.bins.iter().product::<usize>() > 8);
        let fast = radius_neighbors(&lattice, &positions, 4.0);
        assert_same(
            &fast,
            &reference::radius_neighbors(&lattice, &positions, 4.0),
        );
    }

    #[test]
    fn keep_nearest_matches_a_full_sort_with_ties() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(17);
        let mut keys = Vec::new();
        for trial in 0..300 {
            let n = rng.random_range(0..80);
            // Few distinct distances, so many ties at the cut.
            let levels = if trial % 2 == 0 { 4 } else { 1000 };
            let mut candidates: Vec<Candidate> = Vec::new();
            while candidates.len() < n {
                let c = (
                    f64::from(rng.random_range(0..levels)) * 0.25,
                    rng.random_range(0..20),
                    [rng.random_range(-2..3), rng.random_range(-2..3), 0],
                );
                // A search finds each image (atom, offset) once.
                if !candidates.iter().any(|d| (d.1, d.2) == (c.1, c.2)) {
                    candidates.push(c);
                }
            }
            let max = rng.random_range(0..60);
            let mut fast = candidates.clone();
            keep_nearest(&mut fast, max, &mut keys);
            let mut slow = candidates.clone();
            slow.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
            slow.truncate(max);
            // The same multiset, kept in the order found.
            let mut sorted_fast = fast.clone();
            sorted_fast.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
            assert_eq!(sorted_fast, slow, "trial {trial}");
            // A subsequence of the input: the scan order is kept.
            let mut rest = candidates.iter();
            assert!(fast.iter().all(|c| rest.any(|d| d == c)), "trial {trial}");
        }
    }

    #[test]
    fn model_graph_caps_drops_self_images_and_adds_six() {
        // 1-atom simple cubic, a = 2: 6 images at 2, 12 at 2.83, 8 at 3.46 ...
        let lattice = [[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]];
        let edges = build_graph(&lattice, &[[0.1, 0.2, 0.3]], &GraphSettings::default());
        // Every neighbour is a self image, so only the fixed six remain.
        assert_eq!(edges.len(), 6);
        assert!(edges.iter().all(|e| e.source == 0 && e.target == 0));
        assert_eq!(
            edges.iter().map(|e| e.offset).collect::<Vec<_>>(),
            SELF_IMAGE_OFFSETS
        );
    }

    #[test]
    fn model_graph_keeps_nearest_before_dropping_self_images() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let lattice = random_lattice(&mut rng, 5.0, 0.3);
        let positions = random_positions(&mut rng, &lattice, 6, 0.0);
        let settings = GraphSettings {
            radius: 6.0,
            max_neighbors: 20,
            shell_tolerance: None,
        };
        let edges = build_graph(&lattice, &positions, &settings);
        let slow = reference::radius_neighbors(&lattice, &positions, 6.0);
        for (i, list) in slow.iter().enumerate() {
            let mut expected: Vec<Edge> = list
                .iter()
                .take(20)
                .filter(|n| n.index != i)
                .map(|n| Edge {
                    source: n.index,
                    target: i,
                    offset: n.offset,
                })
                .collect();
            expected.extend(SELF_IMAGE_OFFSETS.map(|offset| Edge {
                source: i,
                target: i,
                offset,
            }));
            let got: Vec<Edge> = edges.iter().copied().filter(|e| e.target == i).collect();
            let mut a = got.clone();
            let mut b = expected.clone();
            a.sort();
            b.sort();
            assert_eq!(a, b, "atom {i}");
        }
        // Deterministic: building again gives the identical list.
        assert_eq!(edges, build_graph(&lattice, &positions, &settings));
    }

    /// The symmetric graph against the brute-force search: the nearest K
    /// plus everything within the tolerance of the K-th, own images kept as
    /// ordinary neighbours; on an fcc crystal (shells of 12, 6, 24, 12 ...)
    /// a cut inside a shell keeps the whole shell, and every atom gets the
    /// same number of edges.
    #[test]
    fn symmetric_graph_keeps_whole_shells() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let lattice = random_lattice(&mut rng, 5.0, 0.3);
        let positions = random_positions(&mut rng, &lattice, 6, 0.0);
        let settings = GraphSettings {
            radius: 6.0,
            max_neighbors: 20,
            shell_tolerance: Some(0.05),
        };
        let edges = build_graph(&lattice, &positions, &settings);
        let slow = reference::radius_neighbors(&lattice, &positions, 6.0);
        for (i, list) in slow.iter().enumerate() {
            let kth = list[19.min(list.len() - 1)].distance;
            let mut expected: Vec<Edge> = list
                .iter()
                .filter(|n| n.distance <= kth + 0.05)
                .map(|n| Edge {
                    source: n.index,
                    target: i,
                    offset: n.offset,
                })
                .collect();
            let mut got: Vec<Edge> = edges.iter().copied().filter(|e| e.target == i).collect();
            got.sort();
            expected.sort();
            assert_eq!(got, expected, "atom {i}");
        }
        // fcc conventional cell (a = 3.6 Å): atoms at the origin and on the
        // faces; 12 + 6 + 24 = 42 neighbours, the 4th shell (12 at a*sqrt 2
        // = 5.09 Å) is cut at 50 by the paper's rule, kept whole here.
        let a = 3.6;
        let cube = [[a, 0.0, 0.0], [0.0, a, 0.0], [0.0, 0.0, a]];
        let fcc = [
            [0.0, 0.0, 0.0],
            [0.0, 0.5, 0.5],
            [0.5, 0.0, 0.5],
            [0.5, 0.5, 0.0],
        ]
        .map(|f| linalg::vec_mat(f, &cube));
        let settings = GraphSettings {
            radius: 6.0,
            max_neighbors: 50,
            shell_tolerance: Some(1e-3),
        };
        let edges = build_graph(&cube, &fcc, &settings);
        for i in 0..4 {
            assert_eq!(edges.iter().filter(|e| e.target == i).count(), 54);
        }
    }

    #[test]
    fn extreme_cells_neither_overflow_nor_hang() {
        // Found by fuzzing: a 5615 Å axis made many bins, and a 10^300 Å
        // one overflowed; validation now rejects the latter (see
        // structure.rs), the bin count is capped for the former.
        let long = [[5615.1, 0.0, 0.0], [1.3, 4.7, 0.0], [-0.8, 0.9, 6.2]];
        let pair =
            closest_pair_within(&long, &[[0.0; 3], [1.0, 1.0, 1.0], [2000.0, 1.0, 1.0]], 0.5);
        assert!(pair.is_none());
        // A very thin cell is refused by the size check instead of searched.
        let thin = [[4.0, 0.0, 0.0], [0.0, 4.0, 0.0], [3.0, 2.0, 0.01]];
        let e = check_search_size(&thin, 6.0).unwrap_err();
        assert!(e.contains("too thin or skewed"), "{e}");
        assert!(check_search_size(&thin, 0.001).is_ok());
        let cubic = [[4.0, 0.0, 0.0], [0.0, 4.0, 0.0], [0.0, 0.0, 4.0]];
        assert!(check_search_size(&cubic, 6.0).is_ok());
    }

    #[test]
    fn closest_pair_reports_atoms_and_self_images() {
        let lattice = [[4.0, 0.0, 0.0], [0.0, 4.0, 0.0], [0.0, 0.0, 4.0]];
        let pair =
            closest_pair_within(&lattice, &[[0.0; 3], [3.9, 0.0, 0.0], [2.0, 2.0, 2.0]], 0.5);
        let (i, j, d) = pair.unwrap();
        assert_eq!((i, j), (0, 1));
        assert!((d - 0.1).abs() < 1e-12);
        assert!(closest_pair_within(&lattice, &[[0.0; 3]], 0.5).is_none());
    }
}
