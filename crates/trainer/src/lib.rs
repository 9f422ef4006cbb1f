//! Stage 2 of the pipeline: train a GAN preset on a shard and write a run directory.
//!
//! The public face is small: [`train`] (and [`train_parallel`] on several devices) with
//! [`TrainOptions`], returning a [`TrainSummary`]; the building blocks tests and benchmarks
//! reach for are public modules.
//!
//! The training loop, in the order a call runs it (private):
//! - `run`: `train()` as named steps: lock, plan, session, finish.
//! - `plan`: resume-or-start and the config, checked before anything on disk changes.
//! - `session`: one training process; `session/mod.rs` is the loop (epochs of steps, stats
//!   sync, NaN guard, probes, stops, each epoch's metrics row, grid, plots and checkpoint),
//!   `session/start.rs` how it begins, `session/probe.rs` the live quality probe.
//! - `data_parallel`: the same on several devices, one session per device.
//! - `run_dir`: crash recovery at start and `train.log` lines; `artifacts`: the progress GIF,
//!   loss and quality charts; `metrics_csv`: the rows of `metrics.csv`.
//!
//! Building blocks (public):
//! - [`config`]: the resolved training config (`config.toml`), re-exported from `facegan_rundir`.
//! - [`data`]: per-epoch shuffled batches from the memory-mapped shard, prefetched on a thread.
//! - [`gan`]: the networks, optimizers, losses and the two-pass training step; [`adam`]: Adam
//!   with Burn's or Keras's epsilon placement; [`augment`]: DiffAugment; [`ema`]: the moving
//!   average of G; [`r1`]: the R1 gradient penalty.
//! - [`quality`]: the live quality curve (SWD against the holdout every `eval_every` images).
//! - [`checkpoint`]: a `Gan` as checkpoint files and back (the folders are `facegan_rundir`'s).
//! - [`parallel`]: data parallelism on Burn's collective engine: peers, batch rows, the
//!   gradient all-reduce, a supervisor that stops every peer when one fails.
//! - [`device`]: CPU (flex) or CUDA backends; [`cubecl_cache`]: the CUDA kernel cache.
//! - [`faults`]: the test seam that injects faults into a run.
//!
//! Benchmarks and the check against the tutorial's Keras code live in `facegan-bench`.

// CI fails on a dependency the crate no longer uses (unit-test builds also see dev-dependencies).
#![cfg_attr(not(test), deny(unused_crate_dependencies))]

pub mod adam;
mod artifacts;
pub mod augment;
pub mod checkpoint;
pub mod cubecl_cache;
pub mod data;
#[cfg(feature = "parallel")]
mod data_parallel;
pub mod device;
pub mod ema;
pub mod faults;
pub mod gan;
mod metrics_csv;
mod options;
pub mod parallel;
mod plan;
pub mod quality;
pub mod r1;
mod run;
mod run_dir;
mod session;

use std::sync::atomic::AtomicBool;

pub use config::{LossKind, StepKind, TrainConfig};
#[cfg(feature = "parallel")]
pub use data_parallel::train_parallel;
/// The training config lives with the run directory's format (`facegan_rundir::config`).
pub use facegan_rundir::config;
pub use facegan_rundir::CheckpointChoice;
pub use faults::Faults;
pub use metrics_csv::EpochMetrics;
pub use options::{TrainOptions, TrainOutcome, TrainSummary, GRID_SIZE, TIME_BOUND_EPOCHS};
pub use plan::check_resumable;
pub use run::train;

/// Set by the CLI's Ctrl-C handler: the trainer finishes its step, checkpoints and returns.
pub static STOP: AtomicBool = AtomicBool::new(false);
