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
use crate::run_dir::{recover_after_crash, RunLock};
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
    /// The config to start a new run with, chosen explicitly (`--preset` or `--config`), so a
    /// resumed run must match it; `None`: the recommended preset for the shard's image size
    /// (see [`TrainConfig::recommended_preset`]) for a new run, the run's own when resuming.
    pub config: Option<TrainConfig>,
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
    /// Stop (with a checkpoint) once this many images have been shown in total (the first
    /// step that reaches it: the count rounds up to whole batches).
    pub max_images: Option<u64>,
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
    /// Ctrl-C, `max_steps`, `max_images` or the `--minutes` budget: a checkpoint was written;
    /// rerun (with a larger budget) to continue.
    Stopped { step: u64 },
}

#[derive(Debug, Clone)]
pub struct TrainSummary {
    pub outcome: TrainOutcome,
    pub state: TrainState,
    pub metrics: Vec<EpochMetrics>,
    pub resumed_from: Option<PathBuf>,
}

/// Trains on backend `B` until the configured epochs are done, Ctrl-C, `max_steps`,
/// `max_images` or the time budget.
pub fn train<B: AutodiffBackend>(opts: &TrainOptions, device: &B::Device) -> Result<TrainSummary> {
    let shard = Arc::new(Shard::open(&opts.data)?);
    // The payload checksum (one pass over the mapped pixels): flipped pixels are refused
    // instead of trained on.
    shard.verify()?;
    let lock = lock_existing(&opts.run)?;
    let plan = plan_run(opts, &shard)?;
    let _lock = lock_new(lock, &opts.run)?;
    let mut session = Session::<B>::start(opts, shard, plan, device)?;
    if session.limit_reached_before_start() {
        let step = session.state.step;
        return Ok(session.into_summary(TrainOutcome::Stopped { step }));
    }
    let outcome = session.train_epochs()?;
    session.finish(outcome)
}

