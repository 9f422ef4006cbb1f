//! Training-mode BatchNorm kernels on `[n, c, hw]` slices, with an optional LeakyReLU folded in:
//! per-channel batch statistics, the forward pass and its backward pass. Sums run in fixed
//! order (f32 lanes within a plane, f64 across planes), so results do not depend on threads.

use rayon::prelude::*;

use super::batch::Planes;

/// A BatchNorm's learned per-channel scale `gamma` and shift `beta`, and the slope of the
/// LeakyReLU applied after them (none: no activation).
#[derive(Clone, Copy, Debug)]
pub(crate) struct BnAffine<'a> {
    pub gamma: &'a [f32],
    pub beta: &'a [f32],
    pub slope: Option<f32>,
}

/// Per-channel batch statistics of `x`: `(mean, biased variance)` (two passes; f32 lanes within
/// an image plane, f64 across planes; fixed order).
pub(crate) fn channel_stats(x: &[f32], p: Planes) -> (Vec<f32>, Vec<f32>) {
    let m = (p.n * p.hw) as f64;
    (0..p.c)
        .into_par_iter()
        .map(|ch| {
            let s: f64 = (0..p.n)
                .map(|b| {
                    let xs = p.plane(x, b, ch);
                    lane_sum(p.hw, |i| xs[i]) as f64
                })
                .sum();
            let mean = (s / m) as f32;
            let q: f64 = (0..p.n)
                .map(|b| {
                    let xs = p.plane(x, b, ch);
                    lane_sum(p.hw, |i| {
                        let d = xs[i] - mean;
                        d * d
                    }) as f64
                })
                .sum();
            (mean, (q / m) as f32)
        })
        .unzip()
}

/// Training BatchNorm forward: `y = act((x - mean) * gamma / sqrt(var + eps) + beta)` with the
/// batch's statistics. Returns `(y, mean, var, inv_std)`.
pub(crate) fn batchnorm_forward(
    x: &[f32],
    p: Planes,
    affine: BnAffine,
    eps: f32,
) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
    let (c, hw) = (p.c, p.hw);
    let BnAffine { gamma, beta, slope } = affine;
    let (mean, var) = channel_stats(x, p);
    let inv: Vec<f32> = var.iter().map(|&v| 1.0 / (v + eps).sqrt()).collect();
    let mut y = vec![0f32; x.len()];
    y.par_chunks_mut(c * hw)
        .zip(x.par_chunks(c * hw))
        .for_each(|(yb, xb)| {
            for ch in 0..c {
                let (a, m, bt) = (gamma[ch] * inv[ch], mean[ch], beta[ch]);
                let ys = &mut yb[ch * hw..][..hw];
                let xs = &xb[ch * hw..][..hw];
                match slope {
                    Some(k) => {
                        for (o, &v) in ys.iter_mut().zip(xs) {
                            let z = (v - m) * a + bt;
                            *o = if z < 0.0 { z * k } else { z };
                        }
                    }
                    None => {
                        for (o, &v) in ys.iter_mut().zip(xs) {
                            *o = (v - m) * a + bt;
                        }
                    }
                }
            }
        });
    (y, mean, var, inv)
}

/// Sum of `f(i)` over `0..len` in 8 interleaved f32 lanes (vectorisable, fixed order).
#[inline(always)]
fn lane_sum(len: usize, f: impl Fn(usize) -> f32) -> f32 {
    let mut acc = [0f32; 8];
    let full = len / 8 * 8;
    let mut i = 0;
    while i < full {
        for (l, a) in acc.iter_mut().enumerate() {
            *a += f(i + l);
        }
        i += 8;
    }
    let mut tail = 0f32;
    for j in full..len {
        tail += f(j);
    }
    acc.iter().sum::<f32>() + tail
}

/// [`lane_sum`] of two values at once (one pass over the inputs).
#[inline(always)]
fn lane_sum2(len: usize, f: impl Fn(usize) -> (f32, f32)) -> (f32, f32) {
    let (mut a, mut b) = ([0f32; 8], [0f32; 8]);
    let full = len / 8 * 8;
    let mut i = 0;
    while i < full {
        for l in 0..8 {
            let (u, v) = f(i + l);
            a[l] += u;
            b[l] += v;
        }
        i += 8;
    }
    let (mut ta, mut tb) = (0f32, 0f32);
    for j in full..len {
        let (u, v) = f(j);
        ta += u;
        tb += v;
    }
    (a.iter().sum::<f32>() + ta, b.iter().sum::<f32>() + tb)
}

/// Gradients of [`batchnorm_forward`] given `dy` and the forward's `mean` and `inv_std`:
/// `(dx, dgamma, dbeta)`.
pub(crate) fn batchnorm_backward(
    x: &[f32],
    p: Planes,
    affine: BnAffine,
    mean: &[f32],
    inv_std: &[f32],
    dy: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (n, c, hw) = (p.n, p.c, p.hw);
    let BnAffine { gamma, beta, slope } = affine;
    let inv = inv_std;
    // dz = dy * act'(z), z recomputed from x exactly as the forward pass computed it.
    let k = slope.unwrap_or(1.0);
    let dz = |xv: f32, g: f32, m: f32, a: f32, bt: f32| -> f32 {
        if (xv - m) * a + bt < 0.0 {
            g * k
        } else {
            g
        }
    };
    let (dbeta, dgamma): (Vec<f32>, Vec<f32>) = (0..c)
        .into_par_iter()
        .map(|ch| {
            let (m, a, bt) = (mean[ch], gamma[ch] * inv[ch], beta[ch]);
            let (mut sd, mut sdx) = (0f64, 0f64);
            for b in 0..n {
                let xs = p.plane(x, b, ch);
                let gs = p.plane(dy, b, ch);
                let (s1, s2) = lane_sum2(hw, |i| {
                    let d = dz(xs[i], gs[i], m, a, bt);
                    (d, d * (xs[i] - m))
                });
                sd += s1 as f64;
                sdx += s2 as f64;
            }
            (sd as f32, (sdx * inv[ch] as f64) as f32)
        })
        .unzip();
    let cnt = (n * hw) as f32;
    let mut dx = vec![0f32; x.len()];
    dx.par_chunks_mut(c * hw).enumerate().for_each(|(b, dxb)| {
        for ch in 0..c {
            let (m, a, bt, iv) = (mean[ch], gamma[ch] * inv[ch], beta[ch], inv[ch]);
            let (mb, mg) = (dbeta[ch] / cnt, dgamma[ch] / cnt);
            let xs = p.plane(x, b, ch);
            let gs = p.plane(dy, b, ch);
            for ((o, &xv), &g) in dxb[ch * hw..][..hw].iter_mut().zip(xs).zip(gs) {
                let xh = (xv - m) * iv;
                *o = a * (dz(xv, g, m, a, bt) - mb - xh * mg);
            }
        }
    });
    (dx, dgamma, dbeta)
}
