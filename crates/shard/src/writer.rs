//! Streaming, atomic shard writer: temp file in the destination folder, fsync, rename.
//!
//! The payload streams through [`crate::payload::PayloadWriter`] (large aligned blocks, written
//! by a background thread, `O_DIRECT` where possible); the metadata and then the header are
//! written last, and the file is synced before it is renamed into place.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::format::{
    page_align, Header, ImageMeta, PixelLayout, ShardMeta, ShardSettings, FORMAT_VERSION,
    HEADER_LEN,
};
use crate::payload::{Mode, PayloadWriter};
use crate::ShardError;

/// Between a shard's name and the writing process's id in its temp file's name.
const TMP_INFIX: &str = ".tmp-";

/// Deletes temp files of `name` left in `dir` by writers whose process is gone (killed or
/// crashed): `.NAME.tmp-PID` with no live PID. Only on Linux, where `/proc` says which processes
/// live; elsewhere they stay.
fn remove_stale_temps(dir: &Path, name: &str) {
    if !cfg!(target_os = "linux") {
        return;
    }
    let prefix = format!(".{name}{TMP_INFIX}");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let file_name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = file_name
            .strip_prefix(&prefix)
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Writes a shard image by image. Nothing appears at the final path until [`finish`](Self::finish)
/// succeeds; dropping an unfinished writer deletes its temp file.
pub struct ShardWriter {
    final_path: PathBuf,
    tmp_path: PathBuf,
    /// The temp file (for the metadata and header at the end) and the payload stream into it;
    /// `None` once finished.
    out: Option<(File, PayloadWriter)>,
    height: u32,
    width: u32,
    meta_capacity: u64,
    payload_offset: u64,
    images: Vec<ImageMeta>,
    hasher: xxhash_rust::xxh3::Xxh3,
}

impl ShardWriter {
    /// Starts a shard of `height x width` RGB images. `meta_capacity` is an upper bound on the
    /// encoded metadata (see [`ShardMeta::size_bound`]); the payload starts after it.
    pub fn create(
        final_path: impl AsRef<Path>,
        height: u32,
        width: u32,
        meta_capacity: u64,
    ) -> Result<ShardWriter, ShardError> {
        let final_path = final_path.as_ref().to_path_buf();
        let dir = final_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| ShardError::io(dir, e))?;
        let name = final_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "shard".into());
        if final_path.is_dir() {
            return Err(ShardError::io(
                &final_path,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "is a folder; name a shard file to write",
                ),
            ));
        }
        remove_stale_temps(dir, &name);
        let tmp_path = dir.join(format!(".{name}{TMP_INFIX}{}", std::process::id()));
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp_path)
            .map_err(|e| ShardError::io(&tmp_path, e))?;
        let payload_offset = page_align(HEADER_LEN as u64 + meta_capacity);
        let payload =
            match PayloadWriter::start(&tmp_path, &file, payload_offset, Mode::DirectIfPossible) {
                Ok(p) => p,
                Err(e) => {
                    let _ = std::fs::remove_file(&tmp_path);
                    return Err(ShardError::io(&tmp_path, e));
                }
            };
        Ok(ShardWriter {
            final_path,
            tmp_path,
            out: Some((file, payload)),
            height,
            width,
            meta_capacity,
            payload_offset,
            images: Vec::new(),
            hasher: xxhash_rust::xxh3::Xxh3::new(),
        })
    }

    /// Bytes of one image.
    pub fn image_len(&self) -> usize {
        self.height as usize * self.width as usize * 3
    }

    /// Number of images written so far.
    pub fn len(&self) -> usize {
        self.images.len()
    }
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// Appends one HWC RGB image.
    pub fn push(&mut self, pixels: &[u8], meta: ImageMeta) -> Result<(), ShardError> {
        assert_eq!(
            pixels.len(),
            self.image_len(),
            "image has the wrong byte length"
        );
        let (_, payload) = self.out.as_mut().expect("writer already finished");
        payload
            .write(pixels)
            .map_err(|e| ShardError::io(&self.tmp_path, e))?;
        self.hasher.update(pixels);
        self.images.push(meta);
        Ok(())
    }

    /// Writes metadata and header, fsyncs, and renames into place.
    pub fn finish(
        mut self,
        tool_version: &str,
        settings: ShardSettings,
    ) -> Result<Header, ShardError> {
        let (file, payload) = self.out.take().expect("writer already finished");
        let meta = ShardMeta {
            tool_version: tool_version.to_string(),
            settings,
            payload_checksum: self.hasher.digest(),
            images: std::mem::take(&mut self.images),
        };
        let meta_bytes = meta.encode();
        assert!(
            meta_bytes.len() as u64 <= self.meta_capacity,
            "metadata ({} bytes) exceeds the reserved {} bytes",
            meta_bytes.len(),
            self.meta_capacity
        );
        let count = meta.images.len() as u64;
        let header = Header {
            version: FORMAT_VERSION,
            count,
            height: self.height,
            width: self.width,
            channels: 3,
            layout: PixelLayout::Hwc,
            meta_offset: HEADER_LEN as u64,
            meta_len: meta_bytes.len() as u64,
            payload_offset: self.payload_offset,
            payload_len: count * self.image_len() as u64,
            meta_checksum: xxhash_rust::xxh3::xxh3_64(&meta_bytes),
        };
        // On any failure below, the temp file goes (nothing half-written is left behind).
        let written = self.write_tail(file, payload, &meta_bytes, &header);
        if let Err(e) = written {
            let _ = std::fs::remove_file(&self.tmp_path);
            return Err(e);
        }
        if let Some(dir) = self.final_path.parent() {
            if let Ok(d) = File::open(if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            }) {
                let _ = d.sync_all();
            }
        }
        Ok(header)
    }

    /// The end of [`finish`](Self::finish): payload flushed, metadata and header written, the
    /// file synced and renamed into place.
    fn write_tail(
        &self,
        mut file: File,
        payload: PayloadWriter,
        meta_bytes: &[u8],
        header: &Header,
    ) -> Result<(), ShardError> {
        let tmp = self.tmp_path.clone();
        let io = |e| ShardError::io(&tmp, e);
        payload.finish().map_err(io)?;
        // Cuts the last block's padding; an empty shard still needs the file to reach the
        // payload offset.
        file.set_len(header.payload_offset + header.payload_len)
            .map_err(io)?;
        file.seek(SeekFrom::Start(HEADER_LEN as u64)).map_err(io)?;
        file.write_all(meta_bytes).map_err(io)?;
        // The header goes last: until it is written, the file has no magic and cannot be opened.
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(&header.encode()).map_err(io)?;
        // One sync before the rename is enough: until the rename the file only exists under its
        // temp name, so a crash at any point before it leaves nothing at the final path.
        file.sync_all().map_err(io)?;
        drop(file);
        std::fs::rename(&self.tmp_path, &self.final_path)
            .map_err(|e| ShardError::io(&self.final_path, e))?;
        Ok(())
    }
}

impl Drop for ShardWriter {
    fn drop(&mut self) {
        if self.out.is_some() {
            // Waits for the payload thread, then deletes the temp file.
            self.out = None;
            let _ = std::fs::remove_file(&self.tmp_path);
        }
    }
}
