//! The training loop: open the shard, create or resume the run directory, and train epoch by
//! epoch, writing metrics, sample grids, plots and checkpoints as it goes.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData};
use facegan_shard::Shard;

use crate::artifacts::{self, EpochMetrics};
use crate::checkpoint::{self, EpochSums, TrainState};
use crate::config::TrainConfig;
use crate::data::{batches_per_epoch, epoch_order, train_indices, Prefetcher};
use crate::gan::{noise, upload_images, Gan};
use crate::{STOP, TOOL_VERSION};

/// Images in every sample grid (8x8).
pub const GRID_SIZE: usize = 64;

/// How `facegan train` was called.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub data: PathBuf,
    pub run: PathBuf,
    /// The config to start a new run with.
    pub config: TrainConfig,
    /// The user chose the preset or config explicitly (so a resumed run must match it).
    pub config_explicit: bool,
    /// Overrides the epoch count of a resumed run (to extend it).
    pub epochs_override: Option<usize>,
    /// Start over even if the run directory has checkpoints.
    pub new: bool,
    pub progress: bool,
    /// Stop (with a checkpoint) after this many global steps: used by tests and benchmarks.
    pub max_steps: Option<u64>,
    /// Testing hook: poison the real batch of this global step with NaN.
    pub inject_nan_at_step: Option<u64>,
}

/// How a call to [`train`] ended.
#[derive(Debug, Clone, PartialEq)]
pub enum TrainOutcome {
    /// All epochs done.
    Completed,
    /// Ctrl-C or `max_steps`: a checkpoint was written; rerun to continue.
    Stopped { step: u64 },
}

#[derive(Debug, Clone)]
pub struct TrainSummary {
    pub outcome: TrainOutcome,
    pub state: TrainState,
    pub metrics: Vec<EpochMetrics>,
    pub resumed_from: Option<PathBuf>,
}

fn print_and_log(run: &Path, line: &str) {
    println!("{line}");
    artifacts::log_line(run, line);
}

/// Refuses a shard whose image size differs from the model's.
pub fn check_shard_matches(shard: &Shard, cfg: &TrainConfig) -> Result<()> {
    let (h, w) = (shard.height(), shard.width());
    if (h, w) != (cfg.model.height, cfg.model.width) {
        bail!(
            "{}: shard images are {h}x{w} but preset {:?} needs {}x{}; rerun `facegan preprocess --size {}x{}` or pick a preset of that size",
            shard.path().display(),
            cfg.preset,
            cfg.model.height,
            cfg.model.width,
            cfg.model.height,
            cfg.model.width
        );
    }
    Ok(())
}

/// Removes what a previous run left (for `--new`).
fn clear_run(run: &Path) -> Result<()> {
    for name in ["checkpoints", "samples"] {
        let p = run.join(name);
        if p.exists() {
            std::fs::remove_dir_all(&p)
                .with_context(|| format!("{}: cannot remove", p.display()))?;
        }
    }
    for name in [
        "metrics.csv",
        "train.log",
        "progress.gif",
        "loss.png",
        "config.toml",
    ] {
        let _ = std::fs::remove_file(run.join(name));
    }
    Ok(())
}

fn fixed_noise<B: AutodiffBackend>(cfg: &TrainConfig, device: &B::Device) -> Vec<f32> {
    B::seed(
        device,
        cfg.seed ^ 0xF1_0ED_u64.wrapping_mul(0x9E37_79B9_7F4A_7C15),
    );
    noise::<B::InnerBackend>(GRID_SIZE, cfg.model.latent, device)
        .into_data()
        .to_vec::<f32>()
        .expect("f32 noise")
}

/// Renders the 8x8 grid of the fixed noise with the generator in eval mode.
pub fn sample_grid<B: AutodiffBackend>(
    gan: &Gan<B>,
    fixed: &[f32],
    device: &B::Device,
) -> image::RgbImage {
    let g = gan.generator_eval();
    let latent = gan.cfg.model.latent;
    let z = Tensor::<B::InnerBackend, 2>::from_data(
        TensorData::new(fixed.to_vec(), [GRID_SIZE, latent]),
        device,
    );
    let data = g
        .forward(z)
        .into_data()
        .to_vec::<f32>()
        .expect("f32 images");
    artifacts::grid_from_chw(
        &data,
        GRID_SIZE,
        gan.cfg.model.height,
        gan.cfg.model.width,
        8,
    )
}

