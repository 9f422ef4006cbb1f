//! `facegan sample`: generated faces from a checkpoint, as one grid PNG or one PNG per face,
//! from seeded latents or a latent file (`--latents`, see `facegan_latents`), optionally with
//! the truncation trick (`--truncation PSI`), or a sweep grid of it; `--save-latents` writes
//! the latents that drew the faces.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use burn::tensor::backend::Backend;
use facegan_common::images::{chw_to_rgb_images, grid, save_png};
use facegan_latents::Latents;
use facegan_rundir::checkpoint::CheckpointInfo;
use facegan_rundir::{networks, TrainState};

use crate::generate::{generate, latents};
use crate::{find_checkpoint, CheckpointChoice};

/// The PSI values of [`write_truncation_sweep`], one row each: no truncation first.
pub const SWEEP_PSI: [f32; 6] = [1.0, 0.9, 0.8, 0.7, 0.5, 0.3];

/// Checks a truncation PSI: the latents are scaled toward the prior's mean by PSI in [0, 1]
/// (0: every face the mean face; 1: no truncation).
pub fn check_psi(psi: f32) -> Result<f32> {
    if !(0.0..=1.0).contains(&psi) {
        bail!("--truncation {psi}: PSI must be between 0 (every face the mean face) and 1 (no truncation)");
    }
    Ok(psi)
}

/// The truncation trick on latents drawn from facegan's prior, N(0, I): each latent pulled
/// toward the prior's mean (0) by `psi`, `z' = psi * z` (StyleGAN's form, applied to z since
/// these generators have no mapping network; not BigGAN's resampling beyond a threshold).
pub fn truncate(z: &mut [f32], psi: f32) {
    z.iter_mut().for_each(|v| *v *= psi);
}

/// What `facegan sample` writes.
#[derive(Debug, Clone)]
pub struct SampleOptions {
    pub run: PathBuf,
    pub checkpoint: CheckpointChoice,
    pub n: usize,
    pub seed: u64,
    /// The truncation PSI (see [`truncate`]), if any.
    pub truncation: Option<f32>,
    pub out: PathBuf,
    /// One PNG per face in the folder `out`, instead of a grid.
    pub as_dir: bool,
    /// Draw from these latents (a latent file) instead of `n` seeded ones.
    pub latents: Option<PathBuf>,
    /// Write the latents that drew the faces (after truncation) to this latent file.
    pub save_latents: Option<PathBuf>,
}

/// The latents of a latent file, refused unless they fit `state`'s generator (latent size and
/// model).
pub fn read_latents(path: &Path, state: &TrainState) -> Result<Latents> {
    let l = Latents::read(path)?;
    let model = &state.config.model;
    l.check_fits(path, model.latent, |toml_text| {
        match toml::from_str::<facegan_model::ModelConfig>(toml_text) {
            Ok(m) => facegan_rundir::config::model_differences(&m, model),
            Err(e) => vec![format!("its model does not parse ({e})")],
        }
    })?;
    Ok(l)
}

/// `z` as a latent file for `state`'s generator at checkpoint `info`, made by `source`.
pub fn latent_file(
    z: Vec<f32>,
    info: &CheckpointInfo,
    state: &TrainState,
    source: String,
) -> Latents {
    Latents {
        z,
        latent: state.config.model.latent,
        model: toml::to_string(&state.config.model).unwrap_or_default(),
        run: info
            .dir
            .parent()
            .and_then(Path::parent)
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        checkpoint: info.dir.display().to_string(),
        source,
    }
}

/// Writes `n` faces from noise seeded by `seed`, truncated when asked; returns what was
/// written.
pub fn write_samples<B: Backend>(opts: &SampleOptions, device: &B::Device) -> Result<String> {
    let psi = opts.truncation.map(check_psi).transpose()?;
    let (info, state) = find_checkpoint(&opts.run, opts.checkpoint)?;
    let (g, _) = networks::load_sampling_generator::<B>(&info.dir, &state.config, device)?;
    let m = &state.config.model;
    let (mut z, mut source) = match &opts.latents {
        Some(path) => {
            let l = read_latents(path, &state)?;
            // Seeded latents stay seeded (they suit any generator of their size).
            let source = if l.drawn_from_a_seed() {
                l.source
            } else {
                format!("{} ({})", path.display(), l.source)
            };
            (l.z, source)
        }
        None => (
            latents::<B>(opts.n, m.latent, opts.seed, device),
            format!("seed {}", opts.seed),
        ),
    };
    if let Some(psi) = psi {
        truncate(&mut z, psi);
        source.push_str(&format!(", truncation {psi}"));
    }
    let n = z.len() / m.latent;
    let faces = chw_to_rgb_images(&generate(&g, &z, m.latent, device), m.height, m.width);
    if let Some(path) = &opts.save_latents {
        latent_file(z, &info, &state, source).write(path)?;
    }
    let out = &opts.out;
    if opts.as_dir {
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

/// Writes a grid with one row per PSI of [`SWEEP_PSI`], the same `n` latents (seeded by
/// `seed`) in every row, so a row shows what that truncation does to the same faces.
pub fn write_truncation_sweep<B: Backend>(
    run: &Path,
    choice: CheckpointChoice,
    n: usize,
    seed: u64,
    out: &Path,
    device: &B::Device,
) -> Result<String> {
    let (info, state) = find_checkpoint(run, choice)?;
    let (g, _) = networks::load_sampling_generator::<B>(&info.dir, &state.config, device)?;
    let m = &state.config.model;
    let z = latents::<B>(n, m.latent, seed, device);
    let mut faces = Vec::with_capacity(n * SWEEP_PSI.len());
    for psi in SWEEP_PSI {
        let mut zt = z.clone();
        truncate(&mut zt, psi);
        faces.extend(chw_to_rgb_images(
            &generate(&g, &zt, m.latent, device),
            m.height,
            m.width,
        ));
    }
    save_png(out, &grid(&faces, n))?;
    Ok(format!(
        "a truncation sweep to {}: rows PSI {}, {n} faces each",
        out.display(),
        SWEEP_PSI.map(|p| p.to_string()).join(", ")
    ))
}
