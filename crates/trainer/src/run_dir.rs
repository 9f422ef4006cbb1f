//! Run-directory housekeeping: the exclusive lock a training process holds, removing what an
//! earlier run left for `--new`, removing half-written checkpoint folders of processes that died
//! mid-save, and the `train.log` line writer.

use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::{artifacts, checkpoint};

/// An exclusive lock on a run directory (`RUN/.lock`), held while this value lives; the OS
/// releases it when the process dies, so a killed run never leaves the directory locked.
pub struct RunLock {
    _file: std::fs::File,
}

impl RunLock {
    pub fn acquire(run: &Path) -> Result<RunLock> {
        std::fs::create_dir_all(run)
            .with_context(|| format!("{}: cannot create the run directory", run.display()))?;
        let path = run.join(".lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("{}: cannot open", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(RunLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => bail!(
                "{}: another facegan process is training this run (it holds {}); wait for it or use another --run",
                run.display(),
                path.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("{}: cannot lock", path.display()))
            }
        }
    }
}

/// Prints a line and appends it to the run's `train.log`.
pub fn print_and_log(run: &Path, line: &str) {
    println!("{line}");
    artifacts::log_line(run, line);
}

/// Removes what a previous facegan run left in `run` (for `--new`, or a run directory without a
/// finished checkpoint): only the files and folders facegan writes, so anything else a user
/// keeps there survives.
pub fn clear_run(run: &Path) -> Result<()> {
    let remove_dir = |p: &Path| {
        std::fs::remove_dir_all(p).with_context(|| format!("{}: cannot remove", p.display()))
    };
    let ckpts = checkpoint::checkpoints_dir(run);
    for e in std::fs::read_dir(&ckpts).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("ckpt_") || name.starts_with(".tmp-") || name == checkpoint::BEST_DIR {
            remove_dir(&e.path())?;
        }
    }
    let samples = run.join("samples");
    for e in std::fs::read_dir(&samples).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("epoch_") && name.ends_with(".png") {
            let _ = std::fs::remove_file(e.path());
        }
    }
    // Folders facegan made go too, when nothing else is in them.
    let _ = std::fs::remove_dir(&ckpts);
    let _ = std::fs::remove_dir(&samples);
    for name in [
        "metrics.csv",
        "train.log",
        "progress.gif",
        "loss.png",
        "config.toml",
        "quality.csv",
        "quality.png",
    ] {
        let _ = std::fs::remove_file(run.join(name));
    }
    Ok(())
}

/// Removes the half-written checkpoint folders (`checkpoints/.tmp-*`) of processes that died
/// mid-save. Called with the run's lock held, so no live process is writing one.
pub fn remove_stale_checkpoint_temps(run: &Path) {
    for e in std::fs::read_dir(checkpoint::checkpoints_dir(run))
        .into_iter()
        .flatten()
        .flatten()
    {
        if e.file_name().to_string_lossy().starts_with(".tmp-") {
            match std::fs::remove_dir_all(e.path()) {
                Ok(()) => eprintln!(
                    "removed {}, left by a run that stopped mid-checkpoint",
                    e.path().display()
                ),
                Err(err) => eprintln!("warning: {}: cannot remove: {err}", e.path().display()),
            }
        }
    }
}
