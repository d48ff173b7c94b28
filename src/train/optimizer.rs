//! AdamW (with AMSGrad), gradient-norm clipping and the exponential moving
//! average of the weights, written out so that their whole state can be
//! checkpointed and a killed run resumed bit for bit.

use std::collections::BTreeMap;

use tch::Tensor;

/// Decoupled-weight-decay Adam as PyTorch's `torch.optim.AdamW`.
#[derive(Debug)]
pub struct AdamW {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Parameters (by name) that are not decayed.
    pub not_decayed: std::collections::BTreeSet<String>,
    pub amsgrad: bool,
    /// Steps taken.
    pub step: i64,
    /// Per parameter: first moment, second moment, running max of the
    /// second moment (AMSGrad).
    pub moments: BTreeMap<String, [Tensor; 3]>,
}

impl AdamW {
    pub fn new(
        params: &BTreeMap<String, Tensor>,
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
        amsgrad: bool,
    ) -> Self {
        let moments = params
            .iter()
            .map(|(k, p)| (k.clone(), [p.zeros_like(), p.zeros_like(), p.zeros_like()]))
            .collect();
        AdamW {
            beta1,
            beta2,
            eps,
            weight_decay,
            not_decayed: Default::default(),
            amsgrad,
            step: 0,
            moments,
        }
    }

    /// One update of every parameter that has a gradient.
    pub fn step(&mut self, params: &BTreeMap<String, Tensor>, lr: f64) {
        self.step += 1;
        let bias1 = 1.0 - self.beta1.powi(self.step as i32);
        let bias2 = 1.0 - self.beta2.powi(self.step as i32);
        tch::no_grad(|| {
            for (name, p) in params {
                let grad = p.grad();
                if !grad.defined() {
                    continue;
                }
                let [m, v, vmax] = &self.moments[name];
                let mut p = p.shallow_clone();
                let decayed = !self.not_decayed.contains(name);
                if self.weight_decay != 0.0 && decayed {
                    let _ = p.g_mul_scalar_(1.0 - lr * self.weight_decay);
                }
                let _ = m
                    .shallow_clone()
                    .g_mul_scalar_(self.beta1)
                    .g_add_(&(&grad * (1.0 - self.beta1)));
                let _ = v
                    .shallow_clone()
                    .g_mul_scalar_(self.beta2)
                    .g_add_(&(grad.square() * (1.0 - self.beta2)));
                let second = if self.amsgrad {
                    vmax.shallow_clone().copy_(&vmax.maximum(v));
                    vmax
                } else {
                    v
                };
                let denom = second.sqrt() / bias2.sqrt() + self.eps;
                let _ = p.g_sub_(&(m / &denom * (lr / bias1)));
            }
        });
    }

    /// Moments as named tensors (`m.`, `v.`, `vmax.` + parameter name).
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (name, [m, v, vmax]) in &self.moments {
            out.push((format!("m.{name}"), m.shallow_clone()));
            out.push((format!("v.{name}"), v.shallow_clone()));
            out.push((format!("vmax.{name}"), vmax.shallow_clone()));
        }
        out
    }

    /// Restores moments written by [`AdamW::state_tensors`].
    pub fn load_state(&mut self, tensors: &BTreeMap<String, Tensor>) -> crate::Result<()> {
        tch::no_grad(|| {
            for (name, slots) in &self.moments {
                for (prefix, slot) in ["m", "v", "vmax"].iter().zip(slots) {
                    let key = format!("{prefix}.{name}");
                    let value = tensors.get(&key).ok_or_else(|| {
                        crate::Error::Model(format!("optimizer state: missing '{key}'"))
                    })?;
                    slot.shallow_clone().f_copy_(value)?;
                }
            }
            Ok(())
        })
    }
}

/// Scales all gradients so their global norm is at most `max_norm`;
/// returns the norm before clipping.
pub fn clip_grad_norm(params: &BTreeMap<String, Tensor>, max_norm: f64) -> f64 {
    tch::no_grad(|| {
        let grads: Vec<Tensor> = params
            .values()
            .map(|p| p.grad())
            .filter(|g| g.defined())
            .collect();
        if grads.is_empty() {
            return 0.0;
        }
        // One device-to-host read for all parameters: on CUDA each read is a
        // synchronisation, and there are hundreds of parameter tensors.
        let squares: Vec<Tensor> = grads
            .iter()
            .map(|g| g.square().sum(tch::Kind::Double))
            .collect();
        let total = Tensor::stack(&squares, 0)
            .sum(tch::Kind::Double)
            .double_value(&[])
            .sqrt();
        if total > max_norm {
            let scale = max_norm / (total + 1e-6);
            for g in &grads {
                let _ = g.shallow_clone().g_mul_scalar_(scale);
            }
        }
        total
    })
}

/// Exponential moving average of the parameters.
#[derive(Debug)]
pub struct Ema {
    pub decay: f64,
    pub shadow: BTreeMap<String, Tensor>,
}

