//! Every block of the network against a slow, obvious implementation of the
//! spec's formulas: plain loops over atoms, edges, xyz and channels, in f64,
//! reading the weights from the block's own parameters.

// Index loops are the point here: the reference is written the obvious way.
#![allow(clippy::needless_range_loop)]

use std::collections::HashMap;

use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use super::atom_to_lattice::AtomToLattice;
use super::lattice_to_atom::LatticeToAtom;
use super::lattice_update::LatticeUpdate;
use super::message_passing::{EdgeGeometry, MessagePassing};
use super::position_update::PositionUpdate;
use super::radial::RadialBasis;
use super::self_update::SelfUpdate;
use super::surface_heads::SurfaceHeads;
use super::virial_strain::VirialStrain;

const F: usize = 4;
const K: usize = 3;

fn values(t: &Tensor) -> Vec<f64> {
    Vec::try_from(t.to_kind(Kind::Double).contiguous().flatten(0, -1)).unwrap()
}

fn random(shape: &[i64]) -> Tensor {
    Tensor::randn(shape, (Kind::Double, Device::Cpu))
}

/// The weights of a VarStore by name.
struct Weights(HashMap<String, Vec<f64>>);

impl Weights {
    fn of(vs: &VarStore) -> Self {
        Weights(
            vs.variables()
                .iter()
                .map(|(k, t)| (k.clone(), values(t)))
                .collect(),
        )
    }

    /// `y = W x (+ b)` with `W` stored `[out, in]`.
    fn linear(&self, name: &str, x: &[f64]) -> Vec<f64> {
        let w = &self.0[&format!("{name}.weight")];
        let out = w.len() / x.len();
        let mut y: Vec<f64> = (0..out)
            .map(|o| (0..x.len()).map(|i| w[o * x.len() + i] * x[i]).sum())
            .collect();
        if let Some(b) = self.0.get(&format!("{name}.bias")) {
            for (yo, bo) in y.iter_mut().zip(b) {
                *yo += bo;
            }
        }
        y
    }

    /// `Linear, act, Linear (, act)` with the linears at `.0` and `.2`.
    fn mlp(&self, name: &str, x: &[f64], final_act: bool) -> Vec<f64> {
        let h: Vec<f64> = self
            .linear(&format!("{name}.0"), x)
            .into_iter()
            .map(act)
            .collect();
        let y = self.linear(&format!("{name}.2"), &h);
        if final_act {
            y.into_iter().map(act).collect()
        } else {
            y
        }
    }
}

fn act(x: f64) -> f64 {
    x / (1.0 + (-x).exp()) / 0.6
}

fn concat(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().chain(b).copied().collect()
}

/// Row `i` of a `[n, F]` array; vector `[n, 3, F]` entries as `[a][f]`.
fn row(data: &[f64], i: usize, width: usize) -> Vec<f64> {
    data[i * width..(i + 1) * width].to_vec()
}

fn vector(data: &[f64], i: usize) -> [Vec<f64>; 3] {
    [0, 1, 2].map(|a| data[(i * 3 + a) * F..(i * 3 + a + 1) * F].to_vec())
}

fn channel_norm(v: &[Vec<f64>; 3]) -> Vec<f64> {
    (0..F)
        .map(|f| (v[0][f].powi(2) + v[1][f].powi(2) + v[2][f].powi(2) + 1e-8).sqrt())
        .collect()
}

fn assert_close(got: &Tensor, want: &[f64], what: &str) {
    let got = values(got);
    assert_eq!(got.len(), want.len(), "{what}: size");
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() < 1e-10 * (1.0 + w.abs()),
            "{what}[{k}]: {g} vs {w}"
        );
    }
}

fn store() -> VarStore {
    tch::manual_seed(17);
    VarStore::new(Device::Cpu)
}

