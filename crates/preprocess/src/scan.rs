//! Finding the input's image files: a recursive walk for jpg/jpeg/png names (case-insensitive)
//! that follows symlinks, lists each folder once however it is reached (so symlink loops end),
//! skips FIFOs, sockets and devices, and names each file by its exact `/`-separated path
//! relative to the input. What it passes over (a FIFO, socket or device with an image's name, a
//! dangling link with one, a folder reached a second time) is listed for the report.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::{DirEntry, FileType};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// A file found by the scan: absolute path and `/`-separated path relative to the input.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: PathBuf,
    pub rel: String,
}

/// An entry the scan passed over, and why (the preprocess report lists it).
#[derive(Debug, Clone, PartialEq)]
pub struct ScanSkip {
    /// `/`-separated path relative to the input.
    pub rel: String,
    /// `not_a_regular_file`, `dangling_link` or `folder_seen`.
    pub reason: &'static str,
    pub detail: String,
}

/// Recursively lists jpg/jpeg/png files (case-insensitive), sorted by relative path.
pub fn scan(input: &Path) -> Result<Vec<SourceFile>> {
    Ok(scan_all(input)?.0)
}

/// [`scan`], and the entries it passed over, sorted by relative path.
///
/// Hand-written rather than the walkdir crate, whose link following differs: it leaves out a
/// link to any folder above the input (this scan lists that folder's other files), lists a
/// folder reached twice without a loop twice, and walks in another order, which changes the
/// path under which a folder reached twice is listed (and so the shard).
pub fn scan_all(input: &Path) -> Result<(Vec<SourceFile>, Vec<ScanSkip>)> {
    if !input.is_dir() {
        bail!("{}: input is not a folder", input.display());
    }
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    let mut stack = vec![input.to_path_buf()];
    // Folders already listed, by identity: symlinks that loop back (`ln -s . again`) end here.
    let mut visited = HashSet::new();
    while let Some(dir) = stack.pop() {
        if !visited.insert(folder_identity(&dir)) {
            skipped.push(ScanSkip {
                rel: relative_name(input, &dir),
                reason: "folder_seen",
                detail: "a folder already scanned under another path (a symlink loop or a second link to it)".into(),
            });
            continue;
        }
        let entries = std::fs::read_dir(&dir)
            .with_context(|| format!("{}: cannot list folder", dir.display()))?;
        for e in entries {
            let e = e.with_context(|| format!("{}: cannot list folder", dir.display()))?;
            let path = e.path();
            let Some(file_type) = entry_type(&e, &path) else {
                if is_image_name(&path) {
                    skipped.push(ScanSkip {
                        rel: relative_name(input, &path),
                        reason: "dangling_link",
                        detail: "a link to nothing (or a file gone during the scan)".into(),
                    });
                }
                continue;
            };
            if file_type.is_dir() {
                stack.push(path);
            } else if is_image_name(&path) && !file_type.is_file() {
                // A FIFO, socket or device with an image's name: opening it could block forever.
                eprintln!(
                    "{}: not a regular file (a FIFO, socket or device); skipped",
                    path.display()
                );
                skipped.push(ScanSkip {
                    rel: relative_name(input, &path),
                    reason: "not_a_regular_file",
                    detail: "a FIFO, socket or device with an image's name".into(),
                });
            } else if is_image_name(&path) {
                let rel = relative_name(input, &path);
                out.push(SourceFile { path, rel });
            }
        }
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    skipped.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok((out, skipped))
}

/// The type of a folder entry, links followed; `None` for a dangling link. The entry's own type
/// needs no extra system call; only links (and entries whose type the listing lacks) are looked
/// up.
fn entry_type(e: &DirEntry, path: &Path) -> Option<FileType> {
    match e.file_type() {
        Ok(t) if !t.is_symlink() => Some(t),
        _ => std::fs::metadata(path).ok().map(|m| m.file_type()),
    }
}

fn is_image_name(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .map(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
        .unwrap_or(false)
}

/// `path` relative to `input`, its components joined by `/` (see [`exact_name`]).
fn relative_name(input: &Path, path: &Path) -> String {
    path.strip_prefix(input)
        .unwrap_or(path)
        .components()
        .map(|c| exact_name(c.as_os_str()))
        .collect::<Vec<_>>()
        .join("/")
}

/// A file-name component as text that keeps distinct names distinct: UTF-8 as it is, any other
/// byte as `\xNN` (`to_string_lossy` maps two different non-UTF-8 names to the same U+FFFD).
fn exact_name(name: &OsStr) -> String {
    if let Some(s) = name.to_str() {
        return s.to_string();
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let mut out = String::new();
        for chunk in name.as_bytes().utf8_chunks() {
            out.push_str(chunk.valid());
            for b in chunk.invalid() {
                out.push_str(&format!("\\x{b:02X}"));
            }
        }
        out
    }
    #[cfg(not(unix))]
    {
        name.to_string_lossy().into_owned()
    }
}

/// What identifies a folder however it was reached: (device, inode) on Unix, the canonical
/// path elsewhere.
fn folder_identity(dir: &Path) -> (u64, u64, PathBuf) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let Ok(m) = std::fs::metadata(dir) {
            return (m.dev(), m.ino(), PathBuf::new());
        }
    }
    (
        0,
        0,
        std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf()),
    )
}
