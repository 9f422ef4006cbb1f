//! The payload half of [`crate::ShardWriter`]: image bytes gathered into large page-aligned
//! blocks, which a background thread writes to the file, with `O_DIRECT` where the file system
//! takes it.
//!
//! A buffered write copies every byte into the page cache and leaves the kernel to write it back
//! later. For a shard that copy and the writeback cost a sizeable share of preprocessing's CPU:
//! on the 2-core dev machine, 92 MB written in 23 KB pieces plus an fsync took 106 ms of CPU
//! buffered and 13 ms with `O_DIRECT` (`dd`, `perf stat -r 8`), against about 1.4 CPU-seconds
//! for decoding and resizing those 4,000 images. A direct write goes from our block to the disk.
//!
//! Where `O_DIRECT` is refused (at open or at a write: some file systems, non-Linux systems),
//! the same thread writes through the page cache instead and syncs after each block, so that
//! the final fsync only waits for the tail. Either way the bytes on disk are the same.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

/// Alignment of direct-I/O buffers, lengths and file offsets (the page size; a multiple of any
/// logical block size in use).
const ALIGN: usize = 4096;
/// Bytes per block handed to the writing thread.
pub(crate) const BLOCK: usize = 4 << 20;
/// Blocks in rotation: one being filled, one queued, one being written.
const BLOCKS: usize = 3;

/// A `BLOCK`-byte buffer whose start is `ALIGN`-aligned (a plain `Vec` with slack in front).
struct AlignedBlock {
    raw: Vec<u8>,
    start: usize,
}

impl AlignedBlock {
    fn new() -> AlignedBlock {
        let raw = vec![0u8; BLOCK + ALIGN];
        let start = raw.as_ptr().align_offset(ALIGN);
        AlignedBlock { raw, start }
    }
    fn bytes(&self) -> &[u8] {
        &self.raw[self.start..self.start + BLOCK]
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.raw[self.start..self.start + BLOCK]
    }
}

/// One block to write: its first `len` bytes (a multiple of `ALIGN`) at file offset `offset`.
struct Job {
    block: AlignedBlock,
    offset: u64,
    len: usize,
}

/// How the writing thread reaches the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `O_DIRECT` if the system takes it, else buffered.
    DirectIfPossible,
    /// Through the page cache, syncing each block (tests use it to compare the two paths).
    #[cfg_attr(not(test), allow(dead_code))]
    Buffered,
}

/// Streams bytes into a file from `start` (a multiple of `ALIGN`) onwards.
pub(crate) struct PayloadWriter {
    /// The block being filled, and how many of its bytes are.
    block: Option<AlignedBlock>,
    filled: usize,
    /// File offset of the block being filled.
    offset: u64,
    /// Blocks allocated so far (at most `BLOCKS`).
    allocated: usize,
    jobs: Option<SyncSender<Job>>,
    free: Receiver<AlignedBlock>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl PayloadWriter {
    /// Starts the writing thread for the file at `path`, already open (for writing) as `file`.
    pub(crate) fn start(path: &Path, file: &File, start: u64, mode: Mode) -> io::Result<Self> {
        assert_eq!(
            start % ALIGN as u64,
            0,
            "payload offset must be page-aligned"
        );
        let buffered = file.try_clone()?;
        let direct = match mode {
            Mode::DirectIfPossible => open_direct(path),
            Mode::Buffered => None,
        };
        let (jobs, job_rx) = sync_channel::<Job>(1);
        let (free_tx, free) = sync_channel::<AlignedBlock>(BLOCKS);
        let thread = std::thread::Builder::new()
            .name("shard-payload".into())
            .spawn(move || write_jobs(job_rx, free_tx, direct, buffered))?;
        Ok(PayloadWriter {
            block: None,
            filled: 0,
            offset: start,
            allocated: 0,
            jobs: Some(jobs),
            free,
            thread: Some(thread),
        })
    }

    /// Appends `bytes` to the payload.
    pub(crate) fn write(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let mut block = match self.block.take() {
                Some(b) => b,
                None => self.next_block()?,
            };
            let n = bytes.len().min(BLOCK - self.filled);
            block.bytes_mut()[self.filled..self.filled + n].copy_from_slice(&bytes[..n]);
            self.filled += n;
            bytes = &bytes[n..];
            if self.filled == BLOCK {
                self.send(block, BLOCK)?;
                self.offset += BLOCK as u64;
                self.filled = 0;
            } else {
                self.block = Some(block);
            }
        }
        Ok(())
    }