#[test]
fn lattice_to_atom_matches_loops() {
    let mut vs = store();
    let block = LatticeToAtom::new(vs.root(), F as i64, K as i64);
    vs.double();
    let n = 3;
    let (x, v, u, rbf, s, w) = (
        random(&[n, F as i64]),
        random(&[n, 3, F as i64]),
        random(&[n, 3]),
        random(&[n, K as i64]),
        random(&[n, F as i64]),
        random(&[n, 3, F as i64]),
    );
    let (new_x, new_v) = block.forward(&x, &v, &u, &rbf, &s, &w);
    let p = Weights::of(&vs);
    let (xs, vs_, us, rs, ss, ws) = (
        values(&x),
        values(&v),
        values(&u),
        values(&rbf),
        values(&s),
        values(&w),
    );
    let mut want_x = Vec::new();
    let mut want_v = Vec::new();
    for i in 0..n as usize {
        let xi = row(&xs, i, F);
        let proj = p.mlp("x_local_proj", &xi, false);
        let edge = p.linear("edge_local_proj", &row(&rs, i, K));
        let h: Vec<f64> = proj
            .iter()
            .zip(&edge)
            .map(|(a, b)| a * b / 3f64.sqrt())
            .collect();
        let x1 = &h[..F];
        let x2 = &h[F..2 * F];
        let x3 = &h[2 * F..];
        let x_mid: Vec<f64> = (0..F).map(|f| xi[f] + x3[f]).collect();
        let vi = vector(&vs_, i);
        let v_mid: Vec<Vec<f64>> = (0..3)
            .map(|a| {
                (0..F)
                    .map(|f| (x1[f] * vi[a][f] + x2[f] * us[i * 3 + a]) / (F as f64).sqrt())
                    .collect()
            })
            .collect();
        let s_loc = p.mlp("mlp_scalar_local", &concat(&x_mid, &row(&ss, i, F)), true);
        want_x.extend((0..F).map(|f| s_loc[f] + x_mid[f]));
        let wi = vector(&ws, i);
        for a in 0..3 {
            let input: Vec<f64> = (0..F).map(|f| v_mid[a][f] + wi[a][f]).collect();
            let v_loc = p.linear("mlp_vector_local", &input);
            want_v.extend((0..F).map(|f| v_loc[f] + v_mid[a][f]));
        }
    }
    assert_close(&new_x, &want_x, "x");
    assert_close(&new_v, &want_v, "v");
}

#[test]
fn message_passing_matches_loops() {
    let mut vs = store();
    let block = MessagePassing::new(vs.root(), F as i64, K as i64);
    vs.double();
    let n = 4;
    let edges_list = [
        (0usize, 1usize),
        (2, 1),
        (3, 0),
        (1, 3),
        (1, 1),
        (2, 0),
        (0, 2),
    ];
    let source = Tensor::from_slice(&edges_list.map(|e| e.0 as i64));
    let target = Tensor::from_slice(&edges_list.map(|e| e.1 as i64));
    let e = edges_list.len() as i64;
    let distance = random(&[e]).abs() * 3.0 + 1.0;
    let direction = random(&[e, 3]);
    let (x, v) = (random(&[n, F as i64]), random(&[n, 3, F as i64]));
    let radial = RadialBasis {
        num_rbf: K as i64,
        cutoff: 6.0,
        exponent: 5,
    };
    let geometry = EdgeGeometry {
        source,
        target,
        distance: distance.shallow_clone(),
        direction: direction.shallow_clone(),
        weight: None,
    };
    let (new_x, new_v) = block.forward(&x, &v, &geometry, &radial);
    let p = Weights::of(&vs);
    let (xs, vs_, ds, us) = (
        values(&x),
        values(&v),
        values(&distance),
        values(&direction),
    );
    let rbf = values(&radial.forward(&distance));
    let mut dx = vec![vec![0.0; F]; n as usize];
    let mut dv = vec![[vec![0.0; F], vec![0.0; F], vec![0.0; F]]; n as usize];
    for (k, &(j, i)) in edges_list.iter().enumerate() {
        assert!(ds[k] > 0.0);
        let q = p.mlp("x_proj", &row(&xs, j, F), false);
        let we = p.linear("edge_proj", &row(&rbf, k, K));
        let m: Vec<f64> = q
            .iter()
            .zip(&we)
            .map(|(a, b)| a * b / 3f64.sqrt())
            .collect();
        let vj = vector(&vs_, j);
        for f in 0..F {
            dx[i][f] += m[2 * F + f];
            for a in 0..3 {
                dv[i][a][f] += (m[f] * vj[a][f] + m[F + f] * us[k * 3 + a]) / (F as f64).sqrt();
            }
        }
    }
    let mut want_x = Vec::new();
    let mut want_v = Vec::new();
    for i in 0..n as usize {
        want_x.extend((0..F).map(|f| (xs[i * F + f] + dx[i][f]) / 2f64.sqrt()));
        let vi = vector(&vs_, i);
        for a in 0..3 {
            want_v.extend((0..F).map(|f| vi[a][f] + dv[i][a][f]));
        }
    }
    assert_close(&new_x, &want_x, "x");
    assert_close(&new_v, &want_v, "v");
    // Chunking the edges (as for large cells) changes nothing.
    let (chunked_x, chunked_v) = block.forward_in_chunks(&x, &v, &geometry, &radial, 2);
    assert_close(&chunked_x, &want_x, "x in chunks of 2");
    assert_close(&chunked_v, &want_v, "v in chunks of 2");
    // Without autograd (inference) the products are done in place: the
    // same numbers, with and without edge weights.
    let (fast_x, fast_v) = tch::no_grad(|| block.forward_in_chunks(&x, &v, &geometry, &radial, 2));
    assert_close(&fast_x, &want_x, "x without autograd");
    assert_close(&fast_v, &want_v, "v without autograd");
    let weighted = EdgeGeometry {
        weight: Some(random(&[e]).abs()),
        ..geometry
    };
    let (slow_x, slow_v) = block.forward(&x, &v, &weighted, &radial);
    assert!(
        slow_x.requires_grad(),
        "the reference must take the autograd path"
    );
    let (fast_x, fast_v) = tch::no_grad(|| block.forward(&x, &v, &weighted, &radial));
    assert_close(&fast_x, &values(&slow_x), "weighted x without autograd");
    assert_close(&fast_v, &values(&slow_v), "weighted v without autograd");
}

