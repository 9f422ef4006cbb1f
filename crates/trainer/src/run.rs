//! The training loop, as a short sequence of named steps:
//!
//! 1. [`plan_run`]: open the shard, decide resume-or-start and resolve the config; everything is
//!    checked before anything in the run directory is touched.
//! 2. Lock the run directory ([`RunLock`](crate::run_dir::RunLock)) and remove half-written checkpoints.
//! 3. [`Session::start`](crate::session::Session::start): load the checkpoint or create the networks, read back the metrics and
//!    quality curve up to the checkpoint, prepare the quality probe.
//! 4. [`Session::train_epochs`](crate::session::Session::train_epochs): epochs of steps. After a step: sync the stats every
//!    `sync_every` steps (and stop on a non-finite loss), probe quality when due, stop with a
//!    checkpoint on Ctrl-C / `--max-steps` / `--minutes`. After an epoch: `metrics.csv`, the
//!    sample grid, plots and a checkpoint.
//! 5. [`Session::finish`](crate::session::Session::finish): the last plots and the summary.

use std::path::PathBuf;
use std::sync::Arc;

use crate::metrics_csv::EpochMetrics;
use anyhow::{bail, Result};
use burn::tensor::backend::AutodiffBackend;
use facegan_shard::Shard;

use crate::checkpoint::{self, CheckpointInfo, TrainState};
use crate::config::TrainConfig;
use crate::data::{batches_per_epoch, train_indices};
use crate::run_dir::{remove_stale_checkpoint_temps, RunLock};
use crate::session::Session;

/// Images in every sample grid (8x8).
pub const GRID_SIZE: usize = 64;

/// The epoch count `--minutes` without `--epochs` sets: time ends the run, not epochs.
pub const TIME_BOUND_EPOCHS: usize = 1_000_000;

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
    /// Testing hook (`FACEGAN_INJECT_NAN_AT_STEP`): poison the real batch of this global step
    /// with NaN, to test the non-finite-loss guard end to end.
    pub inject_nan_at_step: Option<u64>,
    /// Testing hook (`FACEGAN_FAIL_DEVICE_AT=K:S`): peer K of a data-parallel run fails at
    /// global step S, to test that the other peers stop instead of waiting for it.
    pub fail_device_at: Option<(usize, u64)>,
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

/// Trains on backend `B` until the configured epochs are done, Ctrl-C, `max_steps` or the time
/// budget.
pub fn train<B: AutodiffBackend>(opts: &TrainOptions, device: &B::Device) -> Result<TrainSummary> {
    let shard = Arc::new(Shard::open(&opts.data)?);
    // The payload checksum (one pass over the mapped pixels): flipped pixels are refused
    // instead of trained on.
    shard.verify()?;
    let plan = plan_run(opts, &shard)?;
    let _lock = RunLock::acquire(&opts.run)?;
    remove_stale_checkpoint_temps(&opts.run);
    let mut session = Session::<B>::start(opts, shard, plan, device)?;
    if session.budget_spent_before_start() {
        let step = session.state.step;
        return Ok(session.into_summary(TrainOutcome::Stopped { step }));
    }
    let outcome = session.train_epochs()?;
    session.finish(outcome)
}