/// Trains on several devices of backend `B` at once, one peer (thread) per device, with the
/// gradients all-reduced before every optimizer step (see [`crate::parallel`]); with a
/// [`Cluster`], on several machines, each running this with its own devices. One device on
/// one machine is [`train`]. The global batch is the config's; each device of each node takes
/// `batch / (devices x nodes)` of it. Only node 0 touches the run directory; the other nodes
/// read the checkpoint they resume from from theirs (a shared or copied folder).
#[cfg(feature = "parallel")]
pub fn train_parallel<B: AutodiffBackend>(
    opts: &TrainOptions,
    devices: &[B::Device],
    cluster: Option<&crate::parallel::Cluster>,
    peer_timeout: std::time::Duration,
) -> Result<TrainSummary> {
    use crate::parallel::{self, Peer, Watchdog};
    let (nodes, rank) = cluster.map_or((1, 0), |c| (c.nodes, c.rank));
    let local = devices.len().max(1);
    if local == 1 && nodes == 1 {
        let device = devices.first().cloned().unwrap_or_default();
        return train::<B>(opts, &device);
    }
    let total = local * nodes;
    let shard = Arc::new(Shard::open(&opts.data)?);
    shard.verify()?;
    let lock = if rank == 0 {
        lock_existing(&opts.run)?
    } else {
        None
    };
    let plan = plan_run(opts, &shard)?;
    parallel::check_batch_divides(plan.cfg.batch, total)?;
    let fingerprint = run_fingerprint(&plan, &shard, local, opts);
    let first_peer = Peer {
        index: rank * local,
        count: total,
    };
    let _lock = if rank == 0 {
        Some(lock_new(lock, &opts.run)?)
    } else {
        None
    };
    let first = if rank == 0 {
        let mut leader = Session::<B>::start(opts, shard, plan, &devices[0])?;
        if leader.limit_reached_before_start() {
            let step = leader.state.step;
            return Ok(leader.into_summary(TrainOutcome::Stopped { step }));
        }
        leader.lead(total);
        crate::run_dir::print_and_log(
            &opts.run,
            &format!(
                "data-parallel over {total} devices ({nodes} node(s) x {local}): {} images of each batch of {} per device, gradients averaged every step",
                leader.cfg_batch() / total,
                leader.cfg_batch()
            ),
        );
        leader
    } else {
        let silent = Session::<B>::start_silent(opts, shard, plan, &devices[0], first_peer)?;
        // Node 0 stops here too (the same checkpoint, so the same spent budget).
        if silent.limit_reached() {
            let step = silent.state.step;
            return Ok(silent.into_summary(TrainOutcome::Stopped { step }));
        }
        silent
    };
    let others: Vec<Session<B>> = (1..local)
        .map(|i| first.follower(rank * local + i, &devices[i]))
        .collect();
    // Burn's collective has no timeouts: a watchdog ends this process when joining or a step
    // takes longer than the timeout (an absent orchestrator, a node that died).
    let watchdog = cluster.map(|c| {
        let w = Arc::new(Watchdog::start(peer_timeout));
        w.arm(format!(
            "node {rank}: could not reach the orchestrator at {} and the other {} node(s) within {} s; \
             is `facegan orchestrator --listen ...` running there, and did every node start (or \
             one stop at its start with an error)?",
            c.orchestrator,
            c.nodes - 1,
            peer_timeout.as_secs()
        ));
        w
    });
    let others_ranks: Vec<String> = (0..nodes)
        .filter(|&r| r != rank)
        .map(|r| r.to_string())
        .collect();
    type Job<'s, T> = Box<dyn FnOnce() -> Result<T> + Send + 's>;
    parallel::reset::<B::InnerBackend>();
    let mut jobs: Vec<Job<(Session<B>, TrainOutcome)>> = Vec::new();
    for (i, mut session) in std::iter::once(first).chain(others).enumerate() {
        let device = devices[i].clone();
        let watchdog = watchdog.clone();
        let others_ranks = others_ranks.join(", ");
        jobs.push(Box::new(move || {
            let peer = session.peer();
            parallel::join::<B::InnerBackend>(peer, local, cluster, &device)?;
            parallel::check_same_run::<B::InnerBackend>(peer, fingerprint, &device)?;
            if let Some(w) = &watchdog {
                if i == 0 {
                    w.arm(format!(
                        "node {rank}: no training step finished for {} s: node(s) {others_ranks} stopped or cannot be reached; stopping (the last checkpoint of node 0 is kept)",
                        w.timeout().as_secs()
                    ));
                }
                session.set_heartbeat(w.clone());
            }
            let outcome = session.train_epochs();
            parallel::leave::<B::InnerBackend>(peer);
            Ok((session, outcome?))
        }));
    }
    let done = parallel::run_peers::<B::InnerBackend, _>(jobs);
    if let Some(w) = &watchdog {
        w.disarm();
    }
    let mut done = done.map_err(|e| match cluster {
        Some(_) if format!("{e:#}").contains("all-reduce") => e.context(format!(
            "node {rank}: lost node(s) {} (stopped, or the network between us failed); \
             stopping too, node 0's last checkpoint is kept",
            others_ranks.join(", ")
        )),
        _ => e,
    })?;
    let (first, outcome) = done.swap_remove(0);
    if rank == 0 {
        first.finish(outcome)
    } else {
        Ok(first.into_summary(outcome))
    }
}

/// Locks an existing run directory and repairs what a crash left in it (a checkpoint set aside,
/// half-written folders, temp files), so the plan reads a whole directory; `None` for a
/// directory that does not exist yet: [`lock_new`] creates and locks it once the plan has
/// checked everything.
fn lock_existing(run: &std::path::Path) -> Result<Option<RunLock>> {
    if !run.is_dir() {
        return Ok(None);
    }
    let lock = RunLock::acquire(run)?;
    recover_after_crash(run);
    Ok(Some(lock))
}

/// The lock [`lock_existing`] took, or a new one on a directory created now.
fn lock_new(lock: Option<RunLock>, run: &std::path::Path) -> Result<RunLock> {
    match lock {
        Some(lock) => Ok(lock),
        None => RunLock::acquire(run),
    }
}