/// Solves the dense system `a x = b` (`a` row-major `n x n`) by Gaussian
/// elimination with partial pivoting.
fn solve_dense(mut a: Vec<f64>, mut b: Vec<f64>) -> Vec<f64> {
    let n = b.len();
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&i, &j| a[i * n + col].abs().total_cmp(&a[j * n + col].abs()))
            .unwrap();
        for k in 0..n {
            a.swap(col * n + k, pivot * n + k);
        }
        b.swap(col, pivot);
        for r in col + 1..n {
            let factor = a[r * n + col] / a[col * n + col];
            for k in col..n {
                a[r * n + k] -= factor * a[col * n + k];
            }
            b[r] -= factor * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for r in (0..n).rev() {
        let rest: f64 = (r + 1..n).map(|k| a[r * n + k] * x[k]).sum();
        x[r] = (b[r] - rest) / a[r * n + r];
    }
    x
}

/// The bond strain fit written out: per crystal, the 3x3 symmetric `e`
/// (6 unknowns exx, eyy, ezz, eyz, exz, exy) minimising
/// `sum w (u^T e u - t)^2 / sum w + ridge |e|_F^2`, from its normal
/// equations assembled term by term.
fn fit_strain_loops(edges: &[(usize, [f64; 3], f64, f64)], crystals: usize) -> Vec<f64> {
    // u^T e u = sum_pairs coefficient * unknown.
    let basis = |u: [f64; 3]| {
        [
            u[0] * u[0],
            u[1] * u[1],
            u[2] * u[2],
            2.0 * u[1] * u[2],
            2.0 * u[0] * u[2],
            2.0 * u[0] * u[1],
        ]
    };
    // |e|_F^2 counts each off-diagonal entry twice.
    let ridge_weight = [1.0, 1.0, 1.0, 2.0, 2.0, 2.0];
    let mut out = vec![0.0; crystals * 9];
    for c in 0..crystals {
        let mut a = vec![0.0; 36];
        let mut b = vec![0.0; 6];
        let mut total = 0.0;
        for &(edge_crystal, u, t, w) in edges {
            if edge_crystal != c {
                continue;
            }
            let g = basis(u);
            for r in 0..6 {
                b[r] += w * t * g[r];
                for q in 0..6 {
                    a[r * 6 + q] += w * g[r] * g[q];
                }
            }
            total += w;
        }
        for r in 0..6 {
            b[r] /= total;
            for q in 0..6 {
                a[r * 6 + q] /= total;
            }
            a[r * 6 + r] += super::virial_strain::FIT_RIDGE * ridge_weight[r];
        }
        let e = solve_dense(a, b);
        let m = [[e[0], e[5], e[4]], [e[5], e[1], e[3]], [e[4], e[3], e[2]]];
        for r in 0..3 {
            for q in 0..3 {
                out[c * 9 + r * 3 + q] = m[r][q];
            }
        }
    }
    out
}

