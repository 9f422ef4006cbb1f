//! Elementwise kernels: LeakyReLU (forward, backward, in place, and its gradient read from the
//! output's sign) and dropout with a counter-based mask (recomputed in the backward pass, never
//! stored).

use rayon::prelude::*;

/// Floats per rayon task of the elementwise kernels.
const CHUNK: usize = 1 << 16;

/// LeakyReLU in place.
pub(crate) fn leaky_in_place(v: &mut [f32], slope: f32) {
    for o in v.iter_mut() {
        if *o < 0.0 {
            *o *= slope;
        }
    }
}

/// `out = dy * act'(z)` with the activation's sign read from `sign_of` (its input, or its
/// output: LeakyReLU with a positive slope keeps the sign).
pub(crate) fn leaky_grad(dy: &[f32], sign_of: &[f32], slope: f32, out: &mut [f32]) {
    for ((o, &g), &v) in out.iter_mut().zip(dy).zip(sign_of) {
        *o = if v < 0.0 { g * slope } else { g };
    }
}

/// LeakyReLU forward: `x` where `x >= 0`, else `x * slope`.
pub(crate) fn leaky_forward(x: &[f32], slope: f32) -> Vec<f32> {
    let mut y = vec![0f32; x.len()];
    y.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(o, i)| {
            for (o, &v) in o.iter_mut().zip(i) {
                *o = if v < 0.0 { v * slope } else { v };
            }
        });
    y
}

/// LeakyReLU backward: `dy` where `x >= 0`, else `dy * slope`.
pub(crate) fn leaky_backward(x: &[f32], dy: &[f32], slope: f32) -> Vec<f32> {
    let mut dx = vec![0f32; x.len()];
    dx.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK).zip(dy.par_chunks(CHUNK)))
        .for_each(|(o, (xs, gs))| leaky_grad(gs, xs, slope, o));
    dx
}

/// SplitMix64 finaliser: a well-mixed 64-bit hash of `(key, counter)`.
fn mix(key: u64, i: u64) -> u64 {
    let mut z = key ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Dropout multiply: `out[i] = v[i] * scale` where element `i` is kept, else 0. Element `i` is kept
/// when a uniform draw in [0, 1) from `(key, i)` is below `keep` (counter-based, so the mask
/// is recomputed in the backward pass instead of stored). Used for both passes.
pub(crate) fn dropout_apply(v: &[f32], key: u64, keep: f64, scale: f32) -> Vec<f32> {
    // u = (h >> 40) / 2^24 < keep  <=>  (h >> 40) < ceil(keep * 2^24)
    let threshold = (keep * (1u64 << 24) as f64).ceil() as u64;
    let mut out = vec![0f32; v.len()];
    out.par_chunks_mut(CHUNK)
        .zip(v.par_chunks(CHUNK))
        .enumerate()
        .for_each(|(ci, (o, s))| {
            let base = (ci * CHUNK) as u64;
            for (j, (o, &x)) in o.iter_mut().zip(s).enumerate() {
                let kept = (mix(key, base + j as u64) >> 40) < threshold;
                *o = if kept { x * scale } else { 0.0 };
            }
        });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropout_keeps_about_the_right_fraction() {
        let v = vec![1f32; 200_000];
        let out = dropout_apply(&v, 42, 0.9, 1.0);
        let kept = out.iter().filter(|&&x| x != 0.0).count() as f64 / v.len() as f64;
        assert!((kept - 0.9).abs() < 0.005, "{kept}");
        assert_eq!(out, dropout_apply(&v, 42, 0.9, 1.0));
        assert_ne!(out, dropout_apply(&v, 43, 0.9, 1.0));
    }
}
