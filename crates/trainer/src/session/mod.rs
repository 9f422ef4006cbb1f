//! One training process on one run directory ([`Session`]), the training loop read top to
//! bottom: [`Session::train_epochs`] runs epochs; an epoch runs steps, and after each step
//! syncs the stats (the non-finite-loss guard), probes quality when due and stops with a
//! checkpoint when asked to; after each epoch come its `metrics.csv` row, sample grid, plots
//! and checkpoint. [`start`] sets a session up, [`probe`] is the live quality probe;
//! `crate::run::train` drives it.

mod probe;
mod start;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Result};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData};
use facegan_common::images::{grid_from_chw, save_png};
use facegan_common::progress::{progress_bar, ProgressBar};
use facegan_shard::Shard;

use crate::artifacts;
use crate::checkpoint::{self, EpochSums, TrainState};
use crate::config::TrainConfig;
use crate::data::{epoch_order, real_images_at, Prefetcher};
use crate::gan::{upload_images, Gan};
use crate::metrics_csv::{write_metrics, EpochMetrics};
use crate::options::{TrainOptions, TrainOutcome, TrainSummary, GRID_SIZE, TIME_BOUND_EPOCHS};
use crate::parallel::{self, Watchdog};
use crate::quality::{ProbeSchedule, QualityPoint, QualityProbe};
use crate::run_dir::print_and_log;
use crate::STOP;

/// The four numbers a training step returns (device-side until synced): D's and G's losses
/// and the mean D outputs on real and generated images.
struct StepValues {
    loss_d: f32,
    loss_g: f32,
    d_real: f32,
    d_fake: f32,
}

impl StepValues {
    fn from_slice(s: &[f32]) -> Self {
        StepValues {
            loss_d: s[0],
            loss_g: s[1],
            d_real: s[2],
            d_fake: s[3],
        }
    }

    fn is_finite(&self) -> bool {
        [self.loss_d, self.loss_g, self.d_real, self.d_fake]
            .iter()
            .all(|v| v.is_finite())
    }

    fn add_to(&self, e: &mut EpochSums) {
        e.steps += 1;
        e.loss_d += self.loss_d as f64;
        e.loss_g += self.loss_g as f64;
        e.d_real += self.d_real as f64;
        e.d_fake += self.d_fake as f64;
    }
}

/// One training process on one run directory, from [`Session::start`] to [`Session::finish`].
pub struct Session<'a, B: AutodiffBackend> {
    opts: &'a TrainOptions,
    run: &'a Path,
    device: &'a B::Device,
    shard: Arc<Shard>,
    cfg: TrainConfig,
    train_ids: Vec<usize>,
    batches_per_epoch: usize,
    gan: Gan<B>,
    pub(crate) state: TrainState,
    resumed_from: Option<PathBuf>,
    metrics: Vec<EpochMetrics>,
    curve: Vec<QualityPoint>,
    probe: Option<QualityProbe>,
    schedule: ProbeSchedule,
    /// Wall time of this process, and the training seconds of earlier ones.
    clock: Instant,
    seconds_before: f64,
    budget_s: Option<f64>,
    budget_hit: bool,
    /// Fed after every step in a several-machine run (see [`crate::parallel::Watchdog`]).
    heartbeat: Option<Arc<Watchdog>>,
}

impl<B: AutodiffBackend> Session<'_, B> {
    /// Whether this session writes the run directory: always on one device, only peer 0 of a
    /// data-parallel run.
    fn leader(&self) -> bool {
        self.gan.peer.is_leader()
    }
}

impl<'a, B: AutodiffBackend> Session<'a, B> {
    /// The `--max-images` or `--max-steps` limit the run has reached (the flag, its value): the
    /// run has trained all it was asked to.
    fn count_limit_hit(&self) -> Option<(&'static str, u64)> {
        let images = self
            .opts
            .max_images
            .filter(|&m| self.state.images_seen >= m);
        let steps = self.opts.max_steps.filter(|&m| self.state.step >= m);
        images
            .map(|m| ("--max-images", m))
            .or(steps.map(|m| ("--max-steps", m)))
    }

    /// Whether the run had nothing left to train when this process started (silently): its
    /// `--minutes` budget spent, or its `--max-steps`/`--max-images` count reached.
    pub fn limit_reached(&self) -> bool {
        (self.budget_hit || self.count_limit_hit().is_some()) && self.state.epoch < self.cfg.epochs
    }