#[test]
fn virial_strain_matches_loops() {
    // More basis functions than the other blocks' tests, so that short
    // distances against a long cutoff leave some out at inference.
    const K_VIRIAL: usize = 24;
    for fit in [false, true] {
        let mut vs = store();
        let block = VirialStrain::new(vs.root(), F as i64, K_VIRIAL as i64, fit);
        vs.double();
        let n = 5;
        // Two crystals: atoms 0-2 and 3-4.
        let edges_list = [
            (0usize, 1usize, 0usize),
            (1, 2, 0),
            (2, 0, 0),
            (0, 0, 0),
            (3, 4, 1),
            (4, 3, 1),
        ];
        let source = Tensor::from_slice(&edges_list.map(|e| e.0 as i64));
        let target = Tensor::from_slice(&edges_list.map(|e| e.1 as i64));
        let crystal = Tensor::from_slice(&edges_list.map(|e| e.2 as i64));
        let e = edges_list.len() as i64;
        let x = random(&[n, F as i64]);
        let direction = random(&[e, 3]);
        // Short distances against a long cutoff, so that the inference path
        // leaves out the Gaussians that do not reach them.
        let radial_basis = RadialBasis {
            num_rbf: K_VIRIAL as i64,
            cutoff: 30.0,
            exponent: 5,
        };
        let distance = random(&[e]).abs() + 1.0;
        assert!(radial_basis.forward_reaching(&distance).1 < K_VIRIAL as i64);
        let rbf = radial_basis.forward(&distance);
        let weight = random(&[e]).abs();
        let p = Weights::of(&vs);
        let (xs, us, rs, ws) = (
            values(&x),
            values(&direction),
            values(&rbf),
            values(&weight),
        );
        let a: Vec<Vec<f64>> = (0..n as usize)
            .map(|i| p.linear("atom_proj", &row(&xs, i, F)))
            .collect();
        let scalars: Vec<f64> = edges_list
            .iter()
            .enumerate()
            .map(|(k, &(j, i, _))| {
                let radial = p.linear("edge_proj", &row(&rs, k, K_VIRIAL));
                (0..F).map(|f| a[j][f] * a[i][f] * radial[f]).sum::<f64>() / F as f64
            })
            .collect();
        let direction_of = |k: usize| [us[k * 3], us[k * 3 + 1], us[k * 3 + 2]];
        let want = if fit {
            let edges: Vec<_> = edges_list
                .iter()
                .enumerate()
                .map(|(k, &(_, _, c))| (c, direction_of(k), scalars[k], ws[k]))
                .collect();
            fit_strain_loops(&edges, 2)
        } else {
            let mut want = vec![0.0; 2 * 9];
            let mut count = [0.0; 2];
            for (k, &(_, _, c)) in edges_list.iter().enumerate() {
                let u = direction_of(k);
                for r in 0..3 {
                    for q in 0..3 {
                        want[c * 9 + r * 3 + q] += scalars[k] * ws[k] * u[r] * u[q];
                    }
                }
                count[c] += 1.0;
            }
            for c in 0..2 {
                for entry in &mut want[c * 9..(c + 1) * 9] {
                    *entry /= count[c];
                }
            }
            want
        };
        let run = || {
            block.forward(
                &x,
                &source,
                &target,
                &direction,
                &radial_basis,
                &distance,
                Some(&weight),
                &crystal,
                2,
            )
        };
        let slow = run();
        assert!(
            slow.requires_grad(),
            "the reference must take the autograd path"
        );
        let what = if fit {
            "bond strain fit"
        } else {
            "virial strain"
        };
        assert_close(&slow, &want, what);
        assert_close(
            &tch::no_grad(run),
            &want,
            &format!("{what} without autograd"),
        );
    }
}