impl Ema {
    pub fn new(params: &BTreeMap<String, Tensor>, decay: f64) -> Self {
        let shadow = tch::no_grad(|| {
            params
                .iter()
                .map(|(k, p)| (k.clone(), p.detach().copy()))
                .collect()
        });
        Ema { decay, shadow }
    }

    pub fn update(&mut self, params: &BTreeMap<String, Tensor>) {
        tch::no_grad(|| {
            for (name, p) in params {
                let s = &self.shadow[name];
                let _ = s
                    .shallow_clone()
                    .g_mul_scalar_(self.decay)
                    .g_add_(&(p * (1.0 - self.decay)));
            }
        });
    }
}

/// Swaps the values of two parameter sets in place (EMA in for validation,
/// back out after).
pub fn swap_values(a: &BTreeMap<String, Tensor>, b: &BTreeMap<String, Tensor>) {
    tch::no_grad(|| {
        for (name, x) in a {
            let y = &b[name];
            let tmp = x.copy();
            x.shallow_clone().copy_(y);
            y.shallow_clone().copy_(&tmp);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    /// PyTorch's AdamW(amsgrad=True) on f(p) = sum(p^2) for 3 steps from
    /// p = [1, -2], lr 0.1, wd 0.01, computed by hand with its formulas.
    #[test]
    fn matches_pytorch_update_rule() {
        let p = Tensor::from_slice(&[1.0f64, -2.0]).set_requires_grad(true);
        let params: BTreeMap<String, Tensor> = [("p".to_string(), p.shallow_clone())].into();
        let mut opt = AdamW::new(&params, 0.9, 0.999, 1e-8, 0.01, true);
        let mut reference = vec![1.0f64, -2.0];
        let (mut m, mut v, mut vmax) = (vec![0.0; 2], vec![0.0; 2], vec![0.0; 2]);
        for step in 1..=3 {
            p.shallow_clone().zero_grad();
            p.square().sum(Kind::Double).backward();
            opt.step(&params, 0.1);
            for k in 0..2 {
                let g = 2.0 * reference[k];
                reference[k] *= 1.0 - 0.1 * 0.01;
                m[k] = 0.9 * m[k] + 0.1 * g;
                v[k] = 0.999 * v[k] + 0.001 * g * g;
                vmax[k] = f64::max(vmax[k], v[k]);
                let b1 = 1.0 - 0.9f64.powi(step);
                let b2 = 1.0 - 0.999f64.powi(step);
                reference[k] -= 0.1 / b1 * m[k] / (vmax[k].sqrt() / b2.sqrt() + 1e-8);
            }
        }
        let got: Vec<f64> = Vec::try_from(p.detach()).unwrap();
        for k in 0..2 {
            assert!(
                (got[k] - reference[k]).abs() < 1e-12,
                "{got:?} vs {reference:?}"
            );
        }
        let _ = Device::Cpu;
    }

    #[test]
    fn excluded_parameters_are_not_decayed() {
        // A zero gradient isolates the decay: p -> p (1 - lr wd) or p.
        let decayed = Tensor::from_slice(&[2.0f64]).set_requires_grad(true);
        let kept = Tensor::from_slice(&[2.0f64]).set_requires_grad(true);
        let params: BTreeMap<String, Tensor> = [
            ("layers.0.w".to_string(), decayed.shallow_clone()),
            ("volume_prior.log_volume".to_string(), kept.shallow_clone()),
        ]
        .into();
        let mut opt = AdamW::new(&params, 0.9, 0.999, 1e-8, 0.5, false);
        opt.not_decayed.insert("volume_prior.log_volume".into());
        (&decayed * 0.0 + &kept * 0.0).sum(Kind::Double).backward();
        opt.step(&params, 0.1);
        assert!((decayed.double_value(&[0]) - 2.0 * (1.0 - 0.05)).abs() < 1e-12);
        assert_eq!(kept.double_value(&[0]), 2.0);
    }

    #[test]
    fn clipping_and_ema() {
        let p = Tensor::from_slice(&[3.0f64, 4.0]).set_requires_grad(true);
        let params: BTreeMap<String, Tensor> = [("p".to_string(), p.shallow_clone())].into();
        (p.shallow_clone() * 1.0).sum(Kind::Double).backward();
        // Gradient (1, 1): norm sqrt 2, clipped to 1.
        let norm = clip_grad_norm(&params, 1.0);
        assert!((norm - 2f64.sqrt()).abs() < 1e-12);
        let g: Vec<f64> = Vec::try_from(p.grad()).unwrap();
        assert!((g[0] - 1.0 / 2f64.sqrt()).abs() < 1e-5);
        let mut ema = Ema::new(&params, 0.5);
        tch::no_grad(|| {
            let _ = p.shallow_clone().fill_(1.0);
        });
        ema.update(&params);
        let s: Vec<f64> = Vec::try_from(&ema.shadow["p"]).unwrap();
        assert_eq!(s, vec![2.0, 2.5]);
    }
}
