//! Radial basis: Gaussians on `s = d / cutoff` times a polynomial envelope.

use tch::Tensor;

/// `rbf(d) = u(s) g(s)`, `g_k(s) = exp(-0.5 (s - mu_k)^2 / delta^2)` with
/// K centres `mu_k` evenly spaced on [0, 1] and `delta = mu_1 - mu_0`;
/// `u(s) = 1 + a s^p + b s^(p+1) + c s^(p+2)` for `s < 1`, else 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RadialBasis {
    pub num_rbf: i64,
    pub cutoff: f64,
    pub exponent: i32,
}

impl RadialBasis {
    /// The Gaussian centres (the authors' `radial_basis.rbf.offset`).
    pub fn centres(&self, options: (tch::Kind, tch::Device)) -> Tensor {
        Tensor::linspace(0.0, 1.0, self.num_rbf, options)
    }

    /// The envelope `u(s)` (zero for `s >= 1`).
    pub fn envelope(&self, s: &Tensor) -> Tensor {
        let p = f64::from(self.exponent);
        let a = -(p + 1.0) * (p + 2.0) / 2.0;
        let b = p * (p + 2.0);
        let c = -p * (p + 1.0) / 2.0;
        let sp = s.pow_tensor_scalar(p);
        let u = sp.shallow_clone() * (a + b * s + c * s.square()) + 1.0;
        u * s.lt(1.0).to_kind(s.kind())
    }

    /// `[m] distances -> [m, K]`.
    /// The first basis functions only: those whose Gaussian at the largest
    /// of `d` is above exp(-18) (1.5e-8) of its peak, as `(rbf [E, used],
    /// used)`. The functions left out are below that everywhere in `d`, so
    /// a linear map of the basis changes by round-off only. Short
    /// distances against a long `cutoff` (6 Å of 30 Å with K = 128) need a
    /// quarter of the basis.
    pub fn forward_reaching(&self, d: &Tensor) -> (Tensor, i64) {
        let largest = if d.numel() == 0 {
            0.0
        } else {
            d.max().double_value(&[])
        };
        let delta = 1.0 / (self.num_rbf - 1) as f64;
        // Centre k at k * delta; exp(-(s - mu)^2 / 2 delta^2) < exp(-18)
        // once mu > s + 6 delta.
        let reach = largest / self.cutoff + 6.0 * delta;
        let used = ((reach / delta).floor() as i64 + 1).clamp(1, self.num_rbf);
        (self.forward_first(d, used), used)
    }

    pub fn forward(&self, d: &Tensor) -> Tensor {
        self.forward_first(d, self.num_rbf)
    }

    /// The first `used` basis functions of `d`.
    fn forward_first(&self, d: &Tensor, used: i64) -> Tensor {
        let s = d / self.cutoff;
        let mu = self.centres((d.kind(), d.device())).narrow(0, 0, used);
        let delta = 1.0 / (self.num_rbf - 1) as f64;
        let g = ((s.unsqueeze(-1) - mu).square() * (-0.5 / (delta * delta))).exp();
        g * self.envelope(&s).unsqueeze(-1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn matches_the_formula_by_hand() {
        let rb = RadialBasis {
            num_rbf: 5,
            cutoff: 30.0,
            exponent: 5,
        };
        let d = Tensor::from_slice(&[0.0f64, 7.5, 12.0, 29.0, 30.0, 45.0]);
        let out = rb.forward(&d);
        assert_eq!(out.size(), vec![6, 5]);
        let values: Vec<f64> = Vec::try_from(out.flatten(0, -1)).unwrap();
        for (row, &dist) in [0.0f64, 7.5, 12.0, 29.0, 30.0, 45.0].iter().enumerate() {
            let s = dist / 30.0;
            let p = 5.0f64;
            let (a, b, c) = (
                -(p + 1.0) * (p + 2.0) / 2.0,
                p * (p + 2.0),
                -p * (p + 1.0) / 2.0,
            );
            let u = if s < 1.0 {
                1.0 + a * s.powf(p) + b * s.powf(p + 1.0) + c * s.powf(p + 2.0)
            } else {
                0.0
            };
            for k in 0..5 {
                let mu = k as f64 / 4.0;
                let expected = u * (-0.5 * (s - mu).powi(2) / 0.25f64.powi(2)).exp();
                assert!(
                    (values[row * 5 + k] - expected).abs() < 1e-12,
                    "d={dist} k={k}"
                );
            }
        }
        // The envelope is 1 at 0 and goes smoothly to 0 at the cutoff.
        assert!((values[0] - 1.0).abs() < 1e-12);
        assert!(values[3 * 5 + 4].abs() < 1e-2);
        assert!(values[4 * 5..].iter().all(|&v| v == 0.0));
        let centres: Vec<f64> = Vec::try_from(rb.centres((Kind::Double, Device::Cpu))).unwrap();
        assert_eq!(centres, vec![0.0, 0.25, 0.5, 0.75, 1.0]);
    }

    #[test]
    fn the_reaching_basis_changes_a_linear_map_by_round_off_only() {
        let rb = RadialBasis {
            num_rbf: 128,
            cutoff: 30.0,
            exponent: 5,
        };
        let d = Tensor::from_slice(&[0.5f64, 1.7, 2.9, 4.4, 6.3]);
        let (reaching, used) = rb.forward_reaching(&d);
        // 6.3 / 30 + 6 / 127 of the way: 33 of 128 functions.
        assert_eq!(used, 33);
        assert_eq!(reaching.size(), vec![5, 33]);
        let full = rb.forward(&d);
        assert!(full.narrow(1, 0, used).allclose(&reaching, 0.0, 0.0, false));
        // The functions left out are below 1.5e-8 at every distance.
        let rest = full
            .narrow(1, used, 128 - used)
            .abs()
            .max()
            .double_value(&[]);
        assert!(rest < 1.6e-8, "{rest}");
        // A far distance needs them all.
        let (_, all) = rb.forward_reaching(&Tensor::from_slice(&[29.0f64]));
        assert_eq!(all, 128);
        let _ = (Device::Cpu, Kind::Double);
    }
}
