//! Stage 1 of the pipeline: a folder of face photos becomes one facegan shard.
//!
//! [`run`] scans the input recursively (jpg/jpeg/png, case-insensitive, sorted by path), decodes
//! and resizes in parallel (rayon workers taking a few files at a time, a bounded window ahead of
//! the writing), drops unreadable, truncated, tiny and duplicate files, assigns each image to
//! train or holdout, and streams the pixels into a [`facegan_shard::ShardWriter`]. A JSON report
//! lists every skipped file with its reason. The output is byte-identical for the same input
//! whatever the thread count, because files are processed in parallel but written in path order.
//!
//! [`synth`] draws the procedural face-like images used by tests and the demo.

pub mod decode;
pub mod dedupe;
pub mod split;
pub mod synth;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use facegan_shard::{write_atomic, ImageMeta, ShardMeta, ShardSettings, ShardWriter, Split};
use rayon::prelude::*;
use serde::Serialize;

pub use decode::{Crop, Filter, SkipReason};
use dedupe::NearDuplicateIndex;
use split::Splitter;

/// The version string written into shards and reports.
pub const TOOL_VERSION: &str = concat!("facegan ", env!("CARGO_PKG_VERSION"));

/// Files decoded ahead of the one being written, at most; bounds memory.
const WINDOW: usize = 256;

/// Consecutive files a worker takes at once: their resizes share one set of filter coefficients.
const BATCH: usize = 8;

/// Options of `facegan preprocess`.
#[derive(Debug, Clone)]
pub struct PreprocessConfig {
    pub input: PathBuf,
    pub output: PathBuf,
    pub height: u32,
    pub width: u32,
    pub crop: Crop,
    pub filter: Filter,
    pub holdout: f64,
    /// Images with either side below this are skipped.
    pub min_size: u32,
    /// Drop near-duplicates instead of only reporting them.
    pub dedupe: bool,
    /// Perceptual-hash distance (of 64 bits) at or below which two images are near-duplicates.
    pub near_distance: u32,
    pub progress: bool,
}

impl PreprocessConfig {
    pub fn new(input: impl Into<PathBuf>, output: impl Into<PathBuf>) -> Self {
        PreprocessConfig {
            input: input.into(),
            output: output.into(),
            height: 96,
            width: 80,
            crop: Crop::None,
            filter: Filter::CatmullRom,
            holdout: 0.05,
            min_size: 32,
            dedupe: false,
            near_distance: 2,
            progress: false,
        }
    }
}

/// Parses `HxW`, e.g. `96x80`.
pub fn parse_size(s: &str) -> Result<(u32, u32)> {
    let (h, w) = s
        .split_once(['x', 'X'])
        .with_context(|| format!("size {s:?} must look like HxW, e.g. 96x80"))?;
    let h: u32 = h
        .trim()
        .parse()
        .with_context(|| format!("bad height in size {s:?}"))?;
    let w: u32 = w
        .trim()
        .parse()
        .with_context(|| format!("bad width in size {s:?}"))?;
    if !(8..=1024).contains(&h) || !(8..=1024).contains(&w) {
        bail!("size {s:?}: height and width must be between 8 and 1024");
    }
    Ok((h, w))
}

/// One skipped file in the report.
#[derive(Debug, Clone, Serialize)]
pub struct SkippedFile {
    pub path: String,
    pub reason: &'static str,
    pub detail: String,
}

/// A near-duplicate pair (kept unless `--dedupe`).
#[derive(Debug, Clone, Serialize)]
pub struct NearDuplicate {
    pub path: String,
    pub of: String,
    pub distance: u32,
    pub dropped: bool,
}

/// What `FILE.report.json` holds.
#[derive(Debug, Clone, Serialize)]
pub struct PreprocessReport {
    pub tool_version: String,
    pub input: String,
    pub output: String,
    pub height: u32,
    pub width: u32,
    pub crop: String,
    pub filter: String,
    pub holdout_source: String,
    pub read: usize,
    pub kept: usize,
    pub train: usize,
    pub holdout: usize,
    pub skipped: BTreeMap<&'static str, usize>,
    pub skipped_files: Vec<SkippedFile>,
    pub near_duplicates: Vec<NearDuplicate>,
    pub seconds: f64,
    pub images_per_s: f64,
}

