//! The facegan shard file: many same-sized RGB images in one memory-mappable file.
//!
//! ```text
//! offset 0            fixed 128-byte header (little-endian, see `Header`)
//! offset 128          bincode metadata block (`ShardMeta`), then zero padding
//! payload_offset      page-aligned (4096) u8 payload: image 0, image 1, ...
//!                     each image is H*W*C bytes, row-major, interleaved RGB (HWC)
//! ```
//!
//! The header records the magic, the format version, the image count and size, the pixel layout,
//! and where the metadata and payload live. Readers validate all of it before trusting any byte,
//! and report truncated, foreign, newer-version or corrupted files as distinct errors.
//! Writers ([`ShardWriter`]) stream images into a temp file in the destination folder and
//! fsync + rename on [`ShardWriter::finish`], so an interrupted write never leaves a valid-looking shard.

// CI fails on a dependency the crate no longer uses (unit-test builds also see dev-dependencies).
#![cfg_attr(not(test), deny(unused_crate_dependencies))]

mod format;
mod payload;
mod reader;
mod summary;
mod writer;

pub use format::{
    Header, ImageMeta, PixelLayout, ShardMeta, ShardSettings, Split, FORMAT_VERSION, HEADER_LEN,
    MAGIC, MAX_SIDE, META_DECODE_LIMIT, PAGE,
};
pub use reader::Shard;
pub use summary::ShardSummary;
pub use writer::ShardWriter;

use std::path::PathBuf;

/// Everything that can be wrong with a shard file. Each variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    /// The OS error's text is part of the message and not also a `source`, so error chains
    /// (`{:#}`) print it once.
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: not a facegan shard (bad magic bytes)")]
    Foreign { path: PathBuf },
    #[error("{path}: truncated shard: {what} needs {needed} bytes but the file has {actual}")]
    Truncated {
        path: PathBuf,
        what: &'static str,
        needed: u64,
        actual: u64,
    },
    #[error(
        "{path}: shard format version {found} is newer than this facegan supports ({supported}); upgrade facegan"
    )]
    NewerVersion {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("{path}: corrupted shard: {what}")]
    Corrupt { path: PathBuf, what: String },
}

impl ShardError {
    pub(crate) fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        ShardError::Io {
            path: path.into(),
            error,
        }
    }
    pub(crate) fn corrupt(path: impl Into<PathBuf>, what: impl Into<String>) -> Self {
        ShardError::Corrupt {
            path: path.into(),
            what: what.into(),
        }
    }
}

/// xxh3-64 streaming checksum used for the payload.
pub fn checksum(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}
