//! The run directory as the trainer uses it: the lock and history of `facegan_rundir`, and the
//! `train.log` line writer.

use std::path::Path;

pub use facegan_rundir::history::clear as clear_run;
pub use facegan_rundir::RunLock;

use crate::artifacts;

/// Prints a line and appends it to the run's `train.log`.
pub fn print_and_log(run: &Path, line: &str) {
    println!("{line}");
    artifacts::log_line(run, line);
}

/// At the start of a run, with its lock held: recovers a checkpoint set aside by a crash,
/// removes half-written checkpoint folders and the temp files of interrupted writes.
pub fn recover_after_crash(run: &Path) {
    facegan_rundir::checkpoint::recover(run);
    facegan_rundir::history::remove_stale_temp_files(run);
}
