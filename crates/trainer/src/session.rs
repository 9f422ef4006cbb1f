//! One training process on one run directory ([`Session`]): set up from a [`RunPlan`], then
//! epochs of steps with the stats sync, the NaN guard, the quality probe, stops with a
//! checkpoint, and each epoch's metrics row, grid, plots and checkpoint. [`crate::run::train`]
//! drives it.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use crate::metrics_csv::{read_metrics, write_metrics, EpochMetrics};
use anyhow::{bail, Context, Result};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::Tensor;
use facegan_common::images::{grid_from_chw, save_png};
use facegan_common::progress::{progress_bar, ProgressBar};
use facegan_common::TOOL_VERSION;
use facegan_shard::Shard;

use crate::artifacts;
use crate::checkpoint::{self, BestScore, CheckpointInfo, EpochSums, TrainState};
use crate::config::TrainConfig;
use crate::data::{epoch_order, Prefetcher};
use crate::gan::{noise, upload_images, Gan};
use crate::parallel::{self, Peer, Watchdog};
use crate::quality::{self, ProbeSchedule, QualityPoint, QualityProbe};
use crate::run::{RunPlan, TrainOptions, TrainOutcome, TrainSummary, GRID_SIZE, TIME_BOUND_EPOCHS};
use crate::run_dir::{clear_run, print_and_log};
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
    /// Loads the checkpoint (or creates the networks after clearing the run directory), writes
    /// `config.toml`, reads back `metrics.csv` and `quality.csv` up to the checkpoint (later
    /// rows will be recomputed identically) and prepares the quality probe.
    pub fn start(
        opts: &'a TrainOptions,
        shard: Arc<Shard>,
        plan: RunPlan,
        device: &'a B::Device,
    ) -> Result<Self> {
        let run = opts.run.as_path();
        let cfg = plan.cfg;
        if plan.resume.is_none() {
            // A new run: first remove what an earlier run left in the directory.
            clear_run(run)?;
        }
        let (gan, mut state, resumed_from) = load_or_new::<B>(plan.resume, &cfg, device)?;
        state.data_path = std::fs::canonicalize(&opts.data)
            .unwrap_or_else(|_| opts.data.clone())
            .display()
            .to_string();
        std::fs::create_dir_all(run.join("samples"))
            .with_context(|| format!("{}: cannot create", run.display()))?;
        facegan_common::write_atomic(&run.join("config.toml"), cfg.to_toml().as_bytes())?;
        let metrics: Vec<EpochMetrics> = read_metrics(&run.join("metrics.csv"))?
            .into_iter()
            .filter(|m| m.epoch <= state.epoch)
            .collect();
        announce_start(
            run,
            &cfg,
            &state,
            resumed_from.as_deref(),
            plan.train_ids.len(),
            plan.batches_per_epoch,
        );
        if plan.preset_by_size {
            print_and_log(
                run,
                &format!(
                    "no --preset given: training {}, the recommended preset for {}x{} images (--preset seed trains the tutorial's networks)",
                    cfg.preset, cfg.model.height, cfg.model.width
                ),
            );
        }
        let curve: Vec<QualityPoint> = quality::read_quality(&run.join("quality.csv"))?
            .into_iter()
            .filter(|q| q.images_seen <= state.images_seen)
            .collect();
        let probe = (cfg.eval_every > 0)
            .then(|| {
                QualityProbe::new::<B::InnerBackend>(
                    &shard,
                    cfg.model.latent,
                    cfg.eval_images,
                    device,
                )
            })
            .flatten();
        keep_the_saved_best(run, &mut state);
        if let Some(p) = &probe {
            announce_probe(run, p, cfg.eval_every);
        }
        let budget_s = cfg.minutes.map(|m| m * 60.0);
        Ok(Session {
            opts,
            run,
            device,
            shard,
            schedule: ProbeSchedule::new(cfg.eval_every),
            train_ids: plan.train_ids,
            batches_per_epoch: plan.batches_per_epoch,
            gan,
            resumed_from,
            metrics,
            curve,
            probe,
            clock: Instant::now(),
            seconds_before: state.train_seconds,
            budget_s,
            budget_hit: budget_s.is_some_and(|b| state.train_seconds >= b),
            state,
            cfg,
            heartbeat: None,
        })
    }

    /// The session of the first peer of a node other than node 0 in a several-machine run:
    /// the same networks and state as node 0 (the checkpoint it resumes from, or the config's
    /// seeded initial weights), writing nothing.
    pub fn start_silent(
        opts: &'a TrainOptions,
        shard: Arc<Shard>,
        plan: RunPlan,
        device: &'a B::Device,
        peer: Peer,
    ) -> Result<Self> {
        let cfg = plan.cfg;
        let (mut gan, state, resumed_from) = load_or_new::<B>(plan.resume, &cfg, device)?;
        gan.peer = peer;
        let budget_s = cfg.minutes.map(|m| m * 60.0);
        Ok(Session {
            opts,
            run: opts.run.as_path(),
            device,
            shard,
            schedule: ProbeSchedule::new(0),
            train_ids: plan.train_ids,
            batches_per_epoch: plan.batches_per_epoch,
            gan,
            resumed_from,
            metrics: Vec::new(),
            curve: Vec::new(),
            probe: None,
            clock: Instant::now(),
            seconds_before: state.train_seconds,
            budget_s,
            budget_hit: budget_s.is_some_and(|b| state.train_seconds >= b),
            state,
            cfg,
            heartbeat: None,
        })
    }

    /// Feeds `watchdog` after every step from now on.
    pub fn set_heartbeat(&mut self, watchdog: Arc<Watchdog>) {
        self.heartbeat = Some(watchdog);
    }

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

    /// This session's place among the peers of a data-parallel run.
    pub fn peer(&self) -> Peer {
        self.gan.peer
    }

    /// The global batch.
    pub fn cfg_batch(&self) -> usize {
        self.cfg.batch
    }

    /// Makes this session the leader of `peers` data-parallel peers (see [`crate::parallel`]).
    pub fn lead(&mut self, peers: usize) {
        self.gan.peer = Peer {
            index: 0,
            count: peers,
        };
    }

    /// A follower of this (leading) session for peer `index` on `device`: the same networks,
    /// state and schedule, writing nothing.
    pub fn follower(&self, index: usize, device: &'a B::Device) -> Self {
        let peer = Peer {
            index,
            count: self.gan.peer.count,
        };
        Session {
            opts: self.opts,
            run: self.run,
            device,
            shard: self.shard.clone(),
            cfg: self.cfg.clone(),
            train_ids: self.train_ids.clone(),
            batches_per_epoch: self.batches_per_epoch,
            gan: self.gan.fork_for(peer, device),
            state: self.state.clone(),
            resumed_from: self.resumed_from.clone(),
            metrics: Vec::new(),
            curve: Vec::new(),
            probe: None,
            schedule: ProbeSchedule::new(0),
            clock: self.clock,
            seconds_before: self.seconds_before,
            budget_s: self.budget_s,
            budget_hit: self.budget_hit,
            heartbeat: None,
        }
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
        let (h, w) = (cfg.model.height, cfg.model.width);
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
        let rows = self.gan.peer.rows(cfg.batch);
        let image_bytes = 3 * h * w;
        for batch in batches {
            let pixels = if self.gan.peer.is_solo() {
                batch.pixels
            } else {
                batch.pixels[rows.start * image_bytes..rows.end * image_bytes].to_vec()
            };
            let mut real = upload_images::<B>(pixels, rows.len(), h, w, self.device);
            if self.opts.fail_device_at == Some((self.gan.peer.index, self.state.step)) {
                bail!(
                    "device {} failed at step {} (FACEGAN_FAIL_DEVICE_AT)",
                    self.gan.peer.index,
                    self.state.step
                );
            }
            if self.opts.inject_nan_at_step == Some(self.state.step) {
                real = real.mul_scalar(f32::NAN);
            }
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
            let last = self.state.batch_in_epoch == nb;
            let stop =
                self.stop_requested(last || self.state.step.is_multiple_of(cfg.sync_every as u64));
            if pending.len() >= cfg.sync_every || last || stop {
                self.sync_stats(&mut pending, epoch, &pb)?;
            }
            // Always at a stop and on the run's last batch, so the last point precedes the
            // last checkpoint (and any best score is in its state).
            let final_batch = last && epoch + 1 == cfg.epochs;
            self.probe_if_due(stop || final_batch, &pb)?;
            if stop && !last {
                self.state.epoch_sums.seconds += clock.elapsed().as_secs_f64();
                pb.abandon();
                return self.stop_mid_epoch(epoch).map(Some);
            }
        }
        pb.finish_and_clear();
        self.end_epoch(epoch, clock.elapsed().as_secs_f64())?;
        let stop = self.stop_requested(true);
        let due = (epoch + 1) % cfg.checkpoint_every == 0 || self.state.epoch == cfg.epochs;
        if (due || stop) && self.leader() {
            checkpoint::save(self.run, &self.gan, &self.state, cfg.keep_checkpoints)?;
        }
        if stop && self.state.epoch < cfg.epochs {
            if !self.leader() {
                return Ok(Some(TrainOutcome::Stopped {
                    step: self.state.step,
                }));
            }
            let (reason, hint) = self.stop_reason_and_hint();
            print_and_log(
                self.run,
                &format!(
                    "{reason} after epoch {}; rerun the same command{hint} to resume",
                    epoch + 1,
                ),
            );
            return Ok(Some(TrainOutcome::Stopped {
                step: self.state.step,
            }));
        }
        Ok(None)
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

    /// Runs the quality probe when `forced` or when the schedule says it is due.
    fn probe_if_due(&mut self, forced: bool, pb: &ProgressBar) -> Result<()> {
        let Some(p) = &self.probe else {
            return Ok(());
        };
        if !(forced
            || self
                .schedule
                .due(self.state.images_seen, self.state.next_probe_at))
        {
            return Ok(());
        }
        let q = run_probe(
            self.run,
            p,
            &self.gan,
            &mut self.state,
            &mut self.curve,
            self.device,
        )?;
        self.schedule.done(q.probe_seconds);
        if self.opts.progress {
            pb.println(probe_line(&q, &self.state));
        } else {
            println!("{}", probe_line(&q, &self.state));
        }
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

/// The networks and state to train from: the checkpoint's (with the resolved config), or new
/// ones from the config's seed. Also returns the checkpoint folder resumed from. Touches nothing
/// on disk (a new run's leader clears the run directory first, see [`Session::start`]).
fn load_or_new<B: AutodiffBackend>(
    resume: Option<(CheckpointInfo, TrainState)>,
    cfg: &TrainConfig,
    device: &B::Device,
) -> Result<(Gan<B>, TrainState, Option<PathBuf>)> {
    Ok(match resume {
        Some((ckpt, mut state)) => {
            state.config = cfg.clone();
            let gan = checkpoint::load_gan::<B>(&ckpt.dir, &state.config, device)?;
            (gan, state, Some(ckpt.dir))
        }
        None => (
            Gan::<B>::new(cfg, device),
            new_state::<B>(cfg, device),
            None,
        ),
    })
}

/// A crash after a best checkpoint but before the next regular one leaves the better score only
/// in `checkpoints/best/`: start from whichever is lower.
fn keep_the_saved_best(run: &Path, state: &mut TrainState) {
    let saved_best = checkpoint::best(run).and_then(|b| checkpoint::load_state(&b.dir).ok()?.best);
    if let Some(saved) = saved_best {
        if state.best.as_ref().is_none_or(|b| saved.swd < b.swd) {
            state.best = Some(saved);
        }
    }
}

/// The state of a new run at step 0 (with its fixed sample noise).
fn new_state<B: AutodiffBackend>(cfg: &TrainConfig, device: &B::Device) -> TrainState {
    TrainState {
        tool_version: TOOL_VERSION.into(),
        epoch: 0,
        batch_in_epoch: 0,
        step: 0,
        images_seen: 0,
        epoch_sums: EpochSums::default(),
        fixed_noise: fixed_noise::<B>(cfg, device),
        config: cfg.clone(),
        data_path: String::new(),
        train_seconds: 0.0,
        next_probe_at: 0,
        best: None,
    }
}

/// "resuming from ..." or "new run ...", printed and logged.
fn announce_start(
    run: &Path,
    cfg: &TrainConfig,
    state: &TrainState,
    resumed_from: Option<&Path>,
    train_images: usize,
    nb: usize,
) {
    let line = match resumed_from {
        Some(dir) => format!(
            "resuming from {} (epoch {}, batch {}/{}, step {})",
            dir.display(),
            state.epoch + 1,
            state.batch_in_epoch,
            nb,
            state.step
        ),
        None => format!(
            "new run {}: preset {}, {} train images, {} batches of {} per epoch (last partial batch dropped), {} epochs",
            run.display(),
            cfg.preset,
            train_images,
            nb,
            cfg.batch,
            cfg.epochs
        ),
    };
    print_and_log(run, &line);
}

/// What the quality probe scores against, printed and logged once.
fn announce_probe(run: &Path, p: &QualityProbe, eval_every: u64) {
    let f = p.floor();
    print_and_log(
        run,
        &format!(
            "quality probe: SWD of the sampling generator vs {} holdout images every {} images; floor (train vs holdout) {:.1}, finest level {:.1}",
            p.images(),
            eval_every,
            f.average,
            f.per_level[0]
        ),
    );
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

/// `  lr x0.52` on the epoch line once the learning rates decay (`lr_decay`), else nothing.
fn lr_note(cfg: &TrainConfig, progress: f64) -> String {
    let scale = cfg.lr_scale(progress);
    if scale < 1.0 {
        format!("  lr x{scale:.2}")
    } else {
        String::new()
    }
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
    grid_from_chw(
        &data,
        GRID_SIZE,
        gan.cfg.model.height,
        gan.cfg.model.width,
        8,
    )
}

/// Scores the sampling generator, appends the point to `quality.csv` and `train.log`, and keeps
/// `checkpoints/best/` when the score is the run's best so far. Returns the new point.
fn run_probe<B: AutodiffBackend>(
    run: &Path,
    probe: &QualityProbe,
    gan: &Gan<B>,
    state: &mut TrainState,
    curve: &mut Vec<QualityPoint>,
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
    quality::write_quality(&run.join("quality.csv"), curve)?;
    if is_new_best(point.swd, state.best.as_ref()) {
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

/// Whether a probe's score beats the run's best so far. A non-finite score (a diverged run) is
/// never the best: `checkpoints/best/` keeps the last good one.
fn is_new_best(swd: f64, best: Option<&BestScore>) -> bool {
    swd.is_finite() && best.is_none_or(|b| swd < b.swd)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_finite_score_is_never_the_best() {
        let best = BestScore {
            swd: 20.0,
            step: 10,
            images_seen: 640,
        };
        assert!(is_new_best(19.0, Some(&best)));
        assert!(!is_new_best(21.0, Some(&best)));
        assert!(
            is_new_best(25.0, None),
            "the first finite score is the best so far"
        );
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(!is_new_best(bad, None), "{bad}");
            assert!(!is_new_best(bad, Some(&best)), "{bad}");
        }
    }
}