/// What every node must agree on: the config, the shard (size and count), the step the run
/// starts from, and `--max-steps`/`--max-images` (each node stops at them without a vote, so
/// nodes with different counts would leave the others waiting in an all-reduce).
#[cfg(feature = "parallel")]
fn run_fingerprint(plan: &RunPlan, shard: &Shard, devices: usize, opts: &TrainOptions) -> u64 {
    let step = plan.resume.as_ref().map_or(0, |(_, s)| s.step);
    let text = format!(
        "{}|{}|{}x{}|{:016x}|{}|{}|{:?}|{:?}",
        plan.cfg.to_toml(),
        shard.len(),
        shard.height(),
        shard.width(),
        shard.meta().payload_checksum,
        step,
        devices,
        opts.max_steps,
        opts.max_images,
    );
    xxhash_rust::xxh3::xxh3_64(text.as_bytes())
}

/// What [`plan_run`] decided: resume from a checkpoint (with its state) or start anew, with
/// the config to train with and the epoch's batches.
pub struct RunPlan {
    pub(crate) resume: Option<(CheckpointInfo, TrainState)>,
    /// No preset or config was given: `cfg` is the recommended preset for the shard's size.
    pub(crate) preset_by_size: bool,
    pub(crate) cfg: TrainConfig,
    pub(crate) train_ids: Vec<usize>,
    pub(crate) batches_per_epoch: usize,
}

/// Decides resume-or-start and resolves the config (the run's own when resuming, else the one
/// asked for; then `--epochs` / `--minutes`), refusing anything that does not fit the shard or
/// the run. Touches nothing on disk.
pub fn plan_run(opts: &TrainOptions, shard: &Shard) -> Result<RunPlan> {
    let resume = if opts.new {
        None
    } else {
        usable_checkpoint(&opts.run)?
    };
    if let Some((_, state)) = &resume {
        check_resume_matches(opts, state)?;
    } else if !opts.new {
        refuse_to_overwrite_history(&opts.run)?;
    }
    let preset_by_size = resume.is_none() && opts.config.is_none();
    let mut cfg = match (&resume, &opts.config) {
        (Some((_, state)), _) => state.config.clone(),
        (None, Some(cfg)) => cfg.clone(),
        (None, None) => {
            let mut cfg = TrainConfig::preset(TrainConfig::recommended_preset(
                shard.height(),
                shard.width(),
            )?)?;
            if let Some(b) = opts.asked_batch {
                cfg.batch = b;
            }
            if let Some(s) = opts.asked_seed {
                cfg.seed = s;
            }
            cfg
        }
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
        preset_by_size,
        cfg,
        train_ids,
        batches_per_epoch: nb,
    })
}

/// The newest checkpoint training can resume from: its files match their checksums, its state
/// reads, and its networks and optimizers load (on the CPU, whatever the training device). Each
/// newer one that fails is skipped with a warning naming it and the damage.
fn usable_checkpoint(run: &std::path::Path) -> Result<Option<(CheckpointInfo, TrainState)>> {
    type Cpu = crate::device::CpuBackend;
    for ckpt in checkpoint::list(run)?.into_iter().rev() {
        let usable = checkpoint::verify(&ckpt.dir)
            .and_then(|()| checkpoint::load_state(&ckpt.dir))
            .and_then(|state| {
                checkpoint::load_gan::<Cpu>(&ckpt.dir, &state.config, &Default::default())?;
                Ok(state)
            });
        match usable {
            Ok(state) => return Ok(Some((ckpt, state))),
            Err(e) => eprintln!("warning: {e:#}; falling back to an older checkpoint"),
        }
    }
    Ok(None)
}

/// A run directory with an earlier run's history (checkpoints, metrics, probes, grids) but no
/// usable checkpoint is not started over without `--new`: that would delete the history.
fn refuse_to_overwrite_history(run: &std::path::Path) -> Result<()> {
    let found = facegan_rundir::history::found(run);
    if found.is_empty() {
        return Ok(());
    }
    bail!(
        "{}: this run directory holds an earlier run but no checkpoint to resume from \
         (see the warnings above); nothing was changed. It holds:\n  {}\n\
         `--new` would delete these and start over; or train into another --run.",
        run.display(),
        found.join("\n  ")
    )
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
    if let Some(asked) = &opts.config {
        if state.config.preset != asked.preset || state.config.model != asked.model {
            bail!(
                "{}: this run was trained with preset {:?}, not {:?}; pass --new to start over or use another --run",
                run.display(),
                state.config.preset,
                asked.preset
            );
        }
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