    /// Writes what is left (the last block zero-padded to `ALIGN`; the caller truncates the file
    /// to the payload's end) and waits until every block is in the file.
    pub(crate) fn finish(mut self) -> io::Result<()> {
        if let Some(mut block) = self.block.take() {
            let len = self.filled.div_ceil(ALIGN) * ALIGN;
            block.bytes_mut()[self.filled..len].fill(0);
            self.send(block, len)?;
        }
        self.stop()
    }

    /// A free block: a new one while fewer than `BLOCKS` exist, else one the thread gave back.
    fn next_block(&mut self) -> io::Result<AlignedBlock> {
        if self.allocated < BLOCKS {
            self.allocated += 1;
            return Ok(AlignedBlock::new());
        }
        match self.free.recv() {
            Ok(b) => Ok(b),
            Err(_) => Err(self.stop_with_error()),
        }
    }

    fn send(&mut self, block: AlignedBlock, len: usize) -> io::Result<()> {
        let job = Job {
            block,
            offset: self.offset,
            len,
        };
        let sent = self.jobs.as_ref().map(|tx| tx.send(job).is_ok());
        if sent == Some(true) {
            Ok(())
        } else {
            Err(self.stop_with_error())
        }
    }

    /// The thread has stopped early: its error.
    fn stop_with_error(&mut self) -> io::Error {
        match self.stop() {
            Err(e) => e,
            Ok(()) => io::Error::other("the shard payload thread stopped"),
        }
    }

    /// Closes the queue and waits for the thread; returns its first error.
    fn stop(&mut self) -> io::Result<()> {
        self.jobs = None;
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("the shard payload thread panicked")),
            None => Ok(()),
        }
    }
}

impl Drop for PayloadWriter {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// The writing thread: each job to the direct file while that works, else through the buffered
/// one with a data sync after it. Every block goes back to the free list.
fn write_jobs(
    jobs: Receiver<Job>,
    free: SyncSender<AlignedBlock>,
    mut direct: Option<File>,
    buffered: File,
) -> io::Result<()> {
    for job in jobs {
        let data = &job.block.bytes()[..job.len];
        let mut done = false;
        if let Some(f) = &direct {
            // Opened, but a file system may still refuse to write this way (EINVAL, or another
            // error on some network and overlay file systems): buffered from then on. A real
            // I/O error shows again on the buffered write below.
            done = write_all_at(f, data, job.offset).is_ok();
            if !done {
                direct = None;
            }
        }
        if !done {
            write_all_at(&buffered, data, job.offset)?;
            buffered.sync_data()?;
        }
        // The writer may have stopped taking blocks back (it is finishing).
        let _ = free.try_send(job.block);
    }
    Ok(())
}

/// The file opened a second time for direct writes, if the system allows it.
#[cfg(target_os = "linux")]
fn open_direct(path: &Path) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .ok()
}

#[cfg(not(target_os = "linux"))]
fn open_direct(_path: &Path) -> Option<File> {
    None
}

#[cfg(unix)]
fn write_all_at(file: &File, data: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, data, offset)
}

#[cfg(not(unix))]
fn write_all_at(mut file: &File, data: &[u8], offset: u64) -> io::Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    file.seek(SeekFrom::Start(offset))?;
    file.write_all(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `bytes` in uneven pieces from offset `ALIGN` and returns the file's contents.
    fn write_with(mode: Mode, bytes: &[u8]) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("payload.bin");
        let file = File::create(&path).unwrap();
        let mut w = PayloadWriter::start(&path, &file, ALIGN as u64, mode).unwrap();
        let mut rest = bytes;
        let mut piece = 1;
        while !rest.is_empty() {
            let n = piece.min(rest.len());
            w.write(&rest[..n]).unwrap();
            rest = &rest[n..];
            piece = piece * 7 + 12_345;
        }
        w.finish().unwrap();
        file.set_len((ALIGN + bytes.len()) as u64).unwrap();
        std::fs::read(&path).unwrap()
    }

    #[test]
    fn direct_and_buffered_writes_leave_the_same_bytes() {
        // Three blocks and a bit: the rotation is used up and the tail is not block-aligned.
        let len = 3 * BLOCK + 12_345;
        let bytes: Vec<u8> = (0..len as u64)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let direct = write_with(Mode::DirectIfPossible, &bytes);
        let buffered = write_with(Mode::Buffered, &bytes);
        assert_eq!(direct.len(), ALIGN + len);
        assert!(direct[..ALIGN].iter().all(|&b| b == 0));
        assert!(direct[ALIGN..] == bytes[..], "direct write differs");
        assert!(buffered == direct, "buffered write differs");
    }

    #[test]
    fn an_empty_payload_writes_nothing() {
        assert_eq!(write_with(Mode::DirectIfPossible, &[]), vec![0u8; ALIGN]);
    }
}