#[test]
fn bond_strain_fit_reads_back_a_uniform_strain_and_rotates_with_it() {
    use super::virial_strain::fit_strain;
    // The 26 neighbour directions of a simple cubic lattice; each bond
    // asks for exactly the length change a strain e0 gives it.
    let mut directions = Vec::new();
    for i in -1i32..=1 {
        for j in -1i32..=1 {
            for k in -1i32..=1 {
                if (i, j, k) != (0, 0, 0) {
                    let v = [i, j, k].map(f64::from);
                    let norm = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
                    directions.push(v.map(|x| x / norm));
                }
            }
        }
    }
    let e0 = [
        [0.03, -0.01, 0.02],
        [-0.01, -0.02, 0.005],
        [0.02, 0.005, 0.01],
    ];
    let stretch = |u: &[f64; 3]| -> f64 {
        (0..3)
            .map(|r| (0..3).map(|q| u[r] * e0[r][q] * u[q]).sum::<f64>())
            .sum()
    };
    let t: Vec<f64> = directions.iter().map(stretch).collect();
    let n = directions.len() as i64;
    let crystal = Tensor::zeros([n], (Kind::Int64, Device::Cpu));
    let u = Tensor::from_slice(&directions.concat()).view([n, 3]);
    let fitted = fit_strain(&u, &Tensor::from_slice(&t), None, &crystal, 1);
    // The ridge shrinks the answer a little (by less than 15 % here), the
    // mean is unchanged in shape.
    let got = values(&fitted);
    let error: f64 = (0..9)
        .map(|k| (got[k] - e0[k / 3][k % 3]).powi(2))
        .sum::<f64>()
        .sqrt();
    let size: f64 = e0.iter().flatten().map(|v| v * v).sum::<f64>().sqrt();
    assert!(error < 0.15 * size, "{got:?} vs {e0:?}");
    // Equivariance: rotated bonds with the same targets give R e R^T.
    let rotation = Tensor::from_slice(&[0.36, 0.48, -0.8, -0.8, 0.6, 0.0, 0.48, 0.64, 0.6])
        .view([3, 3])
        .to_kind(Kind::Double);
    let rotated = fit_strain(
        &u.matmul(&rotation.tr()),
        &Tensor::from_slice(&t),
        None,
        &crystal,
        1,
    );
    let want = rotation
        .matmul(&fitted.squeeze_dim(0))
        .matmul(&rotation.tr());
    assert_close(&rotated.squeeze_dim(0), &values(&want), "rotated fit");
}

#[test]
fn surface_heads_match_loops() {
    let mut vs = store();
    let heads = SurfaceHeads::new(vs.root(), F as i64, K as i64);
    vs.double();
    let n = 5usize;
    // Two crystals: atoms 0-2 and 3-4.
    let atom_crystal_list = [0usize, 0, 0, 1, 1];
    let edges_list = [
        (0usize, 1usize, 0usize),
        (1, 2, 0),
        (2, 0, 0),
        (0, 0, 0),
        (3, 4, 1),
        (4, 3, 1),
    ];
    let e = edges_list.len() as i64;
    let x = random(&[n as i64, F as i64]);
    let v = random(&[n as i64, 3, F as i64]);
    let direction = random(&[e, 3]);
    let distance = random(&[e]).abs() + 1.0;
    let weight = random(&[e]).abs();
    let radial_basis = RadialBasis {
        num_rbf: K as i64,
        cutoff: 6.0,
        exponent: 5,
    };
    let edges = EdgeGeometry {
        source: Tensor::from_slice(&edges_list.map(|e| e.0 as i64)),
        target: Tensor::from_slice(&edges_list.map(|e| e.1 as i64)),
        distance: distance.shallow_clone(),
        direction: direction.shallow_clone(),
        weight: Some(weight.shallow_clone()),
    };
    let edge_crystal = Tensor::from_slice(&edges_list.map(|e| e.2 as i64));
    let atom_crystal = Tensor::from_slice(&atom_crystal_list.map(|c| c as i64));
    let counts = [3.0, 2.0];
    let atom_counts = Tensor::from_slice(&counts);
    let got = heads.forward(
        &x,
        &v,
        &edges,
        &edge_crystal,
        &radial_basis,
        &atom_crystal,
        &atom_counts,
    );

    let p = Weights::of(&vs);
    let (xs, vs_values, us, ws) = (values(&x), values(&v), values(&direction), values(&weight));
    let rbf = values(&radial_basis.forward(&distance));
    // Energy: mean over a crystal's atoms of the MLP's output.
    let mut energy = [0.0; 2];
    for i in 0..n {
        energy[atom_crystal_list[i]] +=
            p.mlp("energy", &row(&xs, i, F), false)[0] / counts[atom_crystal_list[i]];
    }
    assert_close(&got.energy_per_atom, &energy, "energy per atom");
    // Forces: sum over channels of (V W)_c times the gate g_c(x), / sqrt F.
    let mut forces = vec![0.0; n * 3];
    for i in 0..n {
        let gate = p.linear("force_gate", &row(&xs, i, F));
        let components = vector(&vs_values, i);
        for r in 0..3 {
            let projected = p.linear("force_vector", &components[r]);
            forces[i * 3 + r] =
                (0..F).map(|c| projected[c] * gate[c]).sum::<f64>() / (F as f64).sqrt();
        }
    }
    assert_close(&got.forces, &forces, "forces");
    // Virial: bond scalars times u u^T summed over the crystal's edges, plus
    // the per-atom isotropic part, both per atom of the crystal.
    let a: Vec<Vec<f64>> = (0..n)
        .map(|i| p.linear("virial_atom", &row(&xs, i, F)))
        .collect();
    let mut virial = vec![0.0; 2 * 9];
    for (k, &(j, i, c)) in edges_list.iter().enumerate() {
        let radial = p.linear("virial_edge", &row(&rbf, k, K));
        let s = (0..F).map(|f| a[j][f] * a[i][f] * radial[f]).sum::<f64>() / F as f64 * ws[k];
        for r in 0..3 {
            for q in 0..3 {
                virial[c * 9 + r * 3 + q] += s * us[k * 3 + r] * us[k * 3 + q] / counts[c];
            }
        }
    }
    for i in 0..n {
        let c = atom_crystal_list[i];
        let pressure = p.linear("virial_isotropic", &row(&xs, i, F))[0] / counts[c];
        for r in 0..3 {
            virial[c * 9 + r * 4] += pressure;
        }
    }
    assert_close(&got.virial_per_atom, &virial, "virial per atom");
}

