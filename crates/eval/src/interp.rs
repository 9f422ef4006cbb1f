//! Interpolations: the pictures of `RUN/eval/` (`interp.png`, 8 rows of 10 slerp steps between
//! two latents; `interp.gif`, a 4x4 grid morphing through 4 key sets of latents), and `facegan
//! interp` ([`write_morph`]), a morph through given key latents (seeds or latent files) as a
//! grid, a GIF and a latent file.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use burn::tensor::backend::Backend;
use facegan_common::images::{chw_to_rgb_images, grid, grid_from_chw, save_png, write_gif, zoom};
use facegan_model::Generator;
use facegan_rundir::networks;

use crate::generate::{generate, latents, slerp};
use crate::sample::{latent_file, read_latents};
use crate::{find_checkpoint, CheckpointChoice};

/// The key latents `facegan interp` morphs through, in order.
#[derive(Debug, Clone)]
pub enum MorphKeys {
    /// One latent per seed (the first latent `facegan sample --seed S` draws).
    Seeds(Vec<u64>),
    /// Every latent of each file, file after file (`facegan project` writes one per face).
    Files(Vec<PathBuf>),
}

/// What `facegan interp` writes.
#[derive(Debug, Clone)]
pub struct MorphOptions {
    pub run: PathBuf,
    pub checkpoint: CheckpointChoice,
    pub keys: MorphKeys,
    /// Slerp steps from one key to the next, both ends included.
    pub steps: usize,
    /// The folder for `morph.png`, `morph.gif` and `morph.safetensors`.
    pub out: PathBuf,
}

/// Morphs through the keys: `morph.png` (a row of `steps` faces from each key to the next),
/// `morph.gif` (the same frames, 4x zoomed, through the keys and back) and
/// `morph.safetensors` (every frame's latent). Returns what was written.
pub fn write_morph<B: Backend>(opts: &MorphOptions, device: &B::Device) -> Result<String> {
    if opts.steps < 2 {
        bail!("--steps {}: at least 2 (both ends)", opts.steps);
    }
    let (info, state) = find_checkpoint(&opts.run, opts.checkpoint)?;
    let (g, _) = networks::load_sampling_generator::<B>(&info.dir, &state.config, device)?;
    let m = &state.config.model;
    let (keys, named) = match &opts.keys {
        MorphKeys::Seeds(seeds) => (
            seeds
                .iter()
                .flat_map(|&s| latents::<B>(1, m.latent, s, device))
                .collect::<Vec<f32>>(),
            format!("seeds {seeds:?}"),
        ),
        MorphKeys::Files(files) => {
            let mut z = Vec::new();
            for f in files {
                z.extend(read_latents(f, &state)?.z);
            }
            let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
            (z, names.join(", "))
        }
    };
    let count = keys.len() / m.latent;
    if count < 2 {
        bail!("interp needs at least 2 key latents; got {count} ({named})");
    }
    let key = |i: usize| &keys[i * m.latent..(i + 1) * m.latent];
    let mut z = Vec::with_capacity((count - 1) * opts.steps * m.latent);
    for i in 0..count - 1 {
        for k in 0..opts.steps {
            z.extend(slerp(
                key(i),
                key(i + 1),
                k as f32 / (opts.steps - 1) as f32,
            ));
        }
    }
    let faces = chw_to_rgb_images(&generate(&g, &z, m.latent, device), m.height, m.width);
    std::fs::create_dir_all(&opts.out)?;
    save_png(&opts.out.join("morph.png"), &grid(&faces, opts.steps))?;
    // Each pair's last frame is the next pair's first: the GIF shows it once, then returns.
    let mut frames: Vec<_> = faces
        .iter()
        .enumerate()
        .filter(|(i, _)| i % opts.steps != opts.steps - 1 || *i + 1 == faces.len())
        .map(|(_, f)| zoom(f, 4))
        .collect();
    frames.extend(frames.clone().into_iter().rev().skip(1));
    write_gif(&opts.out.join("morph.gif"), &frames, 80)?;
    let source = format!("slerp of {named}, {} steps per pair", opts.steps);
    latent_file(z, &info, &state, source).write(&opts.out.join("morph.safetensors"))?;
    Ok(format!(
        "{} (a row per pair of {count} keys, {} steps), morph.gif and morph.safetensors to {}",
        "morph.png",
        opts.steps,
        opts.out.display()
    ))
}

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
