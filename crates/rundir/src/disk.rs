//! The file-system calls of a checkpoint write, each one checked and counted. [`Disk::real`]
//! passes them through; [`Disk::failing_at`] makes call number `k` fail (a write fails after
//! writing half its bytes, as a full disk does), so a test can walk a failure over every
//! position of a checkpoint write.

use std::io::Write;
use std::path::Path;

/// Performs (and counts) the file-system calls of a checkpoint write.
#[derive(Debug, Default)]
pub struct Disk {
    calls: usize,
    fail_at: Option<usize>,
}

impl Disk {
    /// The real file system, no failure injected.
    pub fn real() -> Self {
        Disk::default()
    }

    /// For tests: call number `k` (0-based) fails with an I/O error.
    pub fn failing_at(k: usize) -> Self {
        Disk {
            calls: 0,
            fail_at: Some(k),
        }
    }

    /// How many calls have been made (a test learns a write's positions from a clean run).
    pub fn calls(&self) -> usize {
        self.calls
    }

    /// Counts one call; `Err` when this is the call chosen to fail.
    fn call(&mut self, what: &str, path: &Path) -> std::io::Result<()> {
        let n = self.calls;
        self.calls += 1;
        if self.fail_at == Some(n) {
            return Err(std::io::Error::other(format!(
                "injected failure of file-system call {n} ({what} {})",
                path.display()
            )));
        }
        Ok(())
    }

    /// Creates `path` and writes all of `bytes`, then syncs it to the disk.
    pub fn write_file(&mut self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        self.call("create", path)?;
        let mut f = std::fs::File::create(path)?;
        if let Err(e) = self.call("write", path) {
            // A full disk takes part of the bytes, then refuses the rest.
            let _ = f.write_all(&bytes[..bytes.len() / 2]);
            return Err(e);
        }
        f.write_all(bytes)?;
        f.flush()?;
        self.call("sync", path)?;
        f.sync_all()
    }

    /// Reads a whole file back.
    pub fn read(&mut self, path: &Path) -> std::io::Result<Vec<u8>> {
        self.call("read", path)?;
        std::fs::read(path)
    }

    pub fn create_dir_all(&mut self, path: &Path) -> std::io::Result<()> {
        self.call("create folder", path)?;
        std::fs::create_dir_all(path)
    }

    pub fn remove_dir_all(&mut self, path: &Path) -> std::io::Result<()> {
        self.call("remove folder", path)?;
        std::fs::remove_dir_all(path)
    }

    pub fn rename(&mut self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.call("rename", from)?;
        std::fs::rename(from, to)
    }

    /// Syncs a folder, so the renames and new entries in it reach the disk.
    pub fn sync_dir(&mut self, path: &Path) -> std::io::Result<()> {
        self.call("sync folder", path)?;
        std::fs::File::open(path)?.sync_all()
    }
}
