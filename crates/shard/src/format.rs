//! On-disk types of the shard format: the fixed header and the bincode metadata block.

use serde::{Deserialize, Serialize};

/// First 8 bytes of every shard.
pub const MAGIC: [u8; 8] = *b"FGSHARD\0";
/// The format version this build writes and the newest it reads. Version 2 adds a checksum of the
/// metadata block (bytes 80..88) and a checksum of the whole header (88..96); version 1 shards
/// (no metadata checksum) are still read.
pub const FORMAT_VERSION: u32 = 2;
/// Size of the fixed header in bytes.
pub const HEADER_LEN: usize = 128;
/// Payload alignment: the payload starts on a page boundary so it can be mapped and sliced freely.
pub const PAGE: u64 = 4096;

/// The largest image side a shard may declare: with it, every size and offset computed from the
/// header fits in 64 bits (a hostile header cannot make `height x width x 3` wrap).
pub const MAX_SIDE: u32 = 16_384;

/// The most bytes the metadata decoder may claim for one string or list: a corrupt length
/// prefix is an error, not a multi-exabyte allocation.
pub const META_DECODE_LIMIT: usize = 512 << 20;

/// How pixels of one image are laid out in the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[repr(u32)]
pub enum PixelLayout {
    /// Row-major, channels interleaved: `pixel(y, x, c) = img[(y * W + x) * C + c]`.
    Hwc = 1,
}

impl PixelLayout {
    pub fn from_u32(v: u32) -> Option<Self> {
        match v {
            1 => Some(PixelLayout::Hwc),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            PixelLayout::Hwc => "HWC (row-major, interleaved RGB)",
        }
    }
}

/// The fixed 128-byte header, little-endian.
///
/// | bytes   | field |
/// |---------|-------|
/// | 0..8    | magic `FGSHARD\0` |
/// | 8..12   | format version (u32) |
/// | 12..16  | header length (u32, 128) |
/// | 16..24  | image count (u64) |
/// | 24..28  | height (u32) |
/// | 28..32  | width (u32) |
/// | 32..36  | channels (u32) |
/// | 36..40  | pixel layout (u32, 1 = HWC) |
/// | 40..48  | metadata offset (u64) |
/// | 48..56  | metadata length (u64) |
/// | 56..64  | payload offset (u64, multiple of 4096) |
/// | 64..72  | payload length (u64) |
/// | 72..80  | xxh3-64 of bytes 0..72 |
/// | 80..88  | xxh3-64 of the metadata block (version 2; zero in version 1) |
/// | 88..96  | xxh3-64 of bytes 0..88 (version 2; zero in version 1) |
/// | 96..128 | zero |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub version: u32,
    pub count: u64,
    pub height: u32,
    pub width: u32,
    pub channels: u32,
    pub layout: PixelLayout,
    pub meta_offset: u64,
    pub meta_len: u64,
    pub payload_offset: u64,
    pub payload_len: u64,
    /// xxh3-64 of the metadata block (0 in a version 1 shard, which has none).
    pub meta_checksum: u64,
}

impl Header {
    /// Bytes of one image.
    pub fn image_len(&self) -> usize {
        self.height as usize * self.width as usize * self.channels as usize
    }

    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&self.version.to_le_bytes());
        b[12..16].copy_from_slice(&(HEADER_LEN as u32).to_le_bytes());
        b[16..24].copy_from_slice(&self.count.to_le_bytes());
        b[24..28].copy_from_slice(&self.height.to_le_bytes());
        b[28..32].copy_from_slice(&self.width.to_le_bytes());
        b[32..36].copy_from_slice(&self.channels.to_le_bytes());
        b[36..40].copy_from_slice(&(self.layout as u32).to_le_bytes());
        b[40..48].copy_from_slice(&self.meta_offset.to_le_bytes());
        b[48..56].copy_from_slice(&self.meta_len.to_le_bytes());
        b[56..64].copy_from_slice(&self.payload_offset.to_le_bytes());
        b[64..72].copy_from_slice(&self.payload_len.to_le_bytes());
        let sum = xxhash_rust::xxh3::xxh3_64(&b[0..72]);
        b[72..80].copy_from_slice(&sum.to_le_bytes());
        if self.version >= 2 {
            b[80..88].copy_from_slice(&self.meta_checksum.to_le_bytes());
            let sum = xxhash_rust::xxh3::xxh3_64(&b[0..88]);
            b[88..96].copy_from_slice(&sum.to_le_bytes());
        }
        b
    }
}

/// Train or holdout: the holdout images are never shown to the trainer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Split {
    Train,
    Holdout,
}

/// Per-image metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageMeta {
    /// Source path relative to the preprocess input folder, with `/` separators.
    pub path: String,
    pub orig_width: u32,
    pub orig_height: u32,
    /// xxh3-64 of the source file's bytes.
    pub content_hash: u64,
    pub split: Split,
}

/// How the shard was made; stored so later stages and people can see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ShardSettings {
    /// `none` or `center:N`.
    pub crop: String,
    /// Resize filter name.
    pub filter: String,
    pub holdout_fraction: f64,
    /// `hash` or the partition file used.
    pub holdout_source: String,
    pub min_size: u32,
    pub dedupe: bool,
}

/// The metadata block that follows the header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardMeta {
    pub tool_version: String,
    pub settings: ShardSettings,
    /// xxh3-64 of the whole payload.
    pub payload_checksum: u64,
    pub images: Vec<ImageMeta>,
}

impl ShardMeta {
    pub(crate) fn encode(&self) -> Vec<u8> {
        bincode::serde::encode_to_vec(self, bincode::config::standard())
            .expect("shard metadata always encodes")
    }

    /// An upper bound on the encoded size of the metadata of images with these path lengths.
    pub fn size_bound(
        settings: &ShardSettings,
        tool_version: &str,
        path_lens: impl Iterator<Item = usize>,
    ) -> u64 {
        let fixed = ShardMeta {
            tool_version: tool_version.to_string(),
            settings: settings.clone(),
            payload_checksum: u64::MAX,
            images: Vec::new(),
        }
        .encode()
        .len() as u64;
        // varint: string length <= 9 bytes, two u32 <= 5 each, u64 <= 9, enum tag <= 5, vec len <= 9.
        fixed + 9 + path_lens.map(|l| l as u64 + 9 + 5 + 5 + 9 + 5).sum::<u64>()
    }
}

/// Rounds `n` up to the next multiple of [`PAGE`].
pub fn page_align(n: u64) -> u64 {
    n.div_ceil(PAGE) * PAGE
}
