//! Stage 2 of the pipeline: train a GAN preset on a shard and write a run directory.
//!
//! - [`config`]: the resolved training config (`config.toml`).
//! - [`data`]: per-epoch shuffled batches from the memory-mapped shard, prefetched on a thread.
//! - [`gan`]: the networks, optimizers, losses and the two-pass training step.
//! - [`augment`]: DiffAugment (colour, translation, cutout), differentiable.
//! - [`ema`]: the exponential moving average of G's weights.
//! - [`quality`]: the live quality curve (SWD against the holdout every `eval_every` images).
//! - [`r1`]: the R1 gradient penalty, through a nested autodiff backend.
//! - [`run`]: the loop: resume, epochs, metrics, grids, checkpoints, guards.
//! - [`checkpoint`]: atomic checkpoint folders with a `DONE` marker.
//! - [`artifacts`]: grids, GIF, loss plot, `metrics.csv`, `train.log`.
//! - [`device`]: CPU (flex) or CUDA backends.

pub mod adam;
pub mod artifacts;
pub mod augment;
pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod cubecl_cache;
pub mod data;
pub mod device;
pub mod ema;
pub mod gan;
pub mod quality;
pub mod r1;
pub mod run;
pub mod seed_check;

use std::sync::atomic::AtomicBool;

pub use config::{LossKind, StepKind, TrainConfig};
pub use run::{train, TrainOptions, TrainOutcome, TrainSummary};

/// The version string written into checkpoints.
pub const TOOL_VERSION: &str = concat!("facegan ", env!("CARGO_PKG_VERSION"));

/// Set by the CLI's Ctrl-C handler: the trainer finishes its step, checkpoints and returns.
pub static STOP: AtomicBool = AtomicBool::new(false);
