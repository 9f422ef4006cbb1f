//! How a [`Session`] begins: a run's leader loads its checkpoint or starts anew (clearing what
//! an earlier run left only when asked to), writes `config.toml`, reads back the metrics and
//! quality curve up to the checkpoint and prepares the probe; the peers of a data-parallel run
//! get the same networks and state and write nothing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use burn::tensor::backend::AutodiffBackend;
use facegan_common::TOOL_VERSION;
use facegan_shard::Shard;

use super::probe::announce_probe;
use super::Session;
use crate::checkpoint::{self, CheckpointInfo, EpochSums, TrainState};
use crate::config::TrainConfig;
use crate::gan::{noise, Gan};
use crate::metrics_csv::{read_metrics, EpochMetrics};
use crate::options::{TrainOptions, GRID_SIZE};
use crate::parallel::{Peer, Watchdog};
use crate::plan::RunPlan;
use crate::quality::{self, ProbeSchedule, QualityPoint, QualityProbe};
use crate::run_dir::{clear_run, print_and_log};

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
        let RunPlan {
            resume,
            init,
            cfg,
            train_ids,
            batches_per_epoch,
            note,
        } = plan;
        if resume.is_none() {
            // A new run: first remove what an earlier run left in the directory.
            clear_run(run)?;
        }
        let (gan, mut state, resumed_from) = load_or_new::<B>(resume, init, &cfg, device)?;
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
            train_ids.len(),
            batches_per_epoch,
        );
        if opts.config.is_none() && resumed_from.is_none() {
            announce_preset_by_size(run, &cfg);
        }
        if let Some(note) = note {
            print_and_log(run, &format!("note: {note}"));
        }
        let curve: Vec<QualityPoint> = quality::read_quality(&run.join("quality.csv"))?
            .into_iter()
            .filter(|q| q.images_seen <= state.images_seen)
            .collect();
        keep_the_saved_best(run, &mut state);
        let schedule = ProbeSchedule::new(cfg.eval_every, cfg.eval_time_share);
        let loaded = (gan, state, resumed_from);
        let mut session = Self::assemble(
            opts,
            shard,
            device,
            cfg,
            train_ids,
            batches_per_epoch,
            loaded,
        );
        (session.metrics, session.curve) = (metrics, curve);
        session.schedule = schedule;
        // The probe's holdout pyramids and floor take minutes at 96x80: a rerun with nothing
        // left to train goes without them.
        if session.cfg.eval_every > 0 && !session.limit_reached() {
            session.probe = QualityProbe::new::<B::InnerBackend>(
                &session.shard,
                session.cfg.model.latent,
                session.cfg.eval_images,
                device,
            );
            if let Some(p) = &session.probe {
                announce_probe(run, p, session.cfg.eval_every);
            }
        }
        Ok(session)
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
        let mut loaded = load_or_new::<B>(plan.resume, plan.init, &plan.cfg, device)?;
        loaded.0.peer = peer;
        Ok(Self::assemble(
            opts,
            shard,
            device,
            plan.cfg,
            plan.train_ids,
            plan.batches_per_epoch,
            loaded,
        ))
    }

    /// A session around the networks, state and checkpoint folder [`load_or_new`] gave
    /// (`loaded`), keeping no metrics, curve or probe (what [`Session::start`] adds for the
    /// run's leader), its clock starting now.
    fn assemble(
        opts: &'a TrainOptions,
        shard: Arc<Shard>,
        device: &'a B::Device,
        cfg: TrainConfig,
        train_ids: Vec<usize>,
        batches_per_epoch: usize,
        loaded: (Gan<B>, TrainState, Option<PathBuf>),
    ) -> Self {
        let (gan, state, resumed_from) = loaded;
        let budget_s = cfg.minutes.map(|m| m * 60.0);
        Session {
            opts,
            run: opts.run.as_path(),
            device,
            shard,
            schedule: ProbeSchedule::new(0, 1.0),
            train_ids,
            batches_per_epoch,
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
        }
    }

    /// Feeds `watchdog` after every step from now on.
    pub fn set_heartbeat(&mut self, watchdog: Arc<Watchdog>) {
        self.heartbeat = Some(watchdog);
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
            schedule: ProbeSchedule::new(0, 1.0),
            clock: self.clock,
            seconds_before: self.seconds_before,
            budget_s: self.budget_s,
            budget_hit: self.budget_hit,
            heartbeat: None,
        }
    }
}

/// The networks and state to train from: the checkpoint's (with the resolved config), or new
/// ones, from the `--init-from` source's networks (`init`) or the config's seed. Also returns
/// the checkpoint folder resumed from. Touches nothing on disk (a new run's leader clears the
/// run directory first, see [`Session::start`]).
fn load_or_new<B: AutodiffBackend>(
    resume: Option<(CheckpointInfo, TrainState)>,
    init: Option<CheckpointInfo>,
    cfg: &TrainConfig,
    device: &B::Device,
) -> Result<(Gan<B>, TrainState, Option<PathBuf>)> {
    Ok(match (resume, init) {
        (Some((ckpt, mut state)), _) => {
            state.config = cfg.clone();
            let gan = checkpoint::load_gan::<B>(&ckpt.dir, &state.config, device)?;
            (gan, state, Some(ckpt.dir))
        }
        (None, Some(source)) => (
            checkpoint::load_networks_fresh_optimizers::<B>(&source.dir, cfg, device)?,
            new_state::<B>(cfg, device),
            None,
        ),
        (None, None) => (
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

/// Which preset a run without `--preset` or `--config` trains, printed and logged.
fn announce_preset_by_size(run: &Path, cfg: &TrainConfig) {
    print_and_log(
        run,
        &format!(
            "no --preset given: training {}, the recommended preset for {}x{} images (--preset seed trains the tutorial's networks)",
            cfg.preset, cfg.model.height, cfg.model.width
        ),
    );
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
            "new run {}: preset {}, {} train images, {} batches of {} per epoch (last partial batch dropped), {} epochs{}",
            run.display(),
            cfg.preset,
            train_images,
            nb,
            cfg.batch,
            cfg.epochs,
            match &cfg.grow {
                Some(g) => format!("; grown: {}", g.describe()),
                None => String::new(),
            }
        ),
    };
    print_and_log(run, &line);
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
