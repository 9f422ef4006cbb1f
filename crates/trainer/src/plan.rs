//! Planning a run before anything on disk is touched: resume from the newest usable checkpoint
//! or start anew (refusing to start over a run's history without `--new`), and the config to
//! train with, checked against the shard.

use std::path::Path;

use anyhow::{bail, Context, Result};
use facegan_shard::Shard;

use crate::checkpoint::{self, CheckpointInfo, TrainState};
use crate::config::TrainConfig;
use crate::data::{batches_per_epoch, train_indices};
use crate::options::TrainOptions;

/// What [`plan_run`] decided: resume from a checkpoint (with its state) or start anew, with
/// the config to train with and the epoch's batches.
pub(crate) struct RunPlan {
    pub(crate) resume: Option<(CheckpointInfo, TrainState)>,
    /// A new run's source checkpoint (`--init-from`): its networks start the run.
    pub(crate) init: Option<CheckpointInfo>,
    pub(crate) cfg: TrainConfig,
    pub(crate) train_ids: Vec<usize>,
    pub(crate) batches_per_epoch: usize,
    /// What the session prints and logs about the plan before it trains (a run resumed by its
    /// preset's name whose networks are not that preset's today).
    pub(crate) note: Option<String>,
}

/// Decides resume-or-start and resolves the config (the run's own when resuming, else the one
/// asked for; then `--epochs` / `--minutes`), refusing anything that does not fit the shard or
/// the run. Touches nothing on disk.
pub(crate) fn plan_run(opts: &TrainOptions, shard: &Shard) -> Result<RunPlan> {
    let resume = if opts.new {
        None
    } else {
        usable_checkpoint(&opts.run)?
    };
    let mut note = None;
    if let Some((_, state)) = &resume {
        note = check_resume_matches(opts, state)?;
    } else if !opts.new {
        refuse_to_overwrite_history(&opts.run)?;
    }
    let mut cfg = match (&resume, &opts.config) {
        (Some((_, state)), _) => state.config.clone(),
        (None, Some(cfg)) => cfg.clone(),
        (None, None) => TrainConfig::preset(TrainConfig::recommended_preset(
            shard.height(),
            shard.width(),
        )?)?
        .with_overrides(opts.asked_batch, opts.asked_seed),
    };
    if let Some(e) = opts.epochs_override {
        cfg.epochs = e;
    }
    if let Some(m) = opts.minutes_override {
        cfg.minutes = Some(m);
    }
    cfg.validate()?;
    cfg.check_shard(shard)?;
    let init = match (&opts.init_from, &resume) {
        (None, _) => None,
        (Some(_), Some((_, state))) if state.config.init_from.is_some() => None,
        (Some(_), Some(_)) => bail!(
            "{}: this run started from scratch and has checkpoints; --init-from starts a new \
             run: pass --new to start over from the source, or use another --run",
            opts.run.display()
        ),
        (Some((source, choice)), None) => {
            let (info, state) = init_source(source, *choice, &cfg)?;
            cfg.init_from = Some(format!(
                "{} (step {}, {} images shown, preset {})",
                info.dir.display(),
                state.step,
                state.images_seen,
                state.config.preset
            ));
            Some(info)
        }
    };
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
        init,
        cfg,
        train_ids,
        batches_per_epoch: nb,
        note,
    })
}

/// The checkpoint `--init-from` names, refused unless its model is `cfg`'s (the message names
/// each setting that differs) and its networks load as the run will load them.
fn init_source(
    source: &Path,
    choice: facegan_rundir::CheckpointChoice,
    cfg: &TrainConfig,
) -> Result<(CheckpointInfo, TrainState)> {
    let (info, state) = facegan_rundir::find_checkpoint(source, choice)
        .with_context(|| format!("--init-from {}", source.display()))?;
    let differ = facegan_rundir::config::model_differences(&state.config.model, &cfg.model);
    if !differ.is_empty() {
        bail!(
            "--init-from {}: its model differs from this run's ({}); fine-tuning needs the same \
             networks and image size: train with the source's preset ({}) on a shard of its size",
            info.dir.display(),
            differ.join("; "),
            state.config.preset
        );
    }
    // What the run will load (the networks, not the source's optimizers), on the CPU.
    type Cpu = crate::device::CpuBackend;
    checkpoint::load_networks_fresh_optimizers::<Cpu>(&info.dir, cfg, &Default::default())
        .with_context(|| format!("--init-from {}", info.dir.display()))?;
    Ok((info, state))
}

/// The newest checkpoint training can resume from: its files match their checksums, its state
/// reads, and its networks and optimizers load (on the CPU, whatever the training device). Each
/// newer one that fails is skipped with a warning naming it and the damage.
fn usable_checkpoint(run: &Path) -> Result<Option<(CheckpointInfo, TrainState)>> {
    type Cpu = crate::device::CpuBackend;
    checkpoint::latest_where(run, |ckpt| {
        let state = checkpoint::load_state(&ckpt.dir)?;
        checkpoint::load_gan::<Cpu>(&ckpt.dir, &state.config, &Default::default())?;
        Ok(state)
    })
}

/// A run directory with an earlier run's history (checkpoints, metrics, probes, grids) but no
/// usable checkpoint is not started over without `--new`: that would delete the history.
fn refuse_to_overwrite_history(run: &Path) -> Result<()> {
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
pub fn check_resumable(run: &Path) -> Result<()> {
    if checkpoint::latest(run)?.is_none() {
        bail!(
            "{}: --resume given but the run has no checkpoint",
            run.display()
        );
    }
    Ok(())
}

/// A resumed run keeps its preset, its networks, `--batch` and `--seed`: a different one asked
/// for explicitly (a `--config` file's networks included) is refused rather than ignored.
/// Asking for the run's own preset by name (`--preset`) when the run's networks are not today's
/// preset's (the preset changed in a newer facegan, or the run began from a config file on that
/// preset) resumes the run as it began, with a note naming the differences (returned for the
/// session to print).
fn check_resume_matches(opts: &TrainOptions, state: &TrainState) -> Result<Option<String>> {
    let run = &opts.run;
    let mut note = None;
    if let Some(asked) = &opts.config {
        if state.config.preset != asked.preset {
            bail!(
                "{}: this run was trained with preset {:?}, not {:?}; pass --new to start over or use another --run",
                run.display(),
                state.config.preset,
                asked.preset
            );
        }
        if state.config.model != asked.model {
            let differ =
                facegan_rundir::config::model_differences(&state.config.model, &asked.model)
                    .join("; ");
            let todays_preset = TrainConfig::preset(&asked.preset).ok();
            if !opts.config_from_file && todays_preset.is_some_and(|p| p.model == asked.model) {
                note = Some(format!(
                    "this run's networks differ from today's preset {p:?} ({differ}: this run's \
                     vs the preset's); the run goes on with the networks it began with (--new \
                     starts over with today's {p})",
                    p = asked.preset
                ));
            } else {
                bail!(
                    "{}: this run's networks differ from the config asked for ({differ}: this \
                     run's vs asked); pass --new to start over with it or use another --run",
                    run.display()
                );
            }
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
    Ok(note)
}
