//! Deciding each file's fate, in path order: skipped (with its reason), or written into the shard
//! as train or holdout. Exact duplicates (same bytes) are skipped; near-duplicates (close
//! perceptual hashes) are reported, and dropped only with `--dedupe`.

use std::collections::HashMap;

use anyhow::{bail, Result};
use facegan_shard::{ImageMeta, ShardSettings, ShardWriter, Split};

use crate::batch::Decoded;
use crate::dedupe::NearDuplicateIndex;
use crate::split::Splitter;
use facegan_common::TOOL_VERSION;

use crate::{NearDuplicate, PreprocessConfig, SkipReason, SkippedFile, SourceFile};

/// Takes the decoded files one by one, in path order, and writes the kept ones into the shard.
pub(crate) struct Collector<'a> {
    files: &'a [SourceFile],
    cfg: &'a PreprocessConfig,
    splitter: &'a Splitter,
    writer: ShardWriter,
    progress: &'a facegan_common::progress::ProgressBar,
    /// File index of the first file with each content hash.
    by_content: HashMap<u64, usize>,
    near_index: NearDuplicateIndex,
    collected: Collected,
}

/// What the collector kept and skipped.
#[derive(Default)]
pub(crate) struct Collected {
    pub skipped_files: Vec<SkippedFile>,
    pub near_duplicates: Vec<NearDuplicate>,
    pub train: usize,
    pub holdout: usize,
    /// Images in the shard.
    pub kept: usize,
}

impl<'a> Collector<'a> {
    pub fn new(
        files: &'a [SourceFile],
        cfg: &'a PreprocessConfig,
        splitter: &'a Splitter,
        writer: ShardWriter,
        progress: &'a facegan_common::progress::ProgressBar,
    ) -> Self {
        Collector {
            files,
            cfg,
            splitter,
            writer,
            progress,
            by_content: HashMap::new(),
            near_index: NearDuplicateIndex::new(cfg.near_distance),
            collected: Collected::default(),
        }
    }

    /// Takes the result of file `file_index`; files must come in index order.
    pub fn accept(&mut self, file_index: usize, result: Result<Decoded, SkipReason>) -> Result<()> {
        let files = self.files;
        let file = &files[file_index];
        self.progress.inc(1);
        let d = match result {
            Ok(d) => d,
            Err(reason) => {
                self.skip(file, reason);
                return Ok(());
            }
        };
        if let Some(&first) = self.by_content.get(&d.content_hash) {
            let of = files[first].rel.clone();
            self.skip(file, SkipReason::ExactDuplicate { of });
            return Ok(());
        }
        self.by_content.insert(d.content_hash, file_index);
        if let Some((of_idx, distance)) = self.near_index.find(d.phash) {
            let of = files[of_idx].rel.clone();
            self.collected.near_duplicates.push(NearDuplicate {
                path: file.rel.clone(),
                of: of.clone(),
                distance,
                dropped: self.cfg.dedupe,
            });
            if self.cfg.dedupe {
                self.skip(file, SkipReason::NearDuplicate { of, distance });
                return Ok(());
            }
        }
        self.near_index.insert(d.phash, file_index);
        self.keep(file, d)
    }

    fn skip(&mut self, file: &SourceFile, reason: SkipReason) {
        tracing::debug!("skip {}: {reason}", file.rel);
        self.collected.skipped_files.push(SkippedFile {
            path: file.rel.clone(),
            reason: reason.key(),
            detail: reason.to_string(),
        });
    }

    fn keep(&mut self, file: &SourceFile, d: Decoded) -> Result<()> {
        let split = self.splitter.split(&file.rel);
        match split {
            Split::Train => self.collected.train += 1,
            Split::Holdout => self.collected.holdout += 1,
        }
        self.writer.push(
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
    }

    /// Completes the shard (an error if no file was kept) and returns what was collected.
    pub fn finish(self, settings: ShardSettings) -> Result<Collected> {
        if self.writer.is_empty() {
            bail!(
                "{}: none of the {} image files could be used; see the reasons with RUST_LOG=debug",
                self.cfg.input.display(),
                self.files.len()
            );
        }
        let kept = self.writer.len();
        self.writer.finish(TOOL_VERSION, settings)?;
        Ok(Collected {
            kept,
            ..self.collected
        })
    }
}
