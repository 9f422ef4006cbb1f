//! The training loop: open the shard, create or resume the run directory, and train epoch by
//! epoch, writing metrics, sample grids, plots and checkpoints as it goes.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::Tensor;
use facegan_shard::Shard;

use crate::artifacts::{self, EpochMetrics};
use crate::checkpoint::{self, BestScore, EpochSums, TrainState};
use crate::config::TrainConfig;
use crate::data::{batches_per_epoch, epoch_order, train_indices, Prefetcher};
use crate::gan::{noise, upload_images, Gan};
use crate::quality::{self, ProbeSchedule, QualityPoint, QualityProbe};
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
    /// `--batch` and `--seed` as given on the command line: a resumed run keeps its own, so
    /// a different value is refused rather than ignored.
    pub asked_batch: Option<usize>,
    pub asked_seed: Option<u64>,
    /// Overrides the epoch count of a resumed run (to extend it).
    pub epochs_override: Option<usize>,
    /// Overrides the wall-time budget in minutes (`--minutes`; extends a resumed run).
    pub minutes_override: Option<f64>,
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
    /// Ctrl-C, `max_steps` or the `--minutes` budget: a checkpoint was written; rerun (with a
    /// larger budget) to continue.
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

/// Removes the half-written checkpoint folders (`checkpoints/.tmp-*`) of processes that died
/// mid-save. Called with the run's lock held, so no live process is writing one.
fn remove_stale_checkpoint_temps(run: &Path) {
    for e in std::fs::read_dir(checkpoint::checkpoints_dir(run))
        .into_iter()
        .flatten()
        .flatten()
    {
        if e.file_name().to_string_lossy().starts_with(".tmp-") {
            match std::fs::remove_dir_all(e.path()) {
                Ok(()) => eprintln!(
                    "removed {}, left by a run that stopped mid-checkpoint",
                    e.path().display()
                ),
                Err(err) => eprintln!("warning: {}: cannot remove: {err}", e.path().display()),
            }
        }
    }
}

/// Removes what a previous facegan run left in `run` (for `--new`, or a run directory without a
/// finished checkpoint): only the files and folders facegan writes, so anything else a user
/// keeps there survives.
fn clear_run(run: &Path) -> Result<()> {
    let remove_dir = |p: &Path| {
        std::fs::remove_dir_all(p).with_context(|| format!("{}: cannot remove", p.display()))
    };
    let ckpts = checkpoint::checkpoints_dir(run);
    for e in std::fs::read_dir(&ckpts).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("ckpt_") || name.starts_with(".tmp-") || name == checkpoint::BEST_DIR {
            remove_dir(&e.path())?;
        }
    }
    let samples = run.join("samples");
    for e in std::fs::read_dir(&samples).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("epoch_") && name.ends_with(".png") {
            let _ = std::fs::remove_file(e.path());
        }
    }
    // Folders facegan made go too, when nothing else is in them.
    let _ = std::fs::remove_dir(&ckpts);
    let _ = std::fs::remove_dir(&samples);
    for name in [
        "metrics.csv",
        "train.log",
        "progress.gif",
        "loss.png",
        "config.toml",
        "quality.csv",
        "quality.png",
    ] {
        let _ = std::fs::remove_file(run.join(name));
    }
    Ok(())
}

/// An exclusive lock on a run directory (`RUN/.lock`), held while this value lives; the OS
/// releases it when the process dies, so a killed run never leaves the directory locked.
pub struct RunLock {
    _file: std::fs::File,
}

