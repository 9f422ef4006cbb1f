//! `train()`: the whole of a training call, as a short sequence of named steps:
//!
//! 1. Lock an existing run directory and repair what a crash left there
//!    ([`lock_existing`]).
//! 2. [`plan_run`](crate::plan::plan_run): open the shard, decide resume-or-start and resolve
//!    the config; everything is checked before anything in the run directory changes.
//! 3. [`Session::start`]: load the checkpoint or create the networks, read back the metrics and
//!    quality curve up to the checkpoint, prepare the quality probe.
//! 4. [`Session::train_epochs`]: the training loop (`session/mod.rs`).
//! 5. [`Session::finish`]: the last plots and the summary.
//!
//! On several devices, `crate::data_parallel` does the same with one session per device.

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use burn::tensor::backend::AutodiffBackend;
use facegan_shard::Shard;

use crate::options::{TrainOptions, TrainOutcome, TrainSummary};
use crate::plan::plan_run;
use crate::run_dir::{recover_after_crash, RunLock};
use crate::session::Session;

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

/// Locks an existing run directory and repairs what a crash left in it (a checkpoint set aside,
/// half-written folders, temp files), so the plan reads a whole directory; `None` for a
/// directory that does not exist yet: [`lock_new`] creates and locks it once the plan has
/// checked everything.
pub(crate) fn lock_existing(run: &Path) -> Result<Option<RunLock>> {
    if !run.is_dir() {
        return Ok(None);
    }
    let lock = RunLock::acquire(run)?;
    recover_after_crash(run);
    Ok(Some(lock))
}

/// The lock [`lock_existing`] took, or a new one on a directory created now.
pub(crate) fn lock_new(lock: Option<RunLock>, run: &Path) -> Result<RunLock> {
    match lock {
        Some(lock) => Ok(lock),
        None => RunLock::acquire(run),
    }
}
