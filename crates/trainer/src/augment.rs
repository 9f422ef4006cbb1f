//! DiffAugment (Zhao et al. 2020): differentiable colour, translation and cutout augmentations,
//! applied to every image D sees (reals and fakes alike in D's step, fakes in G's step), so D
//! cannot overfit a small dataset and G still gets gradients through the augmentation.
//!
//! Random choices come from a host RNG seeded per step (see `Gan::step`), so resume stays
//! bit-exact. Images are in [0, 1]; the brightness shift is half the reference's (which works on
//! [-1, 1]), the same change in pixel terms.

use anyhow::{bail, Result};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
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
    /// `""` or `"none"` is off; otherwise a comma-separated subset of color, translation, cutout.
    pub fn parse(policy: &str) -> Result<Self> {
        let mut aug = DiffAugment::default();
        for part in policy.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "none" => {}
                "color" => aug.color = true,
                "translation" => aug.translation = true,
                "cutout" => aug.cutout = true,
                other => bail!(
                    "unknown DiffAugment policy {other:?}; use a comma-separated subset of color, translation, cutout"
                ),
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

fn per_image<B: Backend>(values: Vec<f32>, device: &B::Device) -> Tensor<B, 4> {
    let n = values.len();
    Tensor::from_data(TensorData::new(values, [n, 1, 1, 1]), device)
}

/// Brightness `x + (r - 0.5) / 2`, saturation `(x - mean_c) * 2r + mean_c`, contrast
/// `(x - mean) * (r + 0.5) + mean`, with one uniform `r` per image and per effect.
pub fn color<B: Backend>(x: Tensor<B, 4>, rng: &mut ChaCha8Rng) -> Tensor<B, 4> {
    let [n, _, _, _] = x.dims();
    let device = x.device();
    let mut draw = |f: fn(f32) -> f32| -> Tensor<B, 4> {
        per_image((0..n).map(|_| f(rng.random::<f32>())).collect(), &device)
    };
    let brightness = draw(|r| (r - 0.5) * 0.5);
    let saturation = draw(|r| r * 2.0);
    let contrast = draw(|r| r + 0.5);
    let x = x + brightness;
    let mean_c = x.clone().mean_dim(1);
    let x = (x - mean_c.clone()) * saturation + mean_c;
    let mean = x.clone().mean_dim(1).mean_dim(2).mean_dim(3);
    (x - mean.clone()) * contrast + mean
}

/// Shifts each image by up to 1/8 of its height and width (independently per image), filling
/// with zeros. Done as two gathers from a zero-padded copy, so gradients flow to the pixels.
pub fn translation<B: Backend>(x: Tensor<B, 4>, rng: &mut ChaCha8Rng) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    let device = x.device();
    let (ph, pw) = (
        (h as f64 * TRANSLATION_RATIO + 0.5) as usize,
        (w as f64 * TRANSLATION_RATIO + 0.5) as usize,
    );
    if ph == 0 && pw == 0 {
        return x;
    }
    let shifts: Vec<(i64, i64)> = (0..n)
        .map(|_| {
            (
                rng.random_range(-(ph as i64)..=ph as i64),
                rng.random_range(-(pw as i64)..=pw as i64),
            )
        })
        .collect();
    // (left, right, top, bottom)
    let padded = x.pad((pw, pw, ph, ph), burn::tensor::ops::PadMode::Constant(0.0));
    let wp = w + 2 * pw;
    // Rows: out[n, c, i, :] = padded[n, c, i + ph + dy_n, :].
    let mut rows = Vec::with_capacity(n * c * h * wp);
    for &(dy, _) in &shifts {
        for _ in 0..c {
            for i in 0..h {
                let src = (i as i64 + ph as i64 + dy) as i32;
                rows.extend(std::iter::repeat_n(src, wp));
            }
        }
    }
    let rows = Tensor::<B, 4, Int>::from_data(TensorData::new(rows, [n, c, h, wp]), &device);
    let y = padded.gather(2, rows);
    // Columns: out[n, c, :, j] = y[n, c, :, j + pw + dx_n].
    let mut cols = Vec::with_capacity(n * c * h * w);
    for &(_, dx) in &shifts {
        for _ in 0..c * h {
            cols.extend((0..w).map(|j| (j as i64 + pw as i64 + dx) as i32));
        }
    }
    let cols = Tensor::<B, 4, Int>::from_data(TensorData::new(cols, [n, c, h, w]), &device);
    y.gather(3, cols)
}

/// Zeroes one rectangle of half the image's height and width per image, centred at a uniform
/// position (clipped at the borders).
pub fn cutout<B: Backend>(x: Tensor<B, 4>, rng: &mut ChaCha8Rng) -> Tensor<B, 4> {
    let [n, _, h, w] = x.dims();
    let (ch, cw) = (
        (h as f64 * CUTOUT_RATIO + 0.5) as usize,
        (w as f64 * CUTOUT_RATIO + 0.5) as usize,
    );
    let mut mask = vec![1f32; n * h * w];
    for img in mask.chunks_mut(h * w) {
        let cy = rng.random_range(0..h) as i64 - (ch / 2) as i64;
        let cx = rng.random_range(0..w) as i64 - (cw / 2) as i64;
        for i in cy.max(0)..(cy + ch as i64).min(h as i64) {
            for j in cx.max(0)..(cx + cw as i64).min(w as i64) {
                img[i as usize * w + j as usize] = 0.0;
            }
        }
    }
    let mask = Tensor::<B, 4>::from_data(TensorData::new(mask, [n, 1, h, w]), &x.device());
    x * mask
}
