//! Checkpoint folders under `RUN/checkpoints/`: `ckpt_<step>/` (the newest few, rotated),
//! `best/` (the best quality probe so far, never rotated out) and `images_<count>/` (kept for
//! good at image counts asked for with `train --keep-at`).
//!
//! A checkpoint is written so that a crash, a full disk or any failed call leaves the earlier
//! checkpoints as they were: the files go into a temp folder (`.tmp-NAME-PID`), each written
//! whole and synced; `checksums.json` holds the checksum of the bytes *meant* to be written;
//! every file is read back and checked against it; the `DONE` marker comes last; then the folder
//! is renamed into place. A folder it replaces (`best`, or a numbered one written again) is
//! first renamed aside (`.aside-NAME`), never deleted before the new one is in place;
//! [`recover`] puts an aside folder back when a crash left it without its replacement.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::disk::Disk;

/// The marker file that makes a checkpoint folder count (written last).
pub const DONE_MARKER: &str = "DONE";
/// The per-file checksum list in a checkpoint folder.
pub const CHECKSUMS_FILE: &str = "checksums.json";
/// The best checkpoint's folder under `checkpoints/`.
pub const BEST_DIR: &str = "best";
/// Numbered checkpoint folders are `ckpt_<step, 9 digits>`.
pub const PREFIX: &str = "ckpt_";
/// Checkpoints kept at an image count are `images_<count asked for, 9 digits>`.
pub const KEPT_PREFIX: &str = "images_";
/// A checkpoint being written (`.tmp-NAME-PID`).
pub const TMP_PREFIX: &str = ".tmp-";
/// A checkpoint being replaced (`.aside-NAME`), kept until its replacement is in place.
pub const ASIDE_PREFIX: &str = ".aside-";

/// A finished checkpoint on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointInfo {
    pub dir: PathBuf,
    pub step: u64,
}

pub fn checkpoints_dir(run: &Path) -> PathBuf {
    run.join("checkpoints")
}

/// The folder of the numbered checkpoint after global step `step`.
pub fn numbered_dir(run: &Path, step: u64) -> PathBuf {
    checkpoints_dir(run).join(format!("{PREFIX}{step:09}"))
}

/// The best checkpoint's folder.
pub fn best_dir(run: &Path) -> PathBuf {
    checkpoints_dir(run).join(BEST_DIR)
}

/// The folder of the checkpoint kept at `images` images shown (`train --keep-at`): the first
/// step at or past that count.
pub fn kept_dir(run: &Path, images: u64) -> PathBuf {
    checkpoints_dir(run).join(format!("{KEPT_PREFIX}{images:09}"))
}

/// The image counts of a run's finished (`DONE`) kept checkpoints, smallest first.
pub fn kept_counts(run: &Path) -> Vec<u64> {
    let mut out: Vec<u64> = std::fs::read_dir(checkpoints_dir(run))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join(DONE_MARKER).is_file())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix(KEPT_PREFIX)?.parse().ok()
        })
        .collect();
    out.sort_unstable();
    out
}

/// Finished (`DONE`) numbered checkpoints of a run, oldest first. Their files are not checked:
/// see [`verify`] and [`latest`].
pub fn list(run: &Path) -> Result<Vec<CheckpointInfo>> {
    let dir = checkpoints_dir(run);
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(out);
    };
    for e in entries {
        let e = e.with_context(|| format!("{}: cannot list", dir.display()))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(step) = name
            .strip_prefix(PREFIX)
            .and_then(|s| s.parse::<u64>().ok())
        {
            if e.path().join(DONE_MARKER).is_file() {
                out.push(CheckpointInfo {
                    dir: e.path(),
                    step,
                });
            }
        }
    }
    out.sort_by_key(|c| c.step);
    Ok(out)
}

/// The newest finished checkpoint whose files match their checksums. A newer one that does not
/// (a flipped or truncated file, a file missing) is skipped with a warning on stderr naming it.
pub fn latest(run: &Path) -> Result<Option<CheckpointInfo>> {
    Ok(latest_where(run, |_| Ok(()))?.map(|(c, ())| c))
}

