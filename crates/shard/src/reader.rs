//! Memory-mapped, validated, zero-copy shard reader.

use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::format::{
    Header, PixelLayout, ShardMeta, Split, FORMAT_VERSION, HEADER_LEN, MAGIC, MAX_SIDE,
    META_DECODE_LIMIT, PAGE,
};
use crate::ShardError;

/// An open shard: the header, the decoded metadata and the mapped payload.
pub struct Shard {
    path: PathBuf,
    header: Header,
    meta: ShardMeta,
    map: Mmap,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// Parses and validates the fixed header against the file length.
fn parse_header(path: &Path, b: &[u8]) -> Result<Header, ShardError> {
    let version = check_header_identity(path, b)?;
    let layout = PixelLayout::from_u32(u32_at(b, 36)).ok_or_else(|| {
        ShardError::corrupt(path, format!("unknown pixel layout {}", u32_at(b, 36)))
    })?;
    let h = Header {
        version,
        count: u64_at(b, 16),
        height: u32_at(b, 24),
        width: u32_at(b, 28),
        channels: u32_at(b, 32),
        layout,
        meta_offset: u64_at(b, 40),
        meta_len: u64_at(b, 48),
        payload_offset: u64_at(b, 56),
        payload_len: u64_at(b, 64),
        meta_checksum: if version >= 2 { u64_at(b, 80) } else { 0 },
    };
    check_sizes_and_offsets(path, &h, b.len() as u64)?;
    Ok(h)
}

/// Magic, header length, format version and the header checksums; returns the version.
fn check_header_identity(path: &Path, b: &[u8]) -> Result<u32, ShardError> {
    let file_len = b.len() as u64;
    if b.len() < MAGIC.len() || b[0..8] != MAGIC {
        if b.len() < MAGIC.len() && MAGIC.starts_with(b) {
            return Err(ShardError::Truncated {
                path: path.into(),
                what: "the header",
                needed: HEADER_LEN as u64,
                actual: file_len,
            });
        }
        return Err(ShardError::Foreign { path: path.into() });
    }
    if b.len() < HEADER_LEN {
        return Err(ShardError::Truncated {
            path: path.into(),
            what: "the header",
            needed: HEADER_LEN as u64,
            actual: file_len,
        });
    }
    let version = u32_at(b, 8);
    if version > FORMAT_VERSION {
        return Err(ShardError::NewerVersion {
            path: path.into(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    if version == 0 {
        return Err(ShardError::corrupt(path, "format version 0"));
    }
    let stored_sum = u64_at(b, 72);
    if xxhash_rust::xxh3::xxh3_64(&b[0..72]) != stored_sum {
        return Err(ShardError::corrupt(path, "header checksum mismatch"));
    }
    if version >= 2 && xxhash_rust::xxh3::xxh3_64(&b[0..88]) != u64_at(b, 88) {
        return Err(ShardError::corrupt(path, "header checksum mismatch"));
    }
    if u32_at(b, 12) as usize != HEADER_LEN {
        return Err(ShardError::corrupt(path, "unexpected header length"));
    }
    Ok(version)
}

/// The image size, the payload length against the count, and the metadata and payload offsets
/// against each other and the file's length.
fn check_sizes_and_offsets(path: &Path, h: &Header, file_len: u64) -> Result<(), ShardError> {
    if h.height == 0 || h.width == 0 || h.channels != 3 || h.height > MAX_SIDE || h.width > MAX_SIDE
    {
        return Err(ShardError::corrupt(
            path,
            format!("bad image size {}x{}x{}", h.height, h.width, h.channels),
        ));
    }
    let expected_payload = h
        .count
        .checked_mul(h.image_len() as u64)
        .ok_or_else(|| ShardError::corrupt(path, "image count overflows"))?;
    if h.payload_len != expected_payload {
        return Err(ShardError::corrupt(
            path,
            format!(
                "payload length {} != count {} x image size {}",
                h.payload_len,
                h.count,
                h.image_len()
            ),
        ));
    }
    if h.meta_offset < HEADER_LEN as u64
        || h.meta_offset
            .checked_add(h.meta_len)
            .is_none_or(|e| e > h.payload_offset)
        || !h.payload_offset.is_multiple_of(PAGE)
    {
        return Err(ShardError::corrupt(
            path,
            "metadata/payload offsets out of order",
        ));
    }
    let end = h
        .payload_offset
        .checked_add(h.payload_len)
        .ok_or_else(|| ShardError::corrupt(path, "payload end overflows"))?;
    if end > file_len {
        return Err(ShardError::Truncated {
            path: path.into(),
            what: "the payload",
            needed: end,
            actual: file_len,
        });
    }
    if end < file_len {
        return Err(ShardError::corrupt(
            path,
            format!("{} trailing bytes after the payload", file_len - end),
        ));
    }
    Ok(())
}

impl Shard {
    /// Maps and validates a shard. Never panics on bad input.
    pub fn open(path: impl AsRef<Path>) -> Result<Shard, ShardError> {
        let path = path.as_ref();
        // A folder cannot be mapped and opening a FIFO blocks forever: look before opening.
        let kind = std::fs::metadata(path).map_err(|e| ShardError::io(path, e))?;
        if !kind.is_file() {
            return Err(ShardError::io(
                path,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    if kind.is_dir() {
                        "is a folder, not a shard file"
                    } else {
                        "is not a regular file (a FIFO, socket or device), not a shard file"
                    },
                ),
            ));
        }
        let file = File::open(path).map_err(|e| ShardError::io(path, e))?;
        // SAFETY: the file is opened read-only; shards are written once via rename and never
        // modified in place, which is the contract for every facegan shard.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| ShardError::io(path, e))?;
        let header = parse_header(path, &map)?;
        let meta_bytes =
            &map[header.meta_offset as usize..(header.meta_offset + header.meta_len) as usize];
        // Version 2: a flipped metadata byte is caught here, before decoding (version 1 has no
        // metadata checksum; its decode is still bounded by META_DECODE_LIMIT).
        if header.version >= 2 && xxhash_rust::xxh3::xxh3_64(meta_bytes) != header.meta_checksum {
            return Err(ShardError::corrupt(
                path,
                "metadata checksum mismatch (the file is damaged; preprocess again)",
            ));
        }
        let (meta, used): (ShardMeta, usize) = bincode::serde::decode_from_slice(
            meta_bytes,
            bincode::config::standard().with_limit::<META_DECODE_LIMIT>(),
        )
        .map_err(|e| ShardError::corrupt(path, format!("metadata does not decode: {e}")))?;
        if used as u64 != header.meta_len {
            return Err(ShardError::corrupt(path, "metadata length mismatch"));
        }
        if meta.images.len() as u64 != header.count {
            return Err(ShardError::corrupt(
                path,
                format!(
                    "metadata lists {} images but the header says {}",
                    meta.images.len(),
                    header.count
                ),
            ));
        }
        #[cfg(unix)]
        {
            let _ = map.advise(memmap2::Advice::Random);
        }
        Ok(Shard {
            path: path.to_path_buf(),
            header,
            meta,
            map,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn header(&self) -> &Header {
        &self.header
    }
    pub fn meta(&self) -> &ShardMeta {
        &self.meta
    }
    pub fn len(&self) -> usize {
        self.header.count as usize
    }
    pub fn is_empty(&self) -> bool {
        self.header.count == 0
    }
    pub fn height(&self) -> usize {
        self.header.height as usize
    }
    pub fn width(&self) -> usize {
        self.header.width as usize
    }
    pub fn channels(&self) -> usize {
        self.header.channels as usize
    }
    /// Bytes per image (H*W*C).
    pub fn image_len(&self) -> usize {
        self.header.image_len()
    }

    /// The whole payload, zero-copy.
    pub fn payload(&self) -> &[u8] {
        let start = self.header.payload_offset as usize;
        &self.map[start..start + self.header.payload_len as usize]
    }

    /// Image `i` as HWC bytes, zero-copy. Panics if `i >= len()`.
    pub fn image(&self, i: usize) -> &[u8] {
        self.images(i..i + 1)
    }

    /// A contiguous range of images, zero-copy. Panics if out of bounds.
    pub fn images(&self, range: Range<usize>) -> &[u8] {
        assert!(
            range.start <= range.end && range.end <= self.len(),
            "image range {range:?} out of bounds for a shard of {} images",
            self.len()
        );
        let n = self.image_len();
        &self.payload()[range.start * n..range.end * n]
    }

    /// Indices of the images in one split, ascending.
    pub fn indices(&self, split: Split) -> Vec<usize> {
        self.meta
            .images
            .iter()
            .enumerate()
            .filter(|(_, m)| m.split == split)
            .map(|(i, _)| i)
            .collect()
    }

    /// Recomputes the payload checksum and compares it with the stored one.
    pub fn verify(&self) -> Result<(), ShardError> {
        let sum = crate::checksum(self.payload());
        if sum != self.meta.payload_checksum {
            return Err(ShardError::corrupt(
                &self.path,
                format!(
                    "payload checksum mismatch (stored {:016x}, computed {sum:016x})",
                    self.meta.payload_checksum
                ),
            ));
        }
        Ok(())
    }
}