/// Trains on several devices of backend `B` at once, one peer (thread) per device, with the
/// gradients all-reduced before every optimizer step (see [`crate::parallel`]). One device is
/// [`train`]. The global batch is the config's; each device takes `batch / devices` of it.
#[cfg(feature = "parallel")]
pub fn train_parallel<B: AutodiffBackend>(
    opts: &TrainOptions,
    devices: &[B::Device],
) -> Result<TrainSummary> {
    if devices.len() <= 1 {
        let device = devices.first().cloned().unwrap_or_default();
        return train::<B>(opts, &device);
    }
    let shard = Arc::new(Shard::open(&opts.data)?);
    shard.verify()?;
    let plan = plan_run(opts, &shard)?;
    crate::parallel::check_batch_divides(plan.cfg.batch, devices.len())?;
    let _lock = RunLock::acquire(&opts.run)?;
    remove_stale_checkpoint_temps(&opts.run);
    let mut leader = Session::<B>::start(opts, shard, plan, &devices[0])?;
    if leader.budget_spent_before_start() {
        let step = leader.state.step;
        return Ok(leader.into_summary(TrainOutcome::Stopped { step }));
    }
    leader.lead(devices.len());
    crate::run_dir::print_and_log(
        &opts.run,
        &format!(
            "data-parallel over {} devices: {} images of each batch of {} per device, gradients averaged every step",
            devices.len(),
            leader.cfg_batch() / devices.len(),
            leader.cfg_batch()
        ),
    );
    let followers: Vec<Session<B>> = (1..devices.len())
        .map(|i| leader.follower(i, &devices[i]))
        .collect();
    type Job<'s, T> = Box<dyn FnOnce() -> Result<T> + Send + 's>;
    crate::parallel::reset::<B::InnerBackend>();
    let mut jobs: Vec<Job<(Session<B>, TrainOutcome)>> = Vec::new();
    for (i, mut session) in std::iter::once(leader).chain(followers).enumerate() {
        let device = devices[i].clone();
        jobs.push(Box::new(move || {
            let peer = session.peer();
            crate::parallel::join::<B::InnerBackend>(peer, &device)?;
            let outcome = session.train_epochs();
            crate::parallel::leave::<B::InnerBackend>(peer);
            Ok((session, outcome?))
        }));
    }
    let mut done = crate::parallel::run_peers::<B::InnerBackend, _>(jobs)?;
    let (leader, outcome) = done.swap_remove(0);
    leader.finish(outcome)
}

/// What [`plan_run`] decided: resume from a checkpoint (with its state) or start anew, with
/// the config to train with and the epoch's batches.
pub struct RunPlan {
    pub(crate) resume: Option<(CheckpointInfo, TrainState)>,
    pub(crate) cfg: TrainConfig,
    pub(crate) train_ids: Vec<usize>,
    pub(crate) batches_per_epoch: usize,
}

/// Decides resume-or-start and resolves the config (the run's own when resuming, else the one
/// asked for; then `--epochs` / `--minutes`), refusing anything that does not fit the shard or
/// the run. Touches nothing on disk.
pub fn plan_run(opts: &TrainOptions, shard: &Shard) -> Result<RunPlan> {
    let latest = if opts.new {
        None
    } else {
        checkpoint::latest(&opts.run)?
    };
    let resume = match latest {
        Some(ckpt) => {
            let state = checkpoint::load_state(&ckpt.dir)?;
            check_resume_matches(opts, &state)?;
            Some((ckpt, state))
        }
        None => None,
    };
    let mut cfg = match &resume {
        Some((_, state)) => state.config.clone(),
        None => opts.config.clone(),
    };
    if let Some(e) = opts.epochs_override {
        cfg.epochs = e;
    }
    if let Some(m) = opts.minutes_override {
        cfg.minutes = Some(m);
    }
    cfg.validate()?;
    cfg.check_shard(shard)?;
    let train_ids = train_indices(shard);
    let nb = batches_per_epoch(train_ids.len(), cfg.batch);
    if nb == 0 {
        bail!(
            "{}: the train split has {} images, fewer than one batch of {}",
            opts.data.display(),
            train_ids.len(),
            cfg.batch
        );
    }
    Ok(RunPlan {
        resume,
        cfg,
        train_ids,
        batches_per_epoch: nb,
    })
}

/// `--resume` on a run without a finished checkpoint is refused (the CLI checks this before the
/// device is picked or the shard opened, as before the restructuring).
pub fn check_resumable(run: &std::path::Path) -> Result<()> {
    if checkpoint::latest(run)?.is_none() {
        bail!(
            "{}: --resume given but the run has no checkpoint",
            run.display()
        );
    }
    Ok(())
}

/// A resumed run keeps its preset, `--batch` and `--seed`: a different one asked for
/// explicitly is refused rather than ignored.
fn check_resume_matches(opts: &TrainOptions, state: &TrainState) -> Result<()> {
    let run = &opts.run;
    if opts.config_explicit
        && (state.config.preset != opts.config.preset || state.config.model != opts.config.model)
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
    Ok(())
}