/// The newest finished checkpoint whose files match their checksums and that passes `usable`
/// (which may read it further, e.g. load its networks), with what `usable` returned. Each newer
/// one that fails either is skipped with a warning on stderr naming it and the damage.
pub fn latest_where<T>(
    run: &Path,
    usable: impl Fn(&CheckpointInfo) -> Result<T>,
) -> Result<Option<(CheckpointInfo, T)>> {
    for c in list(run)?.into_iter().rev() {
        match verify(&c.dir).and_then(|()| usable(&c)) {
            Ok(t) => return Ok(Some((c, t))),
            Err(e) => eprintln!("warning: {e:#}; falling back to an older checkpoint"),
        }
    }
    Ok(None)
}

fn checksum(bytes: &[u8]) -> String {
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(bytes))
}

/// Checks every file of a checkpoint against `checksums.json` (xxh3-64 per file). Checkpoints
/// written before checksums existed have none and pass.
pub fn verify(dir: &Path) -> Result<()> {
    verify_with(dir, &mut Disk::real(), false)
}

fn verify_with(dir: &Path, disk: &mut Disk, require_list: bool) -> Result<()> {
    let list = dir.join(CHECKSUMS_FILE);
    let text = match disk.read(&list) {
        Ok(bytes) => bytes,
        Err(_) if !require_list && !list.exists() => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("{}: cannot read", list.display())),
    };
    let sums: BTreeMap<String, String> = serde_json::from_slice(&text).with_context(|| {
        format!(
            "{}: checkpoint is damaged: bad checksum list {CHECKSUMS_FILE}",
            dir.display()
        )
    })?;
    for (name, want) in &sums {
        let bytes = disk.read(&dir.join(name)).with_context(|| {
            format!(
                "{}: checkpoint is damaged: cannot read {name}",
                dir.display()
            )
        })?;
        if &checksum(&bytes) != want {
            bail!(
                "{}: checkpoint is damaged: {name} does not match its checksum",
                dir.display()
            );
        }
    }
    Ok(())
}

/// One file of a checkpoint: its name in the folder and its bytes.
pub struct CheckpointFile<'a> {
    pub name: &'a str,
    pub bytes: &'a [u8],
}

/// Writes the checkpoint folder `final_dir` holding `files` (see the module doc for the order of
/// operations). On any failure the temp folder is removed, a folder set aside is put back, and
/// the error names the checkpoint: the run's earlier checkpoints are untouched.
pub fn write(final_dir: &Path, files: &[CheckpointFile], disk: &mut Disk) -> Result<()> {
    let root = final_dir
        .parent()
        .expect("a checkpoint folder has a parent");
    let name = final_dir
        .file_name()
        .expect("a checkpoint folder has a name")
        .to_string_lossy()
        .into_owned();
    let tmp = root.join(format!("{TMP_PREFIX}{name}-{}", std::process::id()));
    let aside = root.join(format!("{ASIDE_PREFIX}{name}"));
    let result = write_steps(final_dir, root, &tmp, &aside, files, disk);
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
        if aside.is_dir() && !final_dir.exists() {
            let _ = std::fs::rename(&aside, final_dir);
        }
    }
    result.with_context(|| {
        format!(
            "{}: cannot write this checkpoint; the run's earlier checkpoints are untouched",
            final_dir.display()
        )
    })
}