    /// A rerun with nothing left to train (its `--max-steps`/`--max-images` count already
    /// reached, or its `--minutes` budget spent) trains nothing, not even one step: says so.
    pub fn limit_reached_before_start(&self) -> bool {
        if !self.limit_reached() {
            return false;
        }
        let what = if let Some((flag, value)) = self.count_limit_hit() {
            format!(
                "the run is already at step {} ({} images shown), past {flag} {value}; nothing to train (rerun with a larger {flag} to continue)",
                self.state.step, self.state.images_seen
            )
        } else {
            format!(
                "the time budget of {} min is spent ({:.1} min trained); rerun with a larger --minutes to continue",
                self.cfg.minutes.unwrap_or_default(),
                self.state.train_seconds / 60.0
            )
        };
        print_and_log(self.run, &what);
        true
    }

    /// Trains epoch after epoch until the last one, or a stop.
    pub fn train_epochs(&mut self) -> Result<TrainOutcome> {
        while self.state.epoch < self.cfg.epochs {
            if let Some(stopped) = self.train_epoch()? {
                return Ok(stopped);
            }
        }
        Ok(TrainOutcome::Completed)
    }

    /// Whether training must stop now: Ctrl-C, `--max-steps`, `--max-images` or the time
    /// budget. The peers of a data-parallel run vote, and all stop when any asks to, at the
    /// same step.
    fn stop_requested(&self, vote_now: bool) -> bool {
        let counted = self.count_limit_hit().is_some();
        let mine = STOP.load(Ordering::SeqCst) || counted || self.budget_hit;
        if self.gan.peer.is_solo() {
            return mine;
        }
        // The step and image counts are the same on every peer, so `--max-steps` and
        // `--max-images` need no vote; Ctrl-C and the time budget are voted on at scheduled
        // steps only (a vote waits for the device).
        if !vote_now {
            return counted;
        }
        let vote =
            Tensor::<B::InnerBackend, 1>::from_floats([f32::from(u8::from(mine))], self.device);
        let votes = parallel::reduce(self.gan.peer, vote, false).into_data();
        votes.to_vec::<f32>().expect("f32 votes")[0] > 0.0
    }

    /// One epoch (or the rest of it, when resuming mid-epoch); `Some` when it stopped early.
    fn train_epoch(&mut self) -> Result<Option<TrainOutcome>> {
        let (cfg, epoch, nb) = (self.cfg.clone(), self.state.epoch, self.batches_per_epoch);
        let order = epoch_order(&self.train_ids, cfg.seed, epoch);
        let pb = progress_bar(
            nb as u64,
            &format!("epoch {}{}", epoch + 1, of_total(&cfg)),
            "{pos}/{len} ETA {eta} {msg}",
            self.opts.progress && self.leader(),
        );
        pb.set_position(self.state.batch_in_epoch as u64);
        let mut pending: Vec<Tensor<B::InnerBackend, 1>> = Vec::new();
        let clock = Instant::now();
        let batches = Prefetcher::start(
            self.shard.clone(),
            order,
            cfg.batch,
            self.state.batch_in_epoch,
        );
        for batch in batches {
            // Progressive growing: the size and fade the networks train at, from the images
            // shown (the full networks when the config does not grow).
            self.gan.level = cfg.level_at(self.state.images_seen);
            self.gan.ema_step = Some(cfg.ema_warmup_step(self.state.step, self.state.images_seen));
            let real = self.upload_own_rows(batch.pixels);
            // A test seam, empty in normal use: faults a test injects at this step.
            let real = self
                .opts
                .faults
                .before_step(real, self.gan.peer.index, self.state.step)?;
            // By steps against the run's epochs only: wall time would make runs
            // irreproducible, and `--max-images` / `--max-steps` pause a run without changing
            // its schedule. A run that only time ends (`--minutes` without `--epochs`) stays near
            // 0: its instance noise is not annealed and its learning rates do not decay.
            self.gan.progress = self.state.step as f64 / (cfg.epochs * nb).max(1) as f64;
            pending.push(self.gan.step(real, self.state.step));
            if let Some(h) = &self.heartbeat {
                h.feed();
            }
            self.advance(batch.index);
            let keep = self.keep_count_crossed();
            let last = self.state.batch_in_epoch == nb;
            let stop =
                self.stop_requested(last || self.state.step.is_multiple_of(cfg.sync_every as u64));
            if pending.len() >= cfg.sync_every || last || stop || keep.is_some() {
                self.sync_stats(&mut pending, epoch, &pb)?;
            }
            // Always at a stop and on the run's last batch, so the last point precedes the
            // last checkpoint (and any best score is in its state).
            let final_batch = last && epoch + 1 == cfg.epochs;
            self.probe_if_due(stop || final_batch, &pb)?;
            if let (Some(count), true) = (keep, self.leader()) {
                let dir = checkpoint::save_kept(self.run, &self.gan, &self.state, count)?;
                print_and_log(
                    self.run,
                    &format!(
                        "kept checkpoint {} at {} images shown (--keep-at {count})",
                        dir.display(),
                        self.state.images_seen
                    ),
                );
            }
            if stop && !last {
                self.state.epoch_sums.seconds += clock.elapsed().as_secs_f64();
                pb.abandon();
                return self.stop_mid_epoch(epoch).map(Some);
            }
        }
        pb.finish_and_clear();
        self.end_epoch(epoch, clock.elapsed().as_secs_f64())?;
        self.checkpoint_after_epoch(epoch)
    }

