//! Stage 2 of the pipeline: train a GAN preset on a shard and write a run directory.
//!
//! - [`config`]: the resolved training config (`config.toml`), re-exported from `facegan_rundir`.
//! - [`data`]: per-epoch shuffled batches from the memory-mapped shard, prefetched on a thread.
//! - [`gan`]: the networks, optimizers, losses and the two-pass training step.
//! - [`augment`]: DiffAugment (colour, translation, cutout), differentiable.
//! - [`ema`]: the exponential moving average of G's weights.
//! - [`quality`]: the live quality curve (SWD against the holdout every `eval_every` images).
//! - [`r1`]: the R1 gradient penalty, through a nested autodiff backend.
//! - [`run`]: `train()`: plan the run (resume or start), lock it, then a [`session`];
//!   `train_parallel()`: the same on several devices, one [`session`] per device.
//! - [`parallel`]: data parallelism on Burn's collective engine: peers, batch rows, the
//!   gradient all-reduce, a supervisor that stops every peer when one fails.
//! - [`session`]: one training process: epochs of steps, stats sync, NaN guard, probes, stops,
//!   each epoch's metrics row, grid, plots and checkpoint.
//! - [`run_dir`]: the run directory's lock, clean-up and `train.log` lines.
//! - [`checkpoint`]: atomic checkpoint folders with a `DONE` marker.
//! - [`metrics_csv`]: the rows of `metrics.csv`.
//! - [`artifacts`]: the progress GIF, loss and quality charts, `train.log`.
//! - [`device`]: CPU (flex) or CUDA backends.
//! - [`cubecl_cache`]: where the CUDA backend keeps its compiled kernels.
//! - [`adam`]: Adam with Burn's or Keras's epsilon placement (the `seed` presets use Keras's).
//! - [`bench`]: `bench-train`, `warmup` and the per-op profile.
//! - [`seed_check`]: the `seed` step dumped for the Keras oracle (`make check-seed`).

// CI fails on a dependency the crate no longer uses (unit-test builds also see dev-dependencies).
#![cfg_attr(not(test), deny(unused_crate_dependencies))]

pub mod adam;
pub mod artifacts;
pub mod augment;
pub mod bench;
pub mod checkpoint;
pub mod cubecl_cache;
pub mod data;
pub mod device;
pub mod ema;
pub mod gan;
pub mod metrics_csv;
pub mod parallel;
pub mod quality;
pub mod r1;
pub mod run;
pub mod run_dir;
pub mod seed_check;
pub mod session;

use std::sync::atomic::AtomicBool;

pub use config::{LossKind, StepKind, TrainConfig};
/// The training config lives with the run directory's format (`facegan_rundir::config`).
pub use facegan_rundir::config;
#[cfg(feature = "parallel")]
pub use run::train_parallel;
pub use run::{train, TrainOptions, TrainOutcome, TrainSummary};

/// Set by the CLI's Ctrl-C handler: the trainer finishes its step, checkpoints and returns.
pub static STOP: AtomicBool = AtomicBool::new(false);