fn write_steps(
    final_dir: &Path,
    root: &Path,
    tmp: &Path,
    aside: &Path,
    files: &[CheckpointFile],
    disk: &mut Disk,
) -> Result<()> {
    let io = |what: &str, p: &Path| format!("{}: cannot {what}", p.display());
    disk.create_dir_all(root)
        .with_context(|| io("create", root))?;
    if tmp.exists() {
        disk.remove_dir_all(tmp)
            .with_context(|| io("remove", tmp))?;
    }
    disk.create_dir_all(tmp)
        .with_context(|| io("create", tmp))?;
    let mut sums = BTreeMap::new();
    for f in files {
        let path = tmp.join(f.name);
        disk.write_file(&path, f.bytes)
            .with_context(|| io("write", &path))?;
        sums.insert(f.name.to_string(), checksum(f.bytes));
    }
    let list = tmp.join(CHECKSUMS_FILE);
    let text = serde_json::to_string_pretty(&sums).expect("a map of strings serializes");
    disk.write_file(&list, text.as_bytes())
        .with_context(|| io("write", &list))?;
    // What is on the disk is what was meant to be written, before it may count.
    verify_with(tmp, disk, true)?;
    let done = tmp.join(DONE_MARKER);
    disk.write_file(&done, b"ok\n")
        .with_context(|| io("write", &done))?;
    disk.sync_dir(tmp).with_context(|| io("sync", tmp))?;
    if final_dir.exists() {
        if aside.exists() {
            disk.remove_dir_all(aside)
                .with_context(|| io("remove", aside))?;
        }
        disk.rename(final_dir, aside)
            .with_context(|| io("set aside", final_dir))?;
    }
    disk.rename(tmp, final_dir)
        .with_context(|| io("rename into place", tmp))?;
    // The new folder is in place and whole: a failure from here on is only a warning (the
    // rename may reach the disk later; an old folder left aside goes at the next start).
    if let Err(e) = disk.sync_dir(root) {
        eprintln!("warning: {}: cannot sync: {e}", root.display());
    }
    if aside.exists() {
        if let Err(e) = disk.remove_dir_all(aside) {
            eprintln!("warning: {}: cannot remove: {e}", aside.display());
        }
    }
    Ok(())
}

/// Keeps the newest `keep` numbered checkpoints and removes older ones. Call it only after a
/// checkpoint has been written (and read back) by [`write`], so the newest one is verified
/// and rotation never removes the last good checkpoint.
pub fn rotate(run: &Path, keep: usize) -> Result<()> {
    let all = list(run)?;
    if all.len() > keep.max(1) {
        for old in &all[..all.len() - keep.max(1)] {
            if let Err(e) = std::fs::remove_dir_all(&old.dir) {
                eprintln!("warning: {}: cannot remove: {e}", old.dir.display());
            }
        }
    }
    Ok(())
}

/// At the start of a run (its lock held, so no live process writes here): puts back a folder
/// that a crash left set aside without its replacement, and removes the temp folders of
/// checkpoint writes that never finished. Says what it did on stderr.
pub fn recover(run: &Path) {
    let root = checkpoints_dir(run);
    let entries: Vec<_> = std::fs::read_dir(&root)
        .into_iter()
        .flatten()
        .flatten()
        .collect();
    for e in &entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(target) = name.strip_prefix(ASIDE_PREFIX) else {
            continue;
        };
        let target = root.join(target);
        let replaced = target.join(DONE_MARKER).is_file() && verify(&target).is_ok();
        if replaced {
            remove_noisily(&e.path(), "the copy it replaced");
        } else {
            let _ = std::fs::remove_dir_all(&target);
            match std::fs::rename(e.path(), &target) {
                Ok(()) => eprintln!(
                    "restored {} from {}, set aside by a run that stopped while replacing it",
                    target.display(),
                    e.path().display()
                ),
                Err(err) => eprintln!("warning: {}: cannot restore: {err}", e.path().display()),
            }
        }
    }
    for e in &entries {
        if e.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
            remove_noisily(&e.path(), "left by a run that stopped mid-checkpoint");
        }
    }
}

fn remove_noisily(path: &Path, why: &str) {
    if !path.exists() {
        return;
    }
    match std::fs::remove_dir_all(path) {
        Ok(()) => eprintln!("removed {}, {why}", path.display()),
        Err(err) => eprintln!("warning: {}: cannot remove: {err}", path.display()),
    }
}