    /// This peer's rows of a batch (all of them on one device), uploaded as `[n, 3, h, w]` at
    /// the size of the level the networks train at (see [`real_images_at`]).
    fn upload_own_rows(&self, pixels: Vec<u8>) -> Tensor<B, 4> {
        let model = &self.cfg.model;
        let (h, w) = (model.height, model.width);
        let rows = self.gan.peer.rows(self.cfg.batch);
        let pixels = if self.gan.peer.is_solo() {
            pixels
        } else {
            let image_bytes = 3 * h * w;
            pixels[rows.start * image_bytes..rows.end * image_bytes].to_vec()
        };
        let level = self.gan.level;
        if level.is_full(model) {
            return upload_images::<B>(pixels, rows.len(), h, w, self.device);
        }
        let factor = h / level.size(model).0;
        let (images, sh, sw) = real_images_at(&pixels, rows.len(), [h, w], factor, level.alpha);
        Tensor::from_data(
            TensorData::new(images, [rows.len(), 3, sh, sw]),
            self.device,
        )
    }

    /// After an epoch: a checkpoint when one is due or training stops; `Some` when it stops.
    fn checkpoint_after_epoch(&mut self, epoch: usize) -> Result<Option<TrainOutcome>> {
        let cfg = &self.cfg;
        let stop = self.stop_requested(true);
        let due =
            (epoch + 1).is_multiple_of(cfg.checkpoint_every) || self.state.epoch == cfg.epochs;
        if (due || stop) && self.leader() {
            checkpoint::save(self.run, &self.gan, &self.state, cfg.keep_checkpoints)?;
        }
        if !stop || self.state.epoch >= self.cfg.epochs {
            return Ok(None);
        }
        if self.leader() {
            let (reason, hint) = self.stop_reason_and_hint();
            print_and_log(
                self.run,
                &format!(
                    "{reason} after epoch {}; rerun the same command{hint} to resume",
                    epoch + 1,
                ),
            );
        }
        Ok(Some(TrainOutcome::Stopped {
            step: self.state.step,
        }))
    }

    /// The `--keep-at` count the step just taken crossed (the largest, should one step cross
    /// several): one at or below the images shown now and above those before the step.
    fn keep_count_crossed(&self) -> Option<u64> {
        let now = self.state.images_seen;
        let images_before = now - self.cfg.batch as u64;
        self.opts
            .keep_at_images
            .iter()
            .copied()
            .filter(|&c| images_before < c && c <= now)
            .max()
    }

    /// Counts a finished step: step, images, position in the epoch, training time, budget.
    fn advance(&mut self, batch_index: usize) {
        let s = &mut self.state;
        s.step += 1;
        s.images_seen += self.cfg.batch as u64;
        s.batch_in_epoch = batch_index + 1;
        s.train_seconds = self.seconds_before + self.clock.elapsed().as_secs_f64();
        self.budget_hit = self.budget_s.is_some_and(|b| s.train_seconds >= b);
    }

