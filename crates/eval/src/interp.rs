//! The interpolation pictures of `RUN/eval/`: `interp.png` (8 rows of 10 slerp steps between
//! two latents) and `interp.gif` (a 4x4 grid morphing through 4 key sets of latents).

use std::path::Path;

use anyhow::Result;
use burn::tensor::backend::Backend;
use facegan_common::images::{grid_from_chw, save_png, write_gif};
use facegan_model::Generator;

use crate::generate::{generate, latents, slerp};

/// Writes `interp.png` and `interp.gif` into `out_dir`.
pub fn write_interpolations<B: Backend>(
    out_dir: &Path,
    g: &Generator<B>,
    latent: usize,
    seed: u64,
    (h, w): (usize, usize),
    device: &B::Device,
) -> Result<()> {
    let rows = slerp_rows::<B>(latent, seed, device);
    save_png(
        &out_dir.join("interp.png"),
        &grid_from_chw(&generate(g, &rows, latent, device), 80, h, w, 10),
    )?;
    let keys = latents::<B>(16 * 4, latent, seed ^ 0x61F, device);
    let frames: Vec<_> = morph_latents(&keys, latent)
        .iter()
        .map(|z| grid_from_chw(&generate(g, z, latent, device), 16, h, w, 4))
        .collect();
    write_gif(&out_dir.join("interp.gif"), &frames, 120)?;
    Ok(())
}

/// 8 rows of 10 latents: each row slerps between its own two seeded end points.
fn slerp_rows<B: Backend>(latent: usize, seed: u64, device: &B::Device) -> Vec<f32> {
    let ends = latents::<B>(16, latent, seed ^ 0x1E, device);
    let mut z = Vec::new();
    for pair in ends.chunks_exact(2 * latent).take(8) {
        let (a, b) = pair.split_at(latent);
        for k in 0..10 {
            z.extend(slerp(a, b, k as f32 / 9.0));
        }
    }
    z
}

/// The GIF's 32 frames of 16 latents: 8 slerp steps from each key set to the next, cycling
/// back to the first.
fn morph_latents(keys: &[f32], latent: usize) -> Vec<Vec<f32>> {
    let cell = |key: usize, c: usize| &keys[(key * 16 + c) * latent..(key * 16 + c + 1) * latent];
    let mut frames = Vec::new();
    for key in 0..4 {
        let next = (key + 1) % 4;
        for k in 0..8 {
            let t = k as f32 / 8.0;
            frames.push(
                (0..16)
                    .flat_map(|c| slerp(cell(key, c), cell(next, c), t))
                    .collect(),
            );
        }
    }
    frames
}
