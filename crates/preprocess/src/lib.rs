//! Stage 1 of the pipeline: a folder of face photos becomes one facegan shard.
//!
//! [`run`] scans the input recursively (jpg/jpeg/png, case-insensitive, sorted by path), decodes
//! and resizes in parallel (rayon workers taking a few files at a time, a bounded window ahead of
//! the writing), drops unreadable, truncated, tiny and duplicate files, assigns each image to
//! train or holdout, and streams the pixels into a [`facegan_shard::ShardWriter`]. A JSON report
//! lists every skipped file with its reason. The output is byte-identical for the same input
//! whatever the thread count, because files are processed in parallel but written in path order.
//!
//! Where each step lives:
//! - [`scan()`] (`scan.rs`): the input's image files, in path order.
//! - `schedule.rs`: the in-order scheduler, parallel decoding handed over in file order.
//! - `batch.rs`: one worker's batch of files, read, decoded, resized and hashed.
//! - [`decode`]: JPEG/PNG decoding, skip reasons, the resize filter and crop options.
//! - [`resize`], `halve.rs`, `transpose.rs`: resizing to the shard's size (one image or a run of
//!   same-size images), with the box halving and RGB transposes it is built on.
//! - [`phash`] and [`dedupe`]: perceptual hashes and the near-duplicate index.
//! - [`split`]: train/holdout assignment; `collect.rs`: each file's fate and the shard writing.
//! - [`synth`]: the procedural face-like images used by tests and the demo.

// CI fails on a dependency the crate no longer uses (unit-test builds also see dev-dependencies).
#![cfg_attr(not(test), deny(unused_crate_dependencies))]

mod batch;
mod collect;
pub mod decode;
pub mod dedupe;
mod halve;
pub mod phash;
pub mod resize;
mod scan;
mod schedule;
pub mod split;
pub mod synth;
mod transpose;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use facegan_common::progress::progress_bar;
use facegan_common::{write_atomic, TOOL_VERSION};
use facegan_shard::{ShardMeta, ShardSettings, ShardWriter};
use rayon::prelude::*;
use serde::Serialize;

use collect::{Collected, Collector};
pub use decode::{Crop, Filter, SkipReason};
pub use scan::{scan, scan_all, ScanSkip, SourceFile};
use schedule::decode_in_order;
use split::Splitter;

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

/// Runs the whole preprocess stage. `stop` is polled before each file is decoded (Ctrl-C); when
/// it is set the run ends with an error and no shard is left behind.
pub fn run(cfg: &PreprocessConfig, stop: &AtomicBool) -> Result<PreprocessReport> {
    let start = Instant::now();
    let (files, passed_over) = find_images(cfg, start)?;
    let splitter = Splitter::discover(&cfg.input, cfg.holdout)?;
    let settings = shard_settings(cfg, &splitter);
    let writer = create_writer(cfg, &settings, &files)?;
    let pb = progress_bar(
        files.len() as u64,
        "{spinner} preprocess",
        "{pos}/{len} {per_sec} ETA {eta} {msg}",
        cfg.progress,
    );

    // Files are decoded on the rayon pool and handed to the collector in path order (see
    // `decode_in_order`), so the output does not depend on the thread count.
    let mut collector = Collector::new(&files, cfg, &splitter, writer, &pb);
    let completed = decode_in_order(&files, cfg, stop, &mut |i, r| collector.accept(i, r))?;
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
    let collected = collector.finish(settings.clone())?;
    pb.finish_and_clear();
    tracing::debug!("finished: {:.1} ms", start.elapsed().as_secs_f64() * 1e3);

    let report = make_report(cfg, settings, files.len(), passed_over, collected, start);
    write_report(cfg, &report)?;
    Ok(report)
}

/// The input's image files, in path order, and what the scan passed over; an error if there
/// are no images.
fn find_images(cfg: &PreprocessConfig, start: Instant) -> Result<(Vec<SourceFile>, Vec<ScanSkip>)> {
    let (files, passed_over) = scan_all(&cfg.input)?;
    tracing::debug!("scan: {:.1} ms", start.elapsed().as_secs_f64() * 1e3);
    if files.is_empty() {
        bail!(
            "{}: no .jpg, .jpeg or .png files found (the scan is recursive)",
            cfg.input.display()
        );
    }
    Ok((files, passed_over))
}

/// The shard writer, its metadata space sized for every file's path.
fn create_writer(
    cfg: &PreprocessConfig,
    settings: &ShardSettings,
    files: &[SourceFile],
) -> Result<ShardWriter> {
    let capacity = ShardMeta::size_bound(settings, TOOL_VERSION, files.iter().map(|f| f.rel.len()));
    Ok(ShardWriter::create(
        &cfg.output,
        cfg.height,
        cfg.width,
        capacity,
    )?)
}

/// The settings recorded in the shard.
fn shard_settings(cfg: &PreprocessConfig, splitter: &Splitter) -> ShardSettings {
    ShardSettings {
        crop: cfg.crop.name(),
        filter: cfg.filter.name().into(),
        holdout_fraction: cfg.holdout,
        holdout_source: splitter.source(),
        min_size: cfg.min_size,
        dedupe: cfg.dedupe,
    }
}

/// The report of a finished run that started at `start` and read `read` files; every entry
/// skipped, by the scan (`passed_over`) or after reading, is listed.
fn make_report(
    cfg: &PreprocessConfig,
    settings: ShardSettings,
    read: usize,
    passed_over: Vec<ScanSkip>,
    collected: Collected,
    start: Instant,
) -> PreprocessReport {
    let seconds = start.elapsed().as_secs_f64();
    let mut skipped_files: Vec<SkippedFile> = passed_over
        .into_iter()
        .map(|s| SkippedFile {
            path: s.rel,
            reason: s.reason,
            detail: s.detail,
        })
        .collect();
    skipped_files.extend(collected.skipped_files);
    let mut skipped = BTreeMap::new();
    for s in &skipped_files {
        *skipped.entry(s.reason).or_insert(0) += 1;
    }
    PreprocessReport {
        tool_version: TOOL_VERSION.into(),
        input: cfg.input.display().to_string(),
        output: cfg.output.display().to_string(),
        height: cfg.height,
        width: cfg.width,
        crop: settings.crop,
        filter: settings.filter,
        holdout_source: settings.holdout_source,
        read,
        kept: collected.kept,
        train: collected.train,
        holdout: collected.holdout,
        skipped,
        skipped_files,
        near_duplicates: collected.near_duplicates,
        seconds,
        images_per_s: read as f64 / seconds.max(1e-9),
    }
}

/// Writes `FILE.report.json` next to the shard. The shard is complete and in place by now: a
/// report that cannot be written is a warning, not a failed run.
fn write_report(cfg: &PreprocessConfig, report: &PreprocessReport) -> Result<()> {
    let report_file = report_path(&cfg.output);
    if let Err(e) = write_atomic(
        &report_file,
        serde_json::to_string_pretty(report)?.as_bytes(),
    ) {
        eprintln!(
            "warning: {}: cannot write the report ({e}); the shard {} is complete",
            report_file.display(),
            cfg.output.display()
        );
    }
    Ok(())
}

/// The decode-only floor for the benchmark: the same decoder on the same files, no resize, no
/// write. Returns the number of files that decoded.
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
