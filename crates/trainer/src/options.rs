//! How `facegan train` was called ([`TrainOptions`]) and how a call ended ([`TrainOutcome`],
//! [`TrainSummary`]): the trainer's public face, plain data.

use std::path::PathBuf;

use crate::checkpoint::TrainState;
use crate::config::TrainConfig;
use crate::faults::Faults;
use crate::metrics_csv::EpochMetrics;

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
    /// `config` came from a `--config` file, whose networks are asked for explicitly; `false`:
    /// from a `--preset` name (or none), which a resumed run may have begun with an older
    /// definition of.
    pub config_from_file: bool,
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
    /// Keep a checkpoint for good at each of these image counts (`--keep-at`): the first step
    /// at or past the count writes `checkpoints/images_<count>/`, which rotation never removes.
    pub keep_at_images: Vec<u64>,
    /// Start a new run from another run's checkpoint (`--init-from RUN[:CHECKPOINT]`): its G,
    /// EMA and D, with fresh optimizers; the model must be the same.
    pub init_from: Option<(PathBuf, crate::CheckpointChoice)>,
    /// Faults a test injects (none in normal use; see [`Faults`]).
    pub faults: Faults,
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