#[test]
fn self_update_matches_loops() {
    let mut vs = store();
    let block = SelfUpdate::new(vs.root(), F as i64);
    vs.double();
    let n = 3;
    let (x, v) = (random(&[n, F as i64]), random(&[n, 3, F as i64]));
    let (new_x, new_v) = block.forward(&x, &v);
    let p = Weights::of(&vs);
    let (xs, vs_) = (values(&x), values(&v));
    let mut want_x = Vec::new();
    let mut want_v = Vec::new();
    for i in 0..n as usize {
        let vi = vector(&vs_, i);
        let uv: Vec<Vec<f64>> = (0..3).map(|a| p.linear("vec_proj", &vi[a])).collect();
        let v1: [Vec<f64>; 3] = [0, 1, 2].map(|a| uv[a][..F].to_vec());
        let v2: [Vec<f64>; 3] = [0, 1, 2].map(|a| uv[a][F..].to_vec());
        let xi = row(&xs, i, F);
        let a = p.mlp("xvec_proj", &concat(&xi, &channel_norm(&v2)), false);
        for f in 0..F {
            let dx = a[F + f] / 2f64.sqrt() + xi[f] * a[2 * F + f].tanh();
            want_x.push((xi[f] + dx) / 2f64.sqrt());
        }
        for ax in 0..3 {
            want_v.extend((0..F).map(|f| vi[ax][f] + a[f] * v1[ax][f]));
        }
    }
    assert_close(&new_x, &want_x, "x");
    assert_close(&new_v, &want_v, "v");
}

#[test]
fn position_update_matches_loops() {
    let mut vs = store();
    let block = PositionUpdate::new(vs.root(), F as i64);
    vs.double();
    let n = 3;
    let (x, v) = (random(&[n, F as i64]), random(&[n, 3, F as i64]));
    let dpos = block.forward(&x, &v);
    let p = Weights::of(&vs);
    let (xs, vs_) = (values(&x), values(&v));
    let mut want = Vec::new();
    for i in 0..n as usize {
        let logits = p.mlp("attention_pos", &row(&xs, i, F), false);
        let max = logits.iter().cloned().fold(f64::MIN, f64::max);
        let e: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
        let total: f64 = e.iter().sum();
        let vi = vector(&vs_, i);
        for a in 0..3 {
            let wp = p.linear("pos_mlp", &vi[a])[0];
            let attended: f64 = (0..F).map(|f| e[f] / total * vi[a][f]).sum();
            want.push((wp + attended) / 2.0);
        }
    }
    assert_close(&dpos, &want, "dpos");
}