impl RunLock {
    pub fn acquire(run: &Path) -> Result<RunLock> {
        std::fs::create_dir_all(run)
            .with_context(|| format!("{}: cannot create the run directory", run.display()))?;
        let path = run.join(".lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("{}: cannot open", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(RunLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => bail!(
                "{}: another facegan process is training this run (it holds {}); wait for it or use another --run",
                run.display(),
                path.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("{}: cannot lock", path.display()))
            }
        }
    }
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
    let data = facegan_model::generator::generate_batched(
        &g,
        fixed,
        gan.cfg.model.latent,
        GRID_SIZE,
        device,
    );
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
    // The payload checksum (one pass over the mapped pixels): flipped pixels are refused
    // instead of trained on.
    shard.verify()?;
    let run = &opts.run;

    // Resume or start: everything is checked before anything in the run directory is touched.
    let latest = if opts.new {
        None
    } else {
        checkpoint::latest(run)?
    };
    let resumed = match &latest {
        Some(ckpt) => {
            let state = checkpoint::load_state(&ckpt.dir)?;
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
            let asked = [
                (
                    "--batch",
                    opts.asked_batch.map(|b| b as u64),
                    state.config.batch as u64,
                ),
                ("--seed", opts.asked_seed, state.config.seed),
            ];
            for (flag, asked, has) in asked {
                if let Some(v) = asked.filter(|&v| v != has) {
                    bail!(
                        "{}: this run trains with {flag} {has}, so {flag} {v} would change it mid-run; \
                         pass --new to start over with {flag} {v}, or use another --run",
                        run.display()
                    );
                }
            }
            Some(state)
        }
        None => None,
    };
    // The run's own config when resuming, else the one asked for; then the overrides.
    let mut cfg = match &resumed {
        Some(state) => state.config.clone(),
        None => opts.config.clone(),
    };
    if let Some(e) = opts.epochs_override {
        cfg.epochs = e;
    }
    if let Some(m) = opts.minutes_override {
        cfg.minutes = Some(m);
    }
    cfg.validate()?;
    check_shard_matches(&shard, &cfg)?;
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
    let _lock = RunLock::acquire(run)?;
    remove_stale_checkpoint_temps(run);
    let (mut gan, mut state, resumed_from) = match (latest, resumed) {
        (Some(ckpt), Some(mut state)) => {
            state.config = cfg.clone();
            let gan = checkpoint::load_gan::<B>(&ckpt.dir, &state.config, device)?;
            (gan, state, Some(ckpt.dir))
        }
        _ => {
            clear_run(run)?;
            let gan = Gan::<B>::new(&cfg, device);
            let state = TrainState {
                tool_version: TOOL_VERSION.into(),
                epoch: 0,
                batch_in_epoch: 0,
                step: 0,
                images_seen: 0,
                epoch_sums: EpochSums::default(),
                fixed_noise: fixed_noise::<B>(&cfg, device),
                config: cfg.clone(),
                data_path: String::new(),
                train_seconds: 0.0,
                next_probe_at: 0,
                best: None,
            };
            (gan, state, None)
        }
    };
    state.data_path = std::fs::canonicalize(&opts.data)
        .unwrap_or_else(|_| opts.data.clone())
        .display()
        .to_string();
    std::fs::create_dir_all(run.join("samples"))
        .with_context(|| format!("{}: cannot create", run.display()))?;
    artifacts::write_atomic(&run.join("config.toml"), cfg.to_toml().as_bytes())?;

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

    // The live quality curve (see `quality`): rows after the checkpoint are recomputed.
    let quality_path = run.join("quality.csv");
    let mut curve: Vec<QualityPoint> = quality::read_quality(&quality_path)?
        .into_iter()
        .filter(|q| q.images_seen <= state.images_seen)
        .collect();
    let probe = (cfg.eval_every > 0)
        .then(|| {
            QualityProbe::new::<B::InnerBackend>(&shard, cfg.model.latent, cfg.eval_images, device)
        })
        .flatten();
    let mut schedule = ProbeSchedule::new(cfg.eval_every);
    // A crash after a best checkpoint but before the next regular one leaves the better score
    // only in `checkpoints/best/`: start from whichever is lower.
    let saved_best = checkpoint::best(run).and_then(|b| checkpoint::load_state(&b.dir).ok()?.best);
    if let Some(saved) = saved_best {
        if state.best.as_ref().is_none_or(|b| saved.swd < b.swd) {
            state.best = Some(saved);
        }
    }
    if let Some(p) = &probe {
        let f = p.floor();
        print_and_log(
            run,
            &format!(
                "quality probe: SWD of the sampling generator vs {} holdout images every {} images; floor (train vs holdout) {:.1}, finest level {:.1}",
                p.images(),
                cfg.eval_every,
                f.average,
                f.per_level[0]
            ),
        );
    }
    let session_clock = Instant::now();
    let seconds_before = state.train_seconds;
    let budget_s = cfg.minutes.map(|m| m * 60.0);

    let (h, w) = (cfg.model.height, cfg.model.width);
    let mut outcome = TrainOutcome::Completed;
    let mut budget_hit = budget_s.is_some_and(|b| state.train_seconds >= b);
    if budget_hit && state.epoch < cfg.epochs {
        print_and_log(
            run,
            &format!(
                "the time budget of {} min is spent ({:.1} min trained); rerun with a larger --minutes to continue",
                cfg.minutes.unwrap_or_default(),
                state.train_seconds / 60.0
            ),
        );
        return Ok(TrainSummary {
            outcome: TrainOutcome::Stopped { step: state.step },
            state,
            metrics,
            resumed_from,
        });
    }
    'epochs: while state.epoch < cfg.epochs {
        let epoch = state.epoch;
        let order = epoch_order(&train_ids, cfg.seed, epoch);
        let pb = progress_bar(
            opts.progress,
            nb,
            state.batch_in_epoch,
            epoch,
            of_total(&cfg),
        );
        let mut pending: Vec<Tensor<B::InnerBackend, 1>> = Vec::new();
        let clock = Instant::now();
        for batch in Prefetcher::start(shard.clone(), order, cfg.batch, state.batch_in_epoch) {
            let mut real = upload_images::<B>(batch.pixels, cfg.batch, h, w, device);
            if opts.inject_nan_at_step == Some(state.step) {
                real = real.mul_scalar(f32::NAN);
            }
            // By steps only (wall time would make runs irreproducible): with a time budget
            // and no epoch count, instance noise is not annealed.
            gan.progress = state.step as f64 / (cfg.epochs * nb).max(1) as f64;
            pending.push(gan.step(real, state.step));
            state.step += 1;
            state.images_seen += cfg.batch as u64;
            state.batch_in_epoch = batch.index + 1;
            state.train_seconds = seconds_before + session_clock.elapsed().as_secs_f64();
            budget_hit = budget_s.is_some_and(|b| state.train_seconds >= b);
            let last = state.batch_in_epoch == nb;
            let stop = STOP.load(Ordering::SeqCst)
                || opts.max_steps.is_some_and(|m| state.step >= m)
                || budget_hit;
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
                    "D {:.3} G {:.3}{}",
                    e.loss_d / e.steps as f64,
                    e.loss_g / e.steps as f64,
                    curve
                        .last()
                        .map_or(String::new(), |q| format!(" SWD {:.1}", q.swd))
                ));
            }
            if let Some(p) = &probe {
                // Always at a stop and on the run's last batch, so the last point precedes the
                // last checkpoint (and any best score is in its state).
                let final_batch = last && epoch + 1 == cfg.epochs;
                if stop || final_batch || schedule.due(state.images_seen, state.next_probe_at) {
                    let q = run_probe(run, p, &gan, &mut state, &mut curve, &quality_path, device)?;
                    schedule.done(q.probe_seconds);
                    if opts.progress {
                        pb.println(probe_line(&q, &state));
                    } else {
                        println!("{}", probe_line(&q, &state));
                    }
                }
            }
            if stop && !last {
                state.epoch_sums.seconds += clock.elapsed().as_secs_f64();
                pb.abandon();
                let dir = checkpoint::save(run, &gan, &state, cfg.keep_checkpoints)?;
                print_and_log(
                    run,
                    &format!(
                        "{} at epoch {}, step {}; checkpoint {}; rerun the same command{} to resume",
                        if budget_hit { "time budget reached" } else { "stopped" },
                        epoch + 1,
                        state.step,
                        dir.display(),
                        if budget_hit { " with a larger --minutes" } else { "" }
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
            swd: curve.last().map(|q| q.swd),
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
        if !curve.is_empty() {
            artifacts::write_quality_plot(&run.join("quality.png"), &curve)?;
        }
        print_and_log(
            run,
            &format!(
                "epoch {}{}  {:.1} s  G loss {:.4}  D loss {:.4}  D(x) {:.3}  D(G(z)) {:.3}  {:.1} img/s",
                epoch + 1,
                of_total(&cfg),
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
        let stop = STOP.load(Ordering::SeqCst)
            || opts.max_steps.is_some_and(|m| state.step >= m)
            || budget_hit;
        if (epoch + 1) % cfg.checkpoint_every == 0 || state.epoch == cfg.epochs || stop {
            checkpoint::save(run, &gan, &state, cfg.keep_checkpoints)?;
        }
        if stop && state.epoch < cfg.epochs {
            print_and_log(
                run,
                &format!(
                    "{} after epoch {}; rerun the same command{} to resume",
                    if budget_hit {
                        "time budget reached"
                    } else {
                        "stopped"
                    },
                    epoch + 1,
                    if budget_hit {
                        " with a larger --minutes"
                    } else {
                        ""
                    }
                ),
            );
            outcome = TrainOutcome::Stopped { step: state.step };
            break;
        }
    }
    if !curve.is_empty() {
        artifacts::write_quality_plot(&run.join("quality.png"), &curve)?;
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

/// Scores the sampling generator, appends the point to `quality.csv` and `train.log`, and keeps
/// `checkpoints/best/` when the score is the run's best so far. Returns the new point.
fn run_probe<B: AutodiffBackend>(
    run: &Path,
    probe: &QualityProbe,
    gan: &Gan<B>,
    state: &mut TrainState,
    curve: &mut Vec<QualityPoint>,
    quality_path: &Path,
    device: &B::Device,
) -> Result<QualityPoint> {
    let g = gan.generator_eval();
    let (score, seconds) = probe.score::<B::InnerBackend>(&g, device);
    let floor = probe.floor();
    let every = state.config.eval_every.max(1);
    state.next_probe_at = (state.images_seen / every + 1) * every;
    let point = QualityPoint {
        step: state.step,
        images_seen: state.images_seen,
        train_minutes: state.train_seconds / 60.0,
        swd: score.average,
        swd_finest: score.per_level[0],
        floor: floor.average,
        floor_finest: floor.per_level[0],
        probe_seconds: seconds,
    };
    curve.retain(|q| q.images_seen != point.images_seen);
    curve.push(point.clone());
    quality::write_quality(quality_path, curve)?;
    let better = state.best.as_ref().is_none_or(|b| point.swd < b.swd);
    if better {
        state.best = Some(BestScore {
            swd: point.swd,
            step: point.step,
            images_seen: point.images_seen,
        });
        checkpoint::save_best(run, gan, state)?;
    }
    artifacts::log_line(run, &probe_line(&point, state));
    Ok(point)
}

fn probe_line(q: &QualityPoint, state: &TrainState) -> String {
    let best = state.best.as_ref();
    format!(
        "quality at {} images ({:.1} min): SWD {:.1} (finest {:.1}), {:.2}x the floor {:.1}{}",
        q.images_seen,
        q.train_minutes,
        q.swd,
        q.swd_finest,
        q.swd / q.floor.max(1e-9),
        q.floor,
        if best.is_some_and(|b| b.images_seen == q.images_seen) {
            "  [best so far, saved to checkpoints/best]".to_string()
        } else {
            best.map_or(String::new(), |b| format!("  (best {:.1})", b.swd))
        }
    )
}

/// "/EPOCHS" after an epoch number, or the time budget when time, not epochs, ends the run.
fn of_total(cfg: &TrainConfig) -> String {
    match cfg.minutes {
        Some(m) if cfg.epochs >= TIME_BOUND_EPOCHS => format!(" ({m} min budget)"),
        _ => format!("/{}", cfg.epochs),
    }
}

/// The epoch count `--minutes` without `--epochs` sets: time ends the run, not epochs.
pub const TIME_BOUND_EPOCHS: usize = 1_000_000;

fn progress_bar(
    enabled: bool,
    nb: usize,
    start: usize,
    epoch: usize,
    of_total: String,
) -> indicatif::ProgressBar {
    if !enabled {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(nb as u64);
    pb.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "epoch {}{of_total} [{{bar:30}}] {{pos}}/{{len}} ETA {{eta}} {{msg}}",
            epoch + 1
        ))
        .expect("valid template")
        .progress_chars("=> "),
    );
    pb.set_position(start as u64);
    pb
}