    /// Downloads the pending steps' values (one sync for `sync_every` steps), adds them to the
    /// epoch's sums and updates the progress line. A non-finite loss stops the run without
    /// saving: the last good checkpoint is kept.
    fn sync_stats(
        &mut self,
        pending: &mut Vec<Tensor<B::InnerBackend, 1>>,
        epoch: usize,
        pb: &ProgressBar,
    ) -> Result<()> {
        let first_step = self.state.step - pending.len() as u64;
        let values = Tensor::cat(std::mem::take(pending), 0)
            .into_data()
            .to_vec::<f32>()
            .expect("f32 stats");
        for (i, s) in values.chunks_exact(4).enumerate() {
            let v = StepValues::from_slice(s);
            if !v.is_finite() {
                let kept = match checkpoint::latest(self.run)? {
                    Some(c) => format!("the last good checkpoint, {}, is kept", c.dir.display()),
                    None => "no checkpoint had been written yet".to_string(),
                };
                let msg = format!(
                    "non-finite loss at epoch {}, step {} (loss_d {}, loss_g {}); stopped without saving; {kept}",
                    epoch + 1,
                    first_step + i as u64 + 1,
                    v.loss_d,
                    v.loss_g
                );
                pb.abandon();
                if self.leader() {
                    artifacts::log_line(self.run, &msg);
                }
                bail!(msg);
            }
            v.add_to(&mut self.state.epoch_sums);
        }
        let e = &self.state.epoch_sums;
        pb.set_position(self.state.batch_in_epoch as u64);
        pb.set_message(format!(
            "D {:.3} G {:.3}{}",
            e.loss_d / e.steps as f64,
            e.loss_g / e.steps as f64,
            self.curve
                .last()
                .map_or(String::new(), |q| format!(" SWD {:.1}", q.swd))
        ));
        Ok(())
    }

    /// A stop inside an epoch: a checkpoint at this step, and how to resume.
    fn stop_mid_epoch(&mut self, epoch: usize) -> Result<TrainOutcome> {
        if !self.leader() {
            return Ok(TrainOutcome::Stopped {
                step: self.state.step,
            });
        }
        let dir = checkpoint::save(self.run, &self.gan, &self.state, self.cfg.keep_checkpoints)?;
        let (reason, hint) = self.stop_reason_and_hint();
        print_and_log(
            self.run,
            &format!(
                "{reason} at epoch {}, step {}; checkpoint {}; rerun the same command{hint} to resume",
                epoch + 1,
                self.state.step,
                dir.display(),
            ),
        );
        Ok(TrainOutcome::Stopped {
            step: self.state.step,
        })
    }

    /// Why training stopped, for the log line (the count reached, named with its value; the
    /// time budget; or Ctrl-C), and what to change before rerunning to train on.
    fn stop_reason_and_hint(&self) -> (String, String) {
        if let Some((flag, value)) = self.count_limit_hit() {
            (
                format!(
                    "{flag} {value} reached ({} images shown)",
                    self.state.images_seen
                ),
                format!(" with a larger {flag}"),
            )
        } else if self.budget_hit {
            (
                "time budget reached".into(),
                " with a larger --minutes".into(),
            )
        } else {
            ("stopped".into(), String::new())
        }
    }

