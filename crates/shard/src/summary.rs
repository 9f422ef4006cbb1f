//! What `facegan inspect` shows of a shard: a [`ShardSummary`] (JSON through serde, text through
//! `Display`), and the train split as a NumPy `.npy` for other frameworks.

use serde::Serialize;

use crate::{Shard, ShardSettings, Split};

/// A shard's header, split and preprocessing settings, as `facegan inspect` prints them.
#[derive(Debug, Clone, Serialize)]
pub struct ShardSummary {
    pub path: String,
    pub version: u32,
    pub count: u64,
    pub height: u32,
    pub width: u32,
    pub channels: u32,
    pub layout: &'static str,
    pub train: usize,
    pub holdout: usize,
    pub payload_offset: u64,
    pub payload_bytes: u64,
    pub payload_checksum: String,
    /// Whether the payload checksum was recomputed (`--verify`) before this summary.
    pub verified: bool,
    pub tool_version: String,
    /// How the shard was made.
    pub settings: ShardSettings,
    /// The first image's source path and original size, if any.
    #[serde(skip)]
    pub first_image: Option<(String, u32, u32)>,
}

impl Shard {
    /// The summary `facegan inspect` prints; `verified` says whether [`Shard::verify`] ran.
    pub fn summary(&self, verified: bool) -> ShardSummary {
        let (h, m) = (self.header(), self.meta());
        let train = self.indices(Split::Train).len();
        ShardSummary {
            path: self.path().display().to_string(),
            version: h.version,
            count: h.count,
            height: h.height,
            width: h.width,
            channels: h.channels,
            layout: h.layout.name(),
            train,
            holdout: self.len() - train,
            payload_offset: h.payload_offset,
            payload_bytes: h.payload_len,
            payload_checksum: format!("{:016x}", m.payload_checksum),
            verified,
            tool_version: m.tool_version.clone(),
            settings: m.settings.clone(),
            first_image: m
                .images
                .first()
                .map(|f| (f.path.clone(), f.orig_width, f.orig_height)),
        }
    }

    /// The index of the image stored with source path `path`.
    pub fn position_of_path(&self, path: &str) -> Option<usize> {
        self.meta().images.iter().position(|m| m.path == path)
    }

    /// The train split, in id order, as the bytes of a NumPy `.npy` file (format 1.0, u8,
    /// `[N, H, W, C]`), for other frameworks to train on the same pixels.
    pub fn train_split_npy(&self) -> Vec<u8> {
        let ids = self.indices(Split::Train);
        let (h, w, c) = (self.height(), self.width(), self.channels());
        let dict = format!(
            "{{'descr': '|u1', 'fortran_order': False, 'shape': ({}, {h}, {w}, {c}), }}",
            ids.len()
        );
        // Header padded with spaces so magic + lengths + dict + newline is a multiple of 64.
        let unpadded = 10 + dict.len() + 1;
        let header = format!(
            "{dict}{}\n",
            " ".repeat(unpadded.next_multiple_of(64) - unpadded)
        );
        let mut bytes = Vec::with_capacity(10 + header.len() + ids.len() * h * w * c);
        bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        for &i in &ids {
            bytes.extend_from_slice(self.image(i));
        }
        bytes
    }
}

impl std::fmt::Display for ShardSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.settings;
        writeln!(f, "{}", self.path)?;
        writeln!(
            f,
            "  format version {}, written by {}",
            self.version, self.tool_version
        )?;
        writeln!(
            f,
            "  {} images of {}x{}x{} ({})",
            self.count, self.height, self.width, self.channels, self.layout
        )?;
        writeln!(
            f,
            "  split: {} train, {} holdout ({})",
            self.train, self.holdout, s.holdout_source
        )?;
        writeln!(
            f,
            "  made with crop {}, filter {}, min size {}, dedupe {}",
            s.crop, s.filter, s.min_size, s.dedupe
        )?;
        write!(
            f,
            "  payload {} bytes at offset {}, checksum {}{}",
            self.payload_bytes,
            self.payload_offset,
            self.payload_checksum,
            if self.verified { " (verified)" } else { "" }
        )?;
        if let Some((path, w, h)) = &self.first_image {
            write!(f, "\n  first image: {path} ({w}x{h})")?;
        }
        Ok(())
    }
}