/// Trains on backend `B` until the configured epochs are done, Ctrl-C, or `max_steps`.
pub fn train<B: AutodiffBackend>(opts: &TrainOptions, device: &B::Device) -> Result<TrainSummary> {
    let shard = Arc::new(Shard::open(&opts.data)?);
    let run = &opts.run;

    // Resume or start.
    let latest = if opts.new {
        None
    } else {
        checkpoint::latest(run)?
    };
    let (mut gan, mut state, resumed_from) = match latest {
        Some(ckpt) => {
            let mut state = checkpoint::load_state(&ckpt.dir)?;
            if opts.config_explicit
                && (state.config.preset != opts.config.preset
                    || state.config.model != opts.config.model)
            {
                bail!(
                    "{}: this run was trained with preset {:?}, not {:?}; pass --new to start over or use another --run",
                    run.display(),
                    state.config.preset,
                    opts.config.preset
                );
            }
            if let Some(e) = opts.epochs_override {
                state.config.epochs = e;
            }
            state.config.validate()?;
            let gan = checkpoint::load_gan::<B>(&ckpt.dir, &state.config, device)?;
            (gan, state, Some(ckpt.dir))
        }
        None => {
            if run.exists() {
                clear_run(run)?;
            }
            let mut cfg = opts.config.clone();
            if let Some(e) = opts.epochs_override {
                cfg.epochs = e;
            }
            cfg.validate()?;
            let gan = Gan::<B>::new(&cfg, device);
            let state = TrainState {
                tool_version: TOOL_VERSION.into(),
                epoch: 0,
                batch_in_epoch: 0,
                step: 0,
                images_seen: 0,
                epoch_sums: EpochSums::default(),
                fixed_noise: fixed_noise::<B>(&cfg, device),
                config: cfg,
                data_path: String::new(),
            };
            (gan, state, None)
        }
    };
    state.data_path = std::fs::canonicalize(&opts.data)
        .unwrap_or_else(|_| opts.data.clone())
        .display()
        .to_string();
    let cfg = state.config.clone();
    check_shard_matches(&shard, &cfg)?;
    std::fs::create_dir_all(run.join("samples"))
        .with_context(|| format!("{}: cannot create", run.display()))?;
    artifacts::write_atomic(&run.join("config.toml"), cfg.to_toml().as_bytes())?;

    let train_ids = train_indices(&shard);
    let nb = batches_per_epoch(train_ids.len(), cfg.batch);
    if nb == 0 {
        bail!(
            "{}: the train split has {} images, fewer than one batch of {}",
            opts.data.display(),
            train_ids.len(),
            cfg.batch
        );
    }
    // Metrics of epochs after the checkpoint are discarded: they will be recomputed identically.
    let metrics_path = run.join("metrics.csv");
    let mut metrics: Vec<EpochMetrics> = artifacts::read_metrics(&metrics_path)?
        .into_iter()
        .filter(|m| m.epoch <= state.epoch)
        .collect();
    match &resumed_from {
        Some(dir) => print_and_log(
            run,
            &format!(
                "resuming from {} (epoch {}, batch {}/{}, step {})",
                dir.display(),
                state.epoch + 1,
                state.batch_in_epoch,
                nb,
                state.step
            ),
        ),
        None => print_and_log(
            run,
            &format!(
                "new run {}: preset {}, {} train images, {} batches of {} per epoch (last partial batch dropped), {} epochs",
                run.display(),
                cfg.preset,
                train_ids.len(),
                nb,
                cfg.batch,
                cfg.epochs
            ),
        ),
    }

    let (h, w) = (cfg.model.height, cfg.model.width);
    let mut outcome = TrainOutcome::Completed;
    'epochs: while state.epoch < cfg.epochs {
        let epoch = state.epoch;
        let order = epoch_order(&train_ids, cfg.seed, epoch);
        let pb = progress_bar(opts.progress, nb, state.batch_in_epoch, epoch, cfg.epochs);
        let mut pending: Vec<Tensor<B::InnerBackend, 1>> = Vec::new();
        let clock = Instant::now();
        for batch in Prefetcher::start(shard.clone(), order, cfg.batch, state.batch_in_epoch) {
            let mut real = upload_images::<B>(batch.pixels, cfg.batch, h, w, device);
            if opts.inject_nan_at_step == Some(state.step) {
                real = real.mul_scalar(f32::NAN);
            }
            gan.progress = state.step as f64 / (cfg.epochs * nb).max(1) as f64;
            pending.push(gan.step(real, state.step));
            state.step += 1;
            state.images_seen += cfg.batch as u64;
            state.batch_in_epoch = batch.index + 1;
            let last = state.batch_in_epoch == nb;
            let stop =
                STOP.load(Ordering::SeqCst) || opts.max_steps.is_some_and(|m| state.step >= m);
            if pending.len() >= cfg.sync_every || last || stop {
                let first_step = state.step - pending.len() as u64;
                let values = Tensor::cat(std::mem::take(&mut pending), 0)
                    .into_data()
                    .to_vec::<f32>()
                    .expect("f32 stats");
                for (i, s) in values.chunks_exact(4).enumerate() {
                    if s.iter().any(|v| !v.is_finite()) {
                        let msg = format!(
                            "non-finite loss at epoch {}, step {} (loss_d {}, loss_g {}); stopped without saving, the last good checkpoint is kept",
                            epoch + 1,
                            first_step + i as u64 + 1,
                            s[0],
                            s[1]
                        );
                        pb.abandon();
                        artifacts::log_line(run, &msg);
                        bail!(msg);
                    }
                    let e = &mut state.epoch_sums;
                    e.steps += 1;
                    e.loss_d += s[0] as f64;
                    e.loss_g += s[1] as f64;
                    e.d_real += s[2] as f64;
                    e.d_fake += s[3] as f64;
                }
                let e = &state.epoch_sums;
                pb.set_position(state.batch_in_epoch as u64);
                pb.set_message(format!(
                    "D {:.3} G {:.3}",
                    e.loss_d / e.steps as f64,
                    e.loss_g / e.steps as f64
                ));
            }
            if stop && !last {
                state.epoch_sums.seconds += clock.elapsed().as_secs_f64();
                pb.abandon();
                let dir = checkpoint::save(run, &gan, &state, cfg.keep_checkpoints)?;
                print_and_log(
                    run,
                    &format!(
                        "stopped at epoch {}, step {}; checkpoint {}; rerun the same command to resume",
                        epoch + 1,
                        state.step,
                        dir.display()
                    ),
                );
                outcome = TrainOutcome::Stopped { step: state.step };
                break 'epochs;
            }
        }
        pb.finish_and_clear();

        // End of epoch: metrics, grid, plots, checkpoint.
        let e = std::mem::take(&mut state.epoch_sums);
        let seconds = e.seconds + clock.elapsed().as_secs_f64();
        let steps = e.steps.max(1) as f64;
        let row = EpochMetrics {
            epoch: epoch + 1,
            step: state.step,
            images_seen: state.images_seen,
            loss_d: e.loss_d / steps,
            loss_g: e.loss_g / steps,
            d_real: e.d_real / steps,
            d_fake: e.d_fake / steps,
            seconds,
            img_per_s: (e.steps as f64 * cfg.batch as f64) / seconds.max(1e-9),
        };
        metrics.retain(|m| m.epoch != row.epoch);
        metrics.push(row.clone());
        artifacts::write_metrics(&metrics_path, &metrics)?;
        let grid = sample_grid(&gan, &state.fixed_noise, device);
        artifacts::save_png(
            &run.join("samples")
                .join(format!("epoch_{:04}.png", epoch + 1)),
            &grid,
        )?;
        artifacts::write_progress_gif(&run.join("samples"), &run.join("progress.gif"), 60)?;
        artifacts::write_loss_plot(&run.join("loss.png"), &metrics)?;
        print_and_log(
            run,
            &format!(
                "epoch {}/{}  {:.1} s  G loss {:.4}  D loss {:.4}  D(x) {:.3}  D(G(z)) {:.3}  {:.1} img/s",
                epoch + 1,
                cfg.epochs,
                seconds,
                row.loss_g,
                row.loss_d,
                row.d_real,
                row.d_fake,
                row.img_per_s
            ),
        );
        state.epoch += 1;
        state.batch_in_epoch = 0;
        let stop = STOP.load(Ordering::SeqCst) || opts.max_steps.is_some_and(|m| state.step >= m);
        if (epoch + 1) % cfg.checkpoint_every == 0 || state.epoch == cfg.epochs || stop {
            checkpoint::save(run, &gan, &state, cfg.keep_checkpoints)?;
        }
        if stop && state.epoch < cfg.epochs {
            print_and_log(
                run,
                &format!(
                    "stopped after epoch {}; rerun the same command to resume",
                    epoch + 1
                ),
            );
            outcome = TrainOutcome::Stopped { step: state.step };
            break;
        }
    }
    if outcome == TrainOutcome::Completed {
        print_and_log(
            run,
            &format!(
                "done: {} epochs, {} images seen",
                state.epoch, state.images_seen
            ),
        );
    }
    Ok(TrainSummary {
        outcome,
        state,
        metrics,
        resumed_from,
    })
}

fn progress_bar(
    enabled: bool,
    nb: usize,
    start: usize,
    epoch: usize,
    epochs: usize,
) -> indicatif::ProgressBar {
    if !enabled {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(nb as u64);
    pb.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "epoch {}/{epochs} [{{bar:30}}] {{pos}}/{{len}} ETA {{eta}} {{msg}}",
            epoch + 1
        ))
        .expect("valid template")
        .progress_chars("=> "),
    );
    pb.set_position(start as u64);
    pb
}