#[test]
fn atom_to_lattice_and_lattice_update_match_loops() {
    let mut vs = store();
    let block = AtomToLattice::new(&vs.root() / "a2l", F as i64);
    let update = LatticeUpdate::new(&vs.root() / "lu", F as i64);
    vs.double();
    let b = 2;
    let (s, w, xm, vm) = (
        random(&[b, F as i64]),
        random(&[b, 3, F as i64]),
        random(&[b, F as i64]),
        random(&[b, 3, F as i64]),
    );
    let (new_s, new_w) = block.forward(&s, &w, &xm, &vm);
    let dl = update.forward(&new_w);
    let p = Weights::of(&vs);
    let (ss, ws, xms, vms) = (values(&s), values(&w), values(&xm), values(&vm));
    let mut want_s = Vec::new();
    let mut want_w = Vec::new();
    let mut want_dl = Vec::new();
    for c in 0..b as usize {
        let sc = row(&ss, c, F);
        let g = p.mlp(
            "a2l.mlp_scalar_global",
            &concat(&row(&xms, c, F), &sc),
            true,
        );
        let s1: Vec<f64> = (0..F).map(|f| sc[f] + g[f]).collect();
        let wc = vector(&ws, c);
        let vmc = vector(&vms, c);
        let w1: [Vec<f64>; 3] = [0, 1, 2].map(|a| {
            let input: Vec<f64> = (0..F).map(|f| vmc[a][f] + wc[a][f]).collect();
            let vg = p.linear("a2l.mlp_vector_global", &input);
            (0..F).map(|f| wc[a][f] + vg[f]).collect()
        });
        let hy: Vec<Vec<f64>> = (0..3)
            .map(|a| p.linear("a2l.vector_l_proj", &w1[a]))
            .collect();
        let h1: [Vec<f64>; 3] = [0, 1, 2].map(|a| hy[a][..F].to_vec());
        let h2: [Vec<f64>; 3] = [0, 1, 2].map(|a| hy[a][F..].to_vec());
        let bz = p.mlp("a2l.scalar_l_proj", &concat(&s1, &channel_norm(&h2)), false);
        want_s.extend((0..F).map(|f| bz[F + f] + s1[f] * bz[2 * F + f].tanh()));
        let w2: Vec<Vec<f64>> = (0..3)
            .map(|a| (0..F).map(|f| bz[f] * h1[a][f] + w1[a][f]).collect())
            .collect();
        for a in 0..3 {
            want_w.extend(w2[a].iter().copied());
        }
        for wa in &w2 {
            want_dl.push(p.linear("lu.mlp_l", wa)[0]);
        }
    }
    assert_close(&new_s, &want_s, "s");
    assert_close(&new_w, &want_w, "w");
    assert_close(&dl, &want_dl, "dl");
}

#[test]
fn lattice_delta_goes_to_rows_or_columns() {
    let lattice = Tensor::zeros([1, 3, 3], (Kind::Double, Device::Cpu));
    let deltas: Vec<Tensor> = (0..3)
        .map(|c| {
            Tensor::from_slice(&[
                10.0 * c as f64 + 1.0,
                10.0 * c as f64 + 2.0,
                10.0 * c as f64 + 3.0,
            ])
            .reshape([1, 3])
        })
        .collect();
    let rows = values(&super::lattice_update::apply(&lattice, &deltas, false));
    let cols = values(&super::lattice_update::apply(&lattice, &deltas, true));
    // Row c (lattice vector c) = dl_c.
    assert_eq!(
        rows,
        vec![1.0, 2.0, 3.0, 11.0, 12.0, 13.0, 21.0, 22.0, 23.0]
    );
    // The authors' layout: column c = dl_c.
    assert_eq!(
        cols,
        vec![1.0, 11.0, 21.0, 2.0, 12.0, 22.0, 3.0, 13.0, 23.0]
    );
}

#[test]
fn message_passing_chunks_stay_below_the_heap_limit() {
    // glibc serves blocks under 32 MiB from its heap (kept between
    // predictions by runtime::tune_allocator); a per-edge [chunk, 3F] f32
    // tensor must fit, at every size a config may have.
    let vs = VarStore::new(Device::Cpu);
    for hidden in [8, 64, 512, crate::model::config::MAX_HIDDEN_CHANNELS] {
        let block = MessagePassing::new(vs.root() / format!("mp{hidden}"), hidden, 4);
        let bytes = block.chunk_size() * 3 * hidden * 4;
        assert!(bytes < 32 << 20, "F = {hidden}: {bytes} bytes per chunk");
    }
}