impl PreprocessReport {
    /// The one-line summary printed at the end.
    pub fn summary(&self) -> String {
        let skipped: usize = self.skipped.values().sum();
        let reasons: Vec<String> = self
            .skipped
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        format!(
            "read {}, kept {} (train {}, holdout {}), skipped {}{}, near-duplicates {}, {:.0} images/s",
            self.read,
            self.kept,
            self.train,
            self.holdout,
            skipped,
            if reasons.is_empty() { String::new() } else { format!(" ({})", reasons.join(", ")) },
            self.near_duplicates.len(),
            self.images_per_s
        )
    }
}

/// Path of the JSON report written next to a shard.
pub fn report_path(shard: &Path) -> PathBuf {
    let mut s = shard.as_os_str().to_owned();
    s.push(".report.json");
    PathBuf::from(s)
}

/// A file found by the scan: absolute path and `/`-separated path relative to the input.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: PathBuf,
    pub rel: String,
}

fn is_image_name(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .map(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
        .unwrap_or(false)
}

/// Recursively lists jpg/jpeg/png files (case-insensitive), sorted by relative path.
pub fn scan(input: &Path) -> Result<Vec<SourceFile>> {
    if !input.is_dir() {
        bail!("{}: input is not a folder", input.display());
    }
    let mut out = Vec::new();
    let mut stack = vec![input.to_path_buf()];
    // Folders already listed, by identity: symlinks that loop back (`ln -s . again`) end here.
    let mut visited = std::collections::HashSet::new();
    while let Some(dir) = stack.pop() {
        if !visited.insert(folder_identity(&dir)) {
            continue;
        }
        let entries = std::fs::read_dir(&dir)
            .with_context(|| format!("{}: cannot list folder", dir.display()))?;
        for e in entries {
            let e = e.with_context(|| format!("{}: cannot list folder", dir.display()))?;
            let path = e.path();
            // The entry's own type needs no extra system call; only links are followed.
            let file_type = match e.file_type() {
                Ok(t) if t.is_symlink() => match std::fs::metadata(&path) {
                    Ok(m) => m.file_type(),
                    Err(_) => continue, // dangling link
                },
                Ok(t) => t,
                Err(_) => match std::fs::metadata(&path) {
                    Ok(m) => m.file_type(),
                    Err(_) => continue,
                },
            };
            if file_type.is_dir() {
                stack.push(path);
            } else if is_image_name(&path) && !file_type.is_file() {
                // A FIFO, socket or device with an image's name: opening it could block forever.
                eprintln!(
                    "{}: not a regular file (a FIFO, socket or device); skipped",
                    path.display()
                );
            } else if is_image_name(&path) {
                let rel = path
                    .strip_prefix(input)
                    .unwrap_or(&path)
                    .components()
                    .map(|c| exact_name(c.as_os_str()))
                    .collect::<Vec<_>>()
                    .join("/");
                out.push(SourceFile { path, rel });
            }
        }
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(out)
}

/// A file-name component as text that keeps distinct names distinct: UTF-8 as it is, any other
/// byte as `\xNN` (`to_string_lossy` maps two different non-UTF-8 names to the same U+FFFD).
fn exact_name(name: &std::ffi::OsStr) -> String {
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

/// The result of decoding one file.
struct Decoded {
    content_hash: u64,
    orig_width: u32,
    orig_height: u32,
    pixels: Vec<u8>,
    phash: u64,
}

/// Reads, hashes and decodes one file, checking its size.
fn read_and_decode(
    file: &SourceFile,
    cfg: &PreprocessConfig,
) -> Result<(u64, image::RgbImage), SkipReason> {
    let bytes = std::fs::read(&file.path).map_err(|e| SkipReason::Unreadable(e.to_string()))?;
    let content_hash = xxhash_rust::xxh3::xxh3_64(&bytes);
    let rgb = decode::decode_rgb(&bytes)?;
    drop(bytes);
    let (w, h) = rgb.dimensions();
    if w < cfg.min_size || h < cfg.min_size {
        return Err(SkipReason::TooSmall {
            width: w,
            height: h,
        });
    }
    Ok((content_hash, rgb))
}

/// Decodes a few consecutive files and resizes them as one run where their sizes agree (see
/// [`decode::BatchResizer`]; the pixels are the same as one at a time).
fn process_batch(
    batch: &mut decode::BatchResizer,
    files: &[SourceFile],
    cfg: &PreprocessConfig,
) -> Vec<Result<Decoded, SkipReason>> {
    let image_len = cfg.height as usize * cfg.width as usize * 3;
    let mut results: Vec<Result<Decoded, SkipReason>> = Vec::with_capacity(files.len());
    // Results whose pixels the batch's current run will deliver, in order.
    let mut waiting: Vec<usize> = Vec::new();
    let flush = |batch: &mut decode::BatchResizer,
                 results: &mut Vec<Result<Decoded, SkipReason>>,
                 waiting: &mut Vec<usize>| {
        let mut to = waiting.drain(..);
        batch.flush(|px| {
            if let Some(Ok(d)) = to.next().map(|k| &mut results[k]) {
                d.pixels = px;
            }
        });
    };
    for file in files {
        let (content_hash, rgb) = match read_and_decode(file, cfg) {
            Ok(x) => x,
            Err(reason) => {
                results.push(Err(reason));
                continue;
            }
        };
        let (w, h) = rgb.dimensions();
        let mut d = Decoded {
            content_hash,
            orig_width: w,
            orig_height: h,
            pixels: Vec::new(),
            phash: 0,
        };
        if !batch.fits(w, h) && !batch.is_empty() {
            flush(batch, &mut results, &mut waiting);
        }
        if batch.fits(w, h) {
            batch.push(rgb.as_raw(), w, h);
            waiting.push(results.len());
        } else {
            d.pixels = vec![0u8; image_len];
            batch.resize_one(rgb.as_raw(), w, h, &mut d.pixels);
        }
        results.push(Ok(d));
    }
    flush(batch, &mut results, &mut waiting);
    for d in results.iter_mut().flatten() {
        d.phash = decode::perceptual_hash(&d.pixels, cfg.height as usize, cfg.width as usize);
    }
    results
}

fn progress_bar(len: u64, enabled: bool) -> indicatif::ProgressBar {
    if !enabled {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(len);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} preprocess [{bar:30}] {pos}/{len} {per_sec} ETA {eta} {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    pb
}

/// The in-order hand-over state shared by the decode workers.
struct InOrder {
    /// Results decoded ahead of `handed`, by file index.
    pending: HashMap<usize, Result<Decoded, SkipReason>>,
    /// Files handed to the sink so far (all those before this index).
    handed: usize,
    /// Workers waiting for room in the window.
    waiting: usize,
    /// Set on a sink error or a worker panic: everyone stops.
    abandoned: bool,
    error: Option<anyhow::Error>,
    /// A worker is handing results to the sink (one at a time, in order).
    writing: bool,
}

/// Decodes `files` on the rayon pool and hands each result to `sink` in file order. Each worker
/// takes the next [`BATCH`] files as soon as it is free (no chunk barriers) and, after decoding
/// them, files the results; if no other worker is already doing it, it then hands every result
/// that is now next in order to `sink` itself. So no extra writer thread competes for the cores,
/// a worker never waits for another one's writing, and only the last files are written after the
/// last decode ends. A worker waits only while it is [`WINDOW`] files ahead of the hand-over,
/// which bounds memory.
/// Returns `Ok(false)` when `stop` was set before every file was handed over, and the first
/// error of `sink` (after which no more files are decoded).
fn decode_in_order(
    files: &[SourceFile],
    cfg: &PreprocessConfig,
    stop: &AtomicBool,
    sink: &mut (dyn FnMut(usize, Result<Decoded, SkipReason>) -> Result<()> + Send),
) -> Result<bool> {
    let next = AtomicUsize::new(0);
    let state = Mutex::new(InOrder {
        pending: HashMap::new(),
        handed: 0,
        waiting: 0,
        abandoned: false,
        error: None,
        writing: false,
    });
    // Only the worker that set `writing` locks it, so it is never contended.
    let sink = Mutex::new(sink);
    let room = Condvar::new();
    let lock = || state.lock().unwrap_or_else(|e| e.into_inner());
    let worker = || {
        // A panicking worker releases the others before unwinding.
        struct OnPanic<'a>(&'a Mutex<InOrder>, &'a Condvar);
        impl Drop for OnPanic<'_> {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    self.0.lock().unwrap_or_else(|e| e.into_inner()).abandoned = true;
                    self.1.notify_all();
                }
            }
        }
        let _guard = OnPanic(&state, &room);
        let mut batch =
            decode::BatchResizer::new(cfg.height, cfg.width, cfg.crop, cfg.filter, BATCH);
        loop {
            let first = next.fetch_add(BATCH, Ordering::Relaxed);
            if first >= files.len() || stop.load(Ordering::SeqCst) {
                return;
            }
            let end = (first + BATCH).min(files.len());
            {
                let mut st = lock();
                while first >= st.handed + WINDOW && !st.abandoned {
                    st.waiting += 1;
                    st = room.wait(st).unwrap_or_else(|e| e.into_inner());
                    st.waiting -= 1;
                }
                if st.abandoned {
                    return;
                }
            }
            let results = process_batch(&mut batch, &files[first..end], cfg);
            {
                let mut st = lock();
                if st.abandoned {
                    return;
                }
                st.pending.extend((first..).zip(results));
                if st.writing {
                    continue; // the writing worker will get to them
                }
                st.writing = true;
            }
            let mut sink = sink.lock().unwrap_or_else(|e| e.into_inner());
            let mut written = false;
            loop {
                let (index, result) = {
                    let mut st = lock();
                    if written {
                        st.handed += 1;
                        if st.waiting > 0 {
                            room.notify_all();
                        }
                    }
                    let index = st.handed;
                    match st.pending.remove(&index) {
                        Some(result) if !st.abandoned => (index, result),
                        _ => {
                            st.writing = false;
                            break;
                        }
                    }
                };
                if let Err(e) = (*sink)(index, result) {
                    let mut st = lock();
                    st.error = Some(e);
                    st.abandoned = true;
                    st.writing = false;
                    room.notify_all();
                    return;
                }
                written = true;
            }
        }
    };
    rayon::broadcast(|_| worker());
    let st = state.into_inner().unwrap_or_else(|e| e.into_inner());
    if let Some(e) = st.error {
        return Err(e);
    }
    Ok(st.handed == files.len())
}

/// Runs the whole preprocess stage. `stop` is polled before each file is decoded (Ctrl-C); when it is set the
/// run ends with an error and no shard is left behind.
pub fn run(cfg: &PreprocessConfig, stop: &AtomicBool) -> Result<PreprocessReport> {
    let start = Instant::now();
    let files = scan(&cfg.input)?;
    tracing::debug!("scan: {:.1} ms", start.elapsed().as_secs_f64() * 1e3);
    if files.is_empty() {
        bail!(
            "{}: no .jpg, .jpeg or .png files found (the scan is recursive)",
            cfg.input.display()
        );
    }
    let splitter = Splitter::discover(&cfg.input, cfg.holdout)?;
    let settings = ShardSettings {
        crop: cfg.crop.name(),
        filter: cfg.filter.name().into(),
        holdout_fraction: cfg.holdout,
        holdout_source: splitter.source(),
        min_size: cfg.min_size,
        dedupe: cfg.dedupe,
    };
    let capacity =
        ShardMeta::size_bound(&settings, TOOL_VERSION, files.iter().map(|f| f.rel.len()));
    let mut writer = ShardWriter::create(&cfg.output, cfg.height, cfg.width, capacity)?;

    let mut skipped_files = Vec::new();
    let mut near_duplicates = Vec::new();
    let mut by_content: HashMap<u64, usize> = HashMap::new();
    let mut near_index = NearDuplicateIndex::new(cfg.near_distance);
    let (mut train, mut holdout) = (0usize, 0usize);
    let pb = progress_bar(files.len() as u64, cfg.progress);

    // Files are decoded on the rayon pool and handed to this sink in path order (see
    // `decode_in_order`), so the output does not depend on the thread count.
    let mut sink = |file_index: usize, result: Result<Decoded, SkipReason>| -> Result<()> {
        let file = &files[file_index];
        let skip = |reason: SkipReason, list: &mut Vec<SkippedFile>| {
            tracing::debug!("skip {}: {reason}", file.rel);
            list.push(SkippedFile {
                path: file.rel.clone(),
                reason: reason.key(),
                detail: reason.to_string(),
            });
        };
        pb.inc(1);
        let d = match result {
            Ok(d) => d,
            Err(reason) => {
                skip(reason, &mut skipped_files);
                return Ok(());
            }
        };
        if let Some(&first) = by_content.get(&d.content_hash) {
            let of = files[first].rel.clone();
            skip(SkipReason::ExactDuplicate { of }, &mut skipped_files);
            return Ok(());
        }
        by_content.insert(d.content_hash, file_index);
        if let Some((of_idx, distance)) = near_index.find(d.phash) {
            let of = files[of_idx].rel.clone();
            near_duplicates.push(NearDuplicate {
                path: file.rel.clone(),
                of: of.clone(),
                distance,
                dropped: cfg.dedupe,
            });
            if cfg.dedupe {
                skip(
                    SkipReason::NearDuplicate { of, distance },
                    &mut skipped_files,
                );
                return Ok(());
            }
        }
        near_index.insert(d.phash, file_index);
        let split = splitter.split(&file.rel);
        match split {
            Split::Train => train += 1,
            Split::Holdout => holdout += 1,
        }
        writer.push(
            &d.pixels,
            ImageMeta {
                path: file.rel.clone(),
                orig_width: d.orig_width,
                orig_height: d.orig_height,
                content_hash: d.content_hash,
                split,
            },
        )?;
        Ok(())
    };
    let completed = decode_in_order(&files, cfg, stop, &mut sink)?;
    if !completed {
        pb.abandon_with_message("interrupted");
        bail!(
            "interrupted: no shard was written ({} left as it was)",
            cfg.output.display()
        );
    }
    tracing::debug!(
        "decoded and written: {:.1} ms",
        start.elapsed().as_secs_f64() * 1e3
    );
    if writer.is_empty() {
        bail!(
            "{}: none of the {} image files could be used; see the reasons with RUST_LOG=debug",
            cfg.input.display(),
            files.len()
        );
    }
    let kept = writer.len();
    writer.finish(TOOL_VERSION, settings.clone())?;
    pb.finish_and_clear();
    tracing::debug!("finished: {:.1} ms", start.elapsed().as_secs_f64() * 1e3);

    let seconds = start.elapsed().as_secs_f64();
    let mut skipped = BTreeMap::new();
    for s in &skipped_files {
        *skipped.entry(s.reason).or_insert(0) += 1;
    }
    let report = PreprocessReport {
        tool_version: TOOL_VERSION.into(),
        input: cfg.input.display().to_string(),
        output: cfg.output.display().to_string(),
        height: cfg.height,
        width: cfg.width,
        crop: settings.crop,
        filter: settings.filter,
        holdout_source: settings.holdout_source,
        read: files.len(),
        kept,
        train,
        holdout,
        skipped,
        skipped_files,
        near_duplicates,
        seconds,
        images_per_s: files.len() as f64 / seconds.max(1e-9),
    };
    // The shard is complete and in place by now: a report that cannot be written is a warning,
    // not a failed run.
    let report_file = report_path(&cfg.output);
    if let Err(e) = write_atomic(
        &report_file,
        serde_json::to_string_pretty(&report)?.as_bytes(),
    ) {
        eprintln!(
            "warning: {}: cannot write the report ({e}); the shard {} is complete",
            report_file.display(),
            cfg.output.display()
        );
    }
    Ok(report)
}

/// The decode-only floor for the benchmark: the same decoder on the same files, no resize, no write.
/// Returns the number of files that decoded.
pub fn decode_only(files: &[SourceFile]) -> usize {
    files
        .par_iter()
        .filter(|f| {
            std::fs::read(&f.path)
                .ok()
                .and_then(|b| decode::decode_rgb(&b).ok())
                .is_some()
        })
        .count()
}
