//! DiffAugment (Zhao et al. 2020): differentiable colour, translation and cutout augmentations,
//! applied to every image D sees (reals and fakes alike in D's step, fakes in G's step), so D
//! cannot overfit a small dataset and G still gets gradients through the augmentation.
//!
//! Random choices come from a host RNG seeded per step (see `Gan::step`), so resume stays
//! bit-exact. Images are in [0, 1]; the brightness shift is half the reference's (which works on
//! [-1, 1]), the same change in pixel terms.

use anyhow::Result;
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, TensorData};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Which augmentations are on; parsed from a policy string like `"color,translation,cutout"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffAugment {
    pub color: bool,
    pub translation: bool,
    pub cutout: bool,
}

/// Largest shift as a fraction of the image side (the reference's 1/8).
pub const TRANSLATION_RATIO: f64 = 0.125;
/// Side of the cut-out rectangle as a fraction of the image side (the reference's 1/2).
pub const CUTOUT_RATIO: f64 = 0.5;

impl DiffAugment {
    /// `""` or `"none"` is off; otherwise a comma-separated subset of color, translation, cutout
    /// (see [`facegan_rundir::config::diffaugment_ops`]).
    pub fn parse(policy: &str) -> Result<Self> {
        let mut aug = DiffAugment::default();
        for op in facegan_rundir::config::diffaugment_ops(policy)? {
            match op {
                "color" => aug.color = true,
                "translation" => aug.translation = true,
                "cutout" => aug.cutout = true,
                other => unreachable!("{other} is not one of DIFFAUGMENT_OPS"),
            }
        }
        Ok(aug)
    }

    pub fn is_off(&self) -> bool {
        !(self.color || self.translation || self.cutout)
    }

    /// Augments a `[N, C, H, W]` batch; differentiable with respect to `x`.
    pub fn apply<B: Backend>(&self, x: Tensor<B, 4>, rng: &mut ChaCha8Rng) -> Tensor<B, 4> {
        let mut x = x;
        if self.color {
            x = color(x, rng);
        }
        if self.translation {
            x = translation(x, rng);
        }
        if self.cutout {
            x = cutout(x, rng);
        }
        x
    }
}

/// Brightness `x + (r - 0.5) / 2`, saturation `(x - mean_c) * 2r + mean_c`, contrast
/// `(x - mean) * (r + 0.5) + mean`, with one uniform `r` per image and per effect (drawn in
/// that order).
///
/// The three effects compose to one affine map per image, done as two cheap ops instead of seven
/// broadcasts over the batch (which Burn's CPU backend walks element by element): with `b`, `s`
/// and `k` the image's brightness shift, saturation and contrast factors, `mean_c` the mean over
/// channels at each pixel and `mean` the image's mean,
/// `y = k s x + k (1 - s) mean_c(x) + (1 - k) mean(x) + b`
/// (the saturation leaves each pixel's channel mean as it is, so the contrast's mean is
/// `mean(x) + b`). The first two terms are a 3x3 channel mix per image, one batched matrix
/// product; the rest is a per-image shift.
pub fn color<B: Backend>(x: Tensor<B, 4>, rng: &mut ChaCha8Rng) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    let device = x.device();
    let mut draw =
        |f: fn(f32) -> f32| -> Vec<f32> { (0..n).map(|_| f(rng.random::<f32>())).collect() };
    let brightness = draw(|r| (r - 0.5) * 0.5);
    let saturation = draw(|r| r * 2.0);
    let contrast = draw(|r| r + 0.5);
    // Per image: k s on the diagonal, plus k (1 - s) / c everywhere (the channel mean's share).
    let mut mix = Vec::with_capacity(n * c * c);
    for (&s, &k) in saturation.iter().zip(&contrast) {
        let share = k * (1.0 - s) / c as f32;
        for row in 0..c {
            mix.extend((0..c).map(|col| share + if row == col { k * s } else { 0.0 }));
        }
    }
    let mix = Tensor::<B, 3>::from_data(TensorData::new(mix, [n, c, c]), &device);
    let flat = x.reshape([n, c * h * w]);
    let mean = flat.clone().mean_dim(1);
    let mixed = mix
        .matmul(flat.reshape([n, c, h * w]))
        .reshape([n, c * h * w]);
    let keep: Vec<f32> = contrast.iter().map(|k| 1.0 - k).collect();
    let keep = Tensor::<B, 2>::from_data(TensorData::new(keep, [n, 1]), &device);
    let shift = Tensor::<B, 2>::from_data(TensorData::new(brightness, [n, 1]), &device);
    (mixed + mean * keep + shift).reshape([n, c, h, w])
}

/// Shifts each image by up to 1/8 of its height and width (independently per image), filling
/// with zeros: `out[i][j] = x[i + dy][j + dx]`, or 0 outside the image. One gather over each
/// image plane (gradients flow back to the pixels as a scatter-add), then zeros written where
/// the source falls outside the image (written, not multiplied by a mask: a non-finite pixel
/// gathered as the stand-in for those positions does not spread).
pub fn translation<B: Backend>(x: Tensor<B, 4>, rng: &mut ChaCha8Rng) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    let device = x.device();
    let (ph, pw) = (
        (h as f64 * TRANSLATION_RATIO + 0.5) as i64,
        (w as f64 * TRANSLATION_RATIO + 0.5) as i64,
    );
    if ph == 0 && pw == 0 {
        return x;
    }
    let shifts: Vec<(i64, i64)> = (0..n)
        .map(|_| (rng.random_range(-ph..=ph), rng.random_range(-pw..=pw)))
        .collect();
    // One plane's source index and outside-mask per image; every channel repeats them.
    let mut index = Vec::with_capacity(n * c * h * w);
    let mut outside = Vec::with_capacity(n * c * h * w);
    let (hi, wi) = (h as i64, w as i64);
    for &(dy, dx) in &shifts {
        let mut plane_index = Vec::with_capacity(h * w);
        let mut plane_outside = Vec::with_capacity(h * w);
        for i in 0..hi {
            for j in 0..wi {
                let (si, sj) = (i + dy, j + dx);
                let ok = (0..hi).contains(&si) && (0..wi).contains(&sj);
                plane_index.push(if ok { (si * wi + sj) as i32 } else { 0 });
                plane_outside.push(!ok);
            }
        }
        for _ in 0..c {
            index.extend_from_slice(&plane_index);
            outside.extend_from_slice(&plane_outside);
        }
    }
    let index = Tensor::<B, 2, Int>::from_data(TensorData::new(index, [n * c, h * w]), &device);
    let outside =
        Tensor::<B, 2, Bool>::from_data(TensorData::new(outside, [n * c, h * w]), &device);
    let moved = x.reshape([n * c, h * w]).gather(1, index);
    moved.mask_fill(outside, 0.0).reshape([n, c, h, w])
}

/// Zeroes one rectangle of half the image's height and width per image, centred at a uniform
/// position (clipped at the borders).
pub fn cutout<B: Backend>(x: Tensor<B, 4>, rng: &mut ChaCha8Rng) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    let (ch, cw) = (
        (h as f64 * CUTOUT_RATIO + 0.5) as usize,
        (w as f64 * CUTOUT_RATIO + 0.5) as usize,
    );
    let mut plane = vec![1f32; h * w];
    let mut mask = Vec::with_capacity(n * c * h * w);
    for _ in 0..n {
        plane.fill(1.0);
        let cy = rng.random_range(0..h) as i64 - (ch / 2) as i64;
        let cx = rng.random_range(0..w) as i64 - (cw / 2) as i64;
        for i in cy.max(0)..(cy + ch as i64).min(h as i64) {
            for j in cx.max(0)..(cx + cw as i64).min(w as i64) {
                plane[i as usize * w + j as usize] = 0.0;
            }
        }
        // Every channel: a mask of the batch's own shape multiplies element by element (a
        // broadcast over channels is walked element by element on the CPU backend).
        for _ in 0..c {
            mask.extend_from_slice(&plane);
        }
    }
    let mask = Tensor::<B, 4>::from_data(TensorData::new(mask, [n, c, h, w]), &x.device());
    x * mask
}
