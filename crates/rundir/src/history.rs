//! What an earlier run left in a run directory: found before anything is overwritten (a run
//! with history and no usable checkpoint is refused without `--new`), removed by `--new`, and
//! the temp files of processes that died mid-write, removed at the next start.

use std::path::Path;

use anyhow::{Context, Result};

use crate::checkpoint::{self, ASIDE_PREFIX, BEST_DIR, KEPT_PREFIX, PREFIX, TMP_PREFIX};

/// The files a training run writes at the top of its directory (besides `checkpoints/` and
/// `samples/`).
pub const RUN_FILES: [&str; 7] = [
    "metrics.csv",
    "train.log",
    "progress.gif",
    "loss.png",
    "config.toml",
    "quality.csv",
    "quality.png",
];

/// What an earlier run left that starting over would delete, one description each (empty for
/// a new or empty directory). `config.toml` and `train.log` alone do not count: a run stopped
/// before its first epoch, probe or checkpoint has nothing else to lose.
pub fn found(run: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let ckpts = checkpoint::checkpoints_dir(run);
    let mut numbered = 0;
    for e in std::fs::read_dir(&ckpts).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(PREFIX) {
            numbered += 1;
        } else if name == BEST_DIR
            || name.starts_with(ASIDE_PREFIX)
            || name.starts_with(KEPT_PREFIX)
        {
            out.push(format!("{}", e.path().display()));
        }
    }
    if numbered > 0 {
        out.push(format!(
            "{numbered} numbered checkpoint folder(s) in {}",
            ckpts.display()
        ));
    }
    for name in ["metrics.csv", "quality.csv"] {
        let p = run.join(name);
        if let Ok(text) = std::fs::read_to_string(&p) {
            let rows = text.lines().count().saturating_sub(1);
            if rows > 0 {
                out.push(format!("{} ({rows} rows)", p.display()));
            }
        }
    }
    let grids = sample_grids(run).len();
    if grids > 0 {
        out.push(format!(
            "{grids} sample grid(s) in {}",
            run.join("samples").display()
        ));
    }
    out
}

fn sample_grids(run: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(run.join("samples"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with("epoch_") && name.ends_with(".png")
        })
        .map(|e| e.path())
        .collect()
}

/// Removes what a previous facegan run left in `run` (for `--new`): only the files and folders
/// facegan writes, so anything else a user keeps there survives.
pub fn clear(run: &Path) -> Result<()> {
    let remove_dir = |p: &Path| {
        std::fs::remove_dir_all(p).with_context(|| format!("{}: cannot remove", p.display()))
    };
    let ckpts = checkpoint::checkpoints_dir(run);
    for e in std::fs::read_dir(&ckpts).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(PREFIX)
            || name.starts_with(TMP_PREFIX)
            || name.starts_with(ASIDE_PREFIX)
            || name.starts_with(KEPT_PREFIX)
            || name == BEST_DIR
        {
            remove_dir(&e.path())?;
        }
    }
    for p in sample_grids(run) {
        let _ = std::fs::remove_file(p);
    }
    // Folders facegan made go too, when nothing else is in them.
    let _ = std::fs::remove_dir(&ckpts);
    let _ = std::fs::remove_dir(run.join("samples"));
    for name in RUN_FILES {
        let _ = std::fs::remove_file(run.join(name));
    }
    Ok(())
}

/// Removes the temp files of atomic writes (`.NAME.tmp-PID`, see `facegan_common::write_atomic`)
/// that a killed process left in the run directory and its `samples/`. Called with the run's
/// lock held, so no live process is writing them.
pub fn remove_stale_temp_files(run: &Path) {
    for dir in [run.to_path_buf(), run.join("samples")] {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.contains(".tmp-") && e.path().is_file() {
                match std::fs::remove_file(e.path()) {
                    Ok(()) => eprintln!(
                        "removed {}, left by a run that stopped mid-write",
                        e.path().display()
                    ),
                    Err(err) => eprintln!("warning: {}: cannot remove: {err}", e.path().display()),
                }
            }
        }
    }
}
