//! Which checkpoint of a run a command means ([`CheckpointChoice`]: `latest`, `best`, an epoch
//! number or `images:COUNT`) and finding it ([`find_checkpoint`]), with errors that say what
//! to do. Eval, sample, export and `train --init-from` all choose checkpoints this way.

use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::checkpoint::{self, CheckpointInfo};
use crate::state::{self, TrainState};

/// Which checkpoint of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointChoice {
    Latest,
    /// The run's best checkpoint by the trainer's quality probe (`checkpoints/best/`).
    Best,
    /// The checkpoint written after this many completed epochs.
    Epoch(usize),
    /// The checkpoint kept at this many images shown (`train --keep-at`).
    Images(u64),
}

impl CheckpointChoice {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "latest" => return Ok(CheckpointChoice::Latest),
            "best" => return Ok(CheckpointChoice::Best),
            _ => {}
        }
        let usage = || {
            format!("--checkpoint {s:?}: use `latest`, `best`, an epoch number or `images:COUNT` (a count given to train --keep-at)")
        };
        if let Some(count) = s.strip_prefix("images:") {
            return count
                .parse()
                .map(CheckpointChoice::Images)
                .with_context(usage);
        }
        s.parse().map(CheckpointChoice::Epoch).with_context(usage)
    }
}

/// Finds the checkpoint and its state, with errors that say what to do.
pub fn find_checkpoint(
    run: &Path,
    choice: CheckpointChoice,
) -> Result<(CheckpointInfo, TrainState)> {
    if !run.is_dir() {
        bail!(
            "{}: no such run directory (train first: facegan train --run {})",
            run.display(),
            run.display()
        );
    }
    let found = match choice {
        CheckpointChoice::Latest => checkpoint::latest(run)?,
        CheckpointChoice::Best => state::best(run),
        CheckpointChoice::Epoch(e) => state::by_epoch(run, e)?,
        CheckpointChoice::Images(n) => state::kept(run, n)?,
    };
    let Some(info) = found else {
        match choice {
            CheckpointChoice::Latest => bail!("{}: the run has no finished checkpoint yet", run.display()),
            CheckpointChoice::Best => bail!(
                "{}: the run has no best checkpoint (the trainer keeps one when its quality probe is on: eval_every > 0 and a shard with a holdout)",
                run.display()
            ),
            CheckpointChoice::Images(n) => {
                let counts = checkpoint::kept_counts(run);
                let have = if counts.is_empty() {
                    "it has none (train --keep-at COUNT keeps them)".to_string()
                } else {
                    format!(
                        "it has {}",
                        counts
                            .iter()
                            .map(|c| format!("images:{c}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                bail!(
                    "{}: no checkpoint kept at {n} images; {have}",
                    run.display()
                )
            }
            CheckpointChoice::Epoch(e) => {
                let trained = checkpoint::latest(run)?
                    .and_then(|c| state::load_state(&c.dir).ok())
                    .map(|s| s.epoch);
                match trained {
                    Some(t) if e > t => bail!(
                        "{}: no checkpoint after epoch {e}: the run has trained {t} epoch(s)",
                        run.display()
                    ),
                    _ => bail!(
                        "{}: no checkpoint after epoch {e} (only the last few are kept; see {}/checkpoints)",
                        run.display(),
                        run.display()
                    ),
                }
            }
        }
    };
    // `latest`, `best` and `by_epoch` return only checkpoints that pass their checksums.
    let state = state::load_state(&info.dir)?;
    refuse_a_growing_checkpoint(&info, &state)?;
    Ok((info, state))
}

/// A checkpoint of a growing run (progressive growing) from before its full size runs alone:
/// its full-size layers are untrained, so sampling, scoring or exporting it would show noise.
fn refuse_a_growing_checkpoint(info: &CheckpointInfo, state: &TrainState) -> Result<()> {
    let cfg = &state.config;
    let level = cfg.level_at(state.images_seen);
    if level.is_full(&cfg.model) {
        return Ok(());
    }
    let (h, w) = level.size(&cfg.model);
    let grown_at = cfg.grow.as_ref().map_or(0, |g| g.images_to_full_size());
    bail!(
        "{}: this checkpoint ({} images shown) is still growing: it trains at {h}x{w}{}, and the full {}x{} runs alone from {grown_at} images on. Train on past that count, or choose a later checkpoint (its quality.csv scores the smaller sizes)",
        info.dir.display(),
        state.images_seen,
        if level.fading() {
            format!(" (fading in, {:.0}%)", 100.0 * level.alpha)
        } else {
            String::new()
        },
        cfg.model.height,
        cfg.model.width
    )
}
