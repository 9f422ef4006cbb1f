//! `facegan sample`: generated faces from a checkpoint, as one grid PNG or one PNG per face.

use std::path::Path;

use anyhow::Result;
use burn::tensor::backend::Backend;
use facegan_common::images::{chw_to_rgb_images, grid, save_png};
use facegan_rundir::networks;

use crate::generate::{generate, latents};
use crate::{find_checkpoint, CheckpointChoice};

/// Writes `n` faces from noise seeded by `seed`; returns what was written.
pub fn write_samples<B: Backend>(
    run: &Path,
    choice: CheckpointChoice,
    n: usize,
    seed: u64,
    out: &Path,
    as_dir: bool,
    device: &B::Device,
) -> Result<String> {
    let (info, state) = find_checkpoint(run, choice)?;
    let (g, _) = networks::load_sampling_generator::<B>(&info.dir, &state.config, device)?;
    let m = &state.config.model;
    let z = latents::<B>(n, m.latent, seed, device);
    let faces = chw_to_rgb_images(&generate(&g, &z, m.latent, device), m.height, m.width);
    if as_dir {
        for (i, f) in faces.iter().enumerate() {
            save_png(&out.join(format!("face_{i:05}.png")), f)?;
        }
        Ok(format!("{} faces to {}", faces.len(), out.display()))
    } else {
        let cols = (n as f64).sqrt().ceil() as usize;
        save_png(out, &grid(&faces, cols))?;
        Ok(format!(
            "a grid of {} faces to {}",
            faces.len(),
            out.display()
        ))
    }
}
