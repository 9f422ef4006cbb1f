//! `state.json`: where training stands in a checkpoint ([`TrainState`]), and finding a run's
//! checkpoint by what it holds (the best one, the one after a given epoch).

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{best_dir, kept_dir, list, verify, CheckpointInfo, DONE_MARKER};
use crate::config::TrainConfig;

/// Running sums of one epoch's per-step statistics (so a mid-epoch resume reports the same).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochSums {
    pub steps: u64,
    pub loss_d: f64,
    pub loss_g: f64,
    pub d_real: f64,
    pub d_fake: f64,
    pub seconds: f64,
}

/// Where training stands; `state.json` in each checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    pub tool_version: String,
    /// Epoch in progress (0-based); equals `config.epochs` when training is complete.
    pub epoch: usize,
    /// Next batch index within `epoch`.
    pub batch_in_epoch: usize,
    /// Global steps done.
    pub step: u64,
    pub images_seen: u64,
    pub epoch_sums: EpochSums,
    /// The fixed noise behind every sample grid, `[64, latent]` row-major.
    pub fixed_noise: Vec<f32>,
    pub config: TrainConfig,
    /// The shard the run trains on (eval's default `--data`).
    #[serde(default)]
    pub data_path: String,
    /// Training wall time so far, in seconds, across resumes (what `--minutes` counts).
    #[serde(default)]
    pub train_seconds: f64,
    /// The image count at which the next quality probe is due.
    #[serde(default)]
    pub next_probe_at: u64,
    /// The best quality probe so far (lowest SWD), whose weights are in `checkpoints/best/`.
    #[serde(default)]
    pub best: Option<BestScore>,
}

/// The best quality score of a run and when it was reached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BestScore {
    pub swd: f64,
    pub step: u64,
    pub images_seen: u64,
}

/// Reads a finished checkpoint's `state.json`.
pub fn load_state(dir: &Path) -> Result<TrainState> {
    if !dir.join(DONE_MARKER).is_file() {
        bail!(
            "{}: checkpoint is incomplete (no DONE marker)",
            dir.display()
        );
    }
    let p = dir.join("state.json");
    let text =
        std::fs::read_to_string(&p).with_context(|| format!("{}: cannot read", p.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: bad checkpoint state", p.display()))
}

/// A run's checkpoint by the number of completed epochs it holds (e.g. 3 = after epoch 3); an
/// error when that checkpoint fails its checksums.
pub fn by_epoch(run: &Path, epoch: usize) -> Result<Option<CheckpointInfo>> {
    for c in list(run)?.into_iter().rev() {
        let s = load_state(&c.dir)?;
        if s.epoch == epoch && s.batch_in_epoch == 0 {
            verify(&c.dir)?;
            return Ok(Some(c));
        }
    }
    Ok(None)
}

/// The checkpoint kept at `images` images shown (`train --keep-at`), when it is complete and
/// passes its checksums.
pub fn kept(run: &Path, images: u64) -> Result<Option<CheckpointInfo>> {
    let dir = kept_dir(run, images);
    if !dir.join(DONE_MARKER).is_file() {
        return Ok(None);
    }
    verify(&dir)?;
    let state = load_state(&dir)?;
    Ok(Some(CheckpointInfo {
        dir,
        step: state.step,
    }))
}

/// The run's best checkpoint, when it has a complete one.
pub fn best(run: &Path) -> Option<CheckpointInfo> {
    let dir = best_dir(run);
    let state = load_state(&dir).ok()?;
    if let Err(e) = verify(&dir) {
        eprintln!("warning: {e:#}; ignoring the best checkpoint");
        return None;
    }
    Some(CheckpointInfo {
        dir,
        step: state.step,
    })
}
