//! Stage 1 of the pipeline: a folder of face photos becomes one facegan shard.
//!
//! [`run`] scans the input recursively (jpg/jpeg/png, case-insensitive, sorted by path), decodes
//! and resizes in parallel chunks (rayon, bounded memory), drops unreadable, truncated, tiny and
//! duplicate files, assigns each image to train or holdout, and streams the pixels into a
//! [`facegan_shard::ShardWriter`]. A JSON report lists every skipped file with its reason.
//! The output is byte-identical for the same input whatever the thread count, because chunks are
//! processed in parallel but written in path order.
//!
//! [`synth`] draws the procedural face-like images used by tests and the demo.

pub mod decode;
pub mod dedupe;
pub mod split;
pub mod synth;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
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

/// Files decoded in parallel before they are written in order; bounds memory.
const CHUNK: usize = 512;

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
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir)
            .with_context(|| format!("{}: cannot list folder", dir.display()))?;
        for e in entries {
            let e = e.with_context(|| format!("{}: cannot list folder", dir.display()))?;
            let path = e.path();
            let meta = match std::fs::metadata(&path) {
                Ok(m) => m,
                Err(_) => continue, // dangling link
            };
            if meta.is_dir() {
                stack.push(path);
            } else if is_image_name(&path) {
                let rel = path
                    .strip_prefix(input)
                    .unwrap_or(&path)
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push(SourceFile { path, rel });
            }
        }
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(out)
}

/// The result of decoding one file.
struct Decoded {
    content_hash: u64,
    orig_width: u32,
    orig_height: u32,
    pixels: Vec<u8>,
    phash: u64,
}

fn process_one(
    resizer: &mut fast_image_resize::Resizer,
    file: &SourceFile,
    cfg: &PreprocessConfig,
) -> Result<Decoded, SkipReason> {
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
    let pixels = decode::resize_rgb(resizer, rgb, cfg.height, cfg.width, cfg.crop, cfg.filter);
    let phash = decode::perceptual_hash(&pixels, cfg.height as usize, cfg.width as usize);
    Ok(Decoded {
        content_hash,
        orig_width: w,
        orig_height: h,
        pixels,
        phash,
    })
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

/// Runs the whole preprocess stage. `stop` is polled between chunks (Ctrl-C); when it is set the
/// run ends with an error and no shard is left behind.
pub fn run(cfg: &PreprocessConfig, stop: &AtomicBool) -> Result<PreprocessReport> {
    let start = Instant::now();
    let files = scan(&cfg.input)?;
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

    // Decoding runs on the rayon pool one chunk ahead, while this thread writes the previous
    // chunk in path order: the output does not depend on the thread count.
    let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, Vec<Result<Decoded, SkipReason>>)>(1);
    let decoded = std::thread::scope(|scope| -> Result<()> {
        let decoder = scope.spawn(|| {
            for (chunk_no, chunk) in files.chunks(CHUNK).enumerate() {
                if stop.load(Ordering::SeqCst) {
                    return false;
                }
                let results: Vec<Result<Decoded, SkipReason>> = chunk
                    .par_iter()
                    .map_init(fast_image_resize::Resizer::new, |r, f| {
                        process_one(r, f, cfg)
                    })
                    .collect();
                if tx.send((chunk_no, results)).is_err() {
                    return true; // the writer stopped on an error
                }
            }
            drop(tx);
            true
        });
        for (chunk_no, results) in rx {
            let chunk = &files[chunk_no * CHUNK..(chunk_no * CHUNK + results.len())];
            for (j, (file, result)) in chunk.iter().zip(results).enumerate() {
                let file_index = chunk_no * CHUNK + j;
                let skip = |reason: SkipReason, list: &mut Vec<SkippedFile>| {
                    tracing::debug!("skip {}: {reason}", file.rel);
                    list.push(SkippedFile {
                        path: file.rel.clone(),
                        reason: reason.key(),
                        detail: reason.to_string(),
                    });
                };
                let d = match result {
                    Ok(d) => d,
                    Err(reason) => {
                        skip(reason, &mut skipped_files);
                        continue;
                    }
                };
                if let Some(&first) = by_content.get(&d.content_hash) {
                    let of = files[first].rel.clone();
                    skip(SkipReason::ExactDuplicate { of }, &mut skipped_files);
                    continue;
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
                        continue;
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
            }
            pb.inc(chunk.len() as u64);
        }
        let completed = decoder.join().expect("decoder thread panicked");
        if !completed {
            pb.abandon_with_message("interrupted");
            bail!(
                "interrupted: no shard was written ({} left as it was)",
                cfg.output.display()
            );
        }
        Ok(())
    });
    decoded?;
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
    write_atomic(
        &report_path(&cfg.output),
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )?;
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
