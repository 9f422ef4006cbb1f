//! A training state as checkpoint files, and back: G, its EMA, D and both Adam states as Burn
//! bin records (full f32 precision), and `state.json`. The folders (checksums, `DONE`, rotation,
//! `best`, crash recovery), the state and the network loaders are `facegan_rundir`'s; this adds
//! what needs the trainer's [`Gan`]: encoding it, and restoring it with its optimizers.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::module::{AutodiffModule, Module};
use burn::optim::Optimizer;
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::AutodiffBackend;

use crate::config::TrainConfig;
use crate::gan::{adam, Gan};

use facegan_rundir::checkpoint::{self as layout, CheckpointFile};
pub use facegan_rundir::checkpoint::{
    checkpoints_dir, latest, latest_where, list, verify, CheckpointInfo, BEST_DIR, CHECKSUMS_FILE,
    DONE_MARKER,
};
pub use facegan_rundir::networks::{
    load_discriminator, load_generator, load_sampling_generator, EMA_FILE,
};
use facegan_rundir::networks::{load_generator_file, Rec};
pub use facegan_rundir::state::{
    best, by_epoch, kept, load_state, BestScore, EpochSums, TrainState,
};
use facegan_rundir::Disk;

/// Encodes records to the same bytes as Burn's file recorder writes (that recorder writes
/// through a buffered writer whose last error is lost on drop, so facegan writes the bytes
/// itself, checked).
type RecBytes = BinBytesRecorder<FullPrecisionSettings>;

/// The files of a checkpoint: G, its EMA, D and both optimizers as Burn bin records (full
/// precision), and `state.json`.
fn encode<B: AutodiffBackend>(gan: &Gan<B>, state: &TrainState) -> Result<Vec<(String, Vec<u8>)>> {
    let rec = RecBytes::new();
    let ctx = |what: &str| format!("cannot encode {what}");
    let mut files = vec![(
        "generator.bin".to_string(),
        rec.record(gan.g.clone().into_record(), ())
            .with_context(|| ctx("the generator"))?,
    )];
    if let Some(ema) = &gan.g_ema {
        files.push((
            format!("{EMA_FILE}.bin"),
            rec.record(ema.clone().into_record(), ())
                .with_context(|| ctx("the EMA generator"))?,
        ));
    }
    files.push((
        "discriminator.bin".into(),
        rec.record(gan.d.clone().into_record(), ())
            .with_context(|| ctx("the discriminator"))?,
    ));
    files.push((
        "optim_g.bin".into(),
        rec.record(gan.opt_g.to_record(), ())
            .with_context(|| ctx("the G optimizer"))?,
    ));
    files.push((
        "optim_d.bin".into(),
        rec.record(gan.opt_d.to_record(), ())
            .with_context(|| ctx("the D optimizer"))?,
    ));
    files.push((
        "state.json".into(),
        serde_json::to_vec_pretty(state).context("cannot encode the training state")?,
    ));
    Ok(files)
}

fn write_folder<B: AutodiffBackend>(
    dir: &Path,
    gan: &Gan<B>,
    state: &TrainState,
    disk: &mut Disk,
) -> Result<()> {
    let files = encode(gan, state)?;
    let refs: Vec<CheckpointFile> = files
        .iter()
        .map(|(name, bytes)| CheckpointFile { name, bytes })
        .collect();
    layout::write(dir, &refs, disk)
}

/// Saves the full training state as `checkpoints/ckpt_<step>/`, then keeps the newest `keep`
/// checkpoints. A failed write is an error and leaves the earlier checkpoints untouched.
pub fn save<B: AutodiffBackend>(
    run: &Path,
    gan: &Gan<B>,
    state: &TrainState,
    keep: usize,
) -> Result<PathBuf> {
    save_to(run, gan, state, keep, &mut Disk::real())
}

/// [`save`] through a given [`Disk`] (tests make one of its calls fail).
pub fn save_to<B: AutodiffBackend>(
    run: &Path,
    gan: &Gan<B>,
    state: &TrainState,
    keep: usize,
    disk: &mut Disk,
) -> Result<PathBuf> {
    let dir = layout::numbered_dir(run, state.step);
    write_folder(&dir, gan, state, disk)?;
    layout::rotate(run, keep)?;
    Ok(dir)
}

/// Saves the full training state as the run's best checkpoint (`checkpoints/best/`), replacing
/// the previous best only once the new one is complete.
pub fn save_best<B: AutodiffBackend>(
    run: &Path,
    gan: &Gan<B>,
    state: &TrainState,
) -> Result<PathBuf> {
    save_best_to(run, gan, state, &mut Disk::real())
}

/// [`save_best`] through a given [`Disk`] (tests make one of its calls fail).
pub fn save_best_to<B: AutodiffBackend>(
    run: &Path,
    gan: &Gan<B>,
    state: &TrainState,
    disk: &mut Disk,
) -> Result<PathBuf> {
    let dir = layout::best_dir(run);
    write_folder(&dir, gan, state, disk)?;
    Ok(dir)
}

/// Saves the full training state as the checkpoint kept at `images` images shown
/// (`checkpoints/images_<images>/`, never rotated out; `train --keep-at`).
pub fn save_kept<B: AutodiffBackend>(
    run: &Path,
    gan: &Gan<B>,
    state: &TrainState,
    images: u64,
) -> Result<PathBuf> {
    let dir = layout::kept_dir(run, images);
    write_folder(&dir, gan, state, &mut Disk::real())?;
    Ok(dir)
}

/// A new run's GAN from another run's checkpoint (`--init-from`): its G, D and G's EMA (G
/// itself when the source kept none), fresh optimizers, `cfg`'s training settings. The caller
/// has checked that the source's model is `cfg`'s.
pub fn load_networks_fresh_optimizers<B: AutodiffBackend>(
    dir: &Path,
    cfg: &TrainConfig,
    device: &B::Device,
) -> Result<Gan<B>> {
    // As a new run does, so the backend's random draws start from the run's seed.
    B::seed(device, cfg.seed);
    let g = load_generator::<B>(dir, cfg, device)?;
    let d = load_discriminator::<B>(dir, cfg, device)?;
    let g_ema = if cfg.ema_beta <= 0.0 {
        None
    } else if dir.join(format!("{EMA_FILE}.bin")).is_file() {
        Some(load_generator_file::<B::InnerBackend>(
            dir, EMA_FILE, cfg, device,
        )?)
    } else {
        Some(g.valid())
    };
    Ok(Gan::from_parts(g, d, adam(cfg), adam(cfg), g_ema, cfg))
}

/// Restores networks and optimizers for resuming.
pub fn load_gan<B: AutodiffBackend>(
    dir: &Path,
    cfg: &TrainConfig,
    device: &B::Device,
) -> Result<Gan<B>> {
    let rec = Rec::new();
    let g = load_generator::<B>(dir, cfg, device)?;
    let d = load_discriminator::<B>(dir, cfg, device)?;
    let opt_g = adam(cfg).load_record(
        rec.load(dir.join("optim_g"), device)
            .with_context(|| format!("{}: cannot load the G optimizer", dir.display()))?,
    );
    let opt_d = adam(cfg).load_record(
        rec.load(dir.join("optim_d"), device)
            .with_context(|| format!("{}: cannot load the D optimizer", dir.display()))?,
    );
    let g_ema = if cfg.ema_beta > 0.0 {
        Some(load_generator_file::<B::InnerBackend>(
            dir, EMA_FILE, cfg, device,
        )?)
    } else {
        None
    };
    Ok(Gan::from_parts(g, d, opt_g, opt_d, g_ema, cfg))
}