    /// End of an epoch: its `metrics.csv` row, the sample grid, the GIF and plots, a log line.
    fn end_epoch(&mut self, epoch: usize, seconds_this_process: f64) -> Result<()> {
        let run = self.run;
        let e = std::mem::take(&mut self.state.epoch_sums);
        if !self.leader() {
            self.state.epoch += 1;
            self.state.batch_in_epoch = 0;
            return Ok(());
        }
        let seconds = e.seconds + seconds_this_process;
        let steps = e.steps.max(1) as f64;
        let row = EpochMetrics {
            epoch: epoch + 1,
            step: self.state.step,
            images_seen: self.state.images_seen,
            loss_d: e.loss_d / steps,
            loss_g: e.loss_g / steps,
            d_real: e.d_real / steps,
            d_fake: e.d_fake / steps,
            seconds,
            img_per_s: (e.steps as f64 * self.cfg.batch as f64) / seconds.max(1e-9),
            swd: self.curve.last().map(|q| q.swd),
        };
        self.metrics.retain(|m| m.epoch != row.epoch);
        self.metrics.push(row.clone());
        write_metrics(&run.join("metrics.csv"), &self.metrics)?;
        let grid = sample_grid(&self.gan, &self.state.fixed_noise, self.device);
        let samples = run.join("samples");
        save_png(&samples.join(format!("epoch_{:04}.png", epoch + 1)), &grid)?;
        artifacts::write_progress_gif(&samples, &run.join("progress.gif"), 60)?;
        artifacts::write_loss_plot(&run.join("loss.png"), &self.metrics)?;
        if !self.curve.is_empty() {
            artifacts::write_quality_plot(&run.join("quality.png"), &self.curve)?;
        }
        print_and_log(
            run,
            &format!(
                "epoch {}{}  {:.1} s  G loss {:.4}  D loss {:.4}  D(x) {:.3}  D(G(z)) {:.3}  {:.1} img/s{}",
                epoch + 1,
                of_total(&self.cfg),
                seconds,
                row.loss_g,
                row.loss_d,
                row.d_real,
                row.d_fake,
                row.img_per_s,
                lr_note(&self.cfg, self.gan.progress),
            ),
        );
        self.state.epoch += 1;
        self.state.batch_in_epoch = 0;
        Ok(())
    }

    /// The last quality plot and the closing line.
    pub fn finish(self, outcome: TrainOutcome) -> Result<TrainSummary> {
        if !self.curve.is_empty() {
            artifacts::write_quality_plot(&self.run.join("quality.png"), &self.curve)?;
        }
        if outcome == TrainOutcome::Completed {
            print_and_log(
                self.run,
                &format!(
                    "done: {} epochs, {} images seen",
                    self.state.epoch, self.state.images_seen
                ),
            );
        }
        Ok(self.into_summary(outcome))
    }

    pub(crate) fn into_summary(self, outcome: TrainOutcome) -> TrainSummary {
        TrainSummary {
            outcome,
            state: self.state,
            metrics: self.metrics,
            resumed_from: self.resumed_from,
        }
    }
}

/// `  lr x0.52` on the epoch line once the learning rates decay (`lr_decay`), else nothing.
fn lr_note(cfg: &TrainConfig, progress: f64) -> String {
    let scale = cfg.lr_scale(progress);
    if scale < 1.0 {
        format!("  lr x{scale:.2}")
    } else {
        String::new()
    }
}

/// Renders the 8x8 grid of the fixed noise with the generator in eval mode, at the level it
/// trains at: a growing run's smaller images are drawn at the full size (each pixel a block),
/// so every grid of the run, and `progress.gif`, has one size.
pub fn sample_grid<B: AutodiffBackend>(
    gan: &Gan<B>,
    fixed: &[f32],
    device: &B::Device,
) -> image::RgbImage {
    let g = gan.generator_eval();
    let model = &gan.cfg.model;
    let data = facegan_model::generator::generate_batched_at(
        &g,
        fixed,
        model.latent,
        GRID_SIZE,
        gan.level,
        device,
    );
    let (h, w) = gan.level.size(model);
    let data = upsample_chw(&data, h, w, model.height / h);
    grid_from_chw(&data, GRID_SIZE, model.height, model.width, 8)
}

/// `[N, C, h, w]` floats with every pixel repeated in a `factor x factor` block.
fn upsample_chw(data: &[f32], h: usize, w: usize, factor: usize) -> Vec<f32> {
    if factor == 1 {
        return data.to_vec();
    }
    let (bh, bw) = (h * factor, w * factor);
    let mut out = Vec::with_capacity(data.len() * factor * factor);
    for plane in data.chunks_exact(h * w) {
        for y in 0..bh {
            let row = &plane[(y / factor) * w..][..w];
            out.extend((0..bw).map(|x| row[x / factor]));
        }
    }
    out
}

/// "/EPOCHS" after an epoch number, or the time budget when time, not epochs, ends the run.
fn of_total(cfg: &TrainConfig) -> String {
    match cfg.minutes {
        Some(m) if cfg.epochs >= TIME_BOUND_EPOCHS => format!(" ({m} min budget)"),
        _ => format!("/{}", cfg.epochs),
    }
}
