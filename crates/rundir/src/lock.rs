//! The exclusive lock a training process holds on its run directory (`RUN/.lock`).

use std::path::Path;

use anyhow::{bail, Context, Result};

/// An exclusive lock on a run directory, held while this value lives; the OS releases it when
/// the process dies, so a killed run never leaves the directory locked.
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
