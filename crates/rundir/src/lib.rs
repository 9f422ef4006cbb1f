//! facegan-rundir: the run directory (`runs/NAME/`), the on-disk format that joins training to
//! evaluation, the way `facegan-shard` joins preprocessing to training.
//!
//! - [`checkpoint`]: checkpoint folders under `RUN/checkpoints/`: writing one (every byte
//!   checked and synced, checksums of the bytes meant to be written, read back, `DONE` last,
//!   renamed into place), listing, verifying, rotation, the `best` folder, and recovery after a
//!   crash mid-save.
//! - [`choice`]: which checkpoint a command means (`latest`, `best`, an epoch, `images:COUNT`)
//!   and finding it.
//! - [`config`]: the resolved training config (`config.toml`, and in every `state.json`): the
//!   presets' networks and training settings, the recommended preset per image size, checks.
//! - [`state`]: `state.json` ([`TrainState`]: epoch, step, fixed noise, best score) and finding a
//!   checkpoint by what it holds (`best`, after an epoch).
//! - [`networks`]: a checkpoint's generator (or its EMA) and discriminator loaded onto any
//!   backend, older record layouts included, shapes checked against the config.
//! - [`grow`]: progressive growing's schedule, and the level the networks run at after a
//!   number of images.
//! - [`disk`]: the file-system calls a checkpoint write makes, counted, so a test can make any
//!   one of them fail.
//! - [`history`]: what an earlier run left in a directory (so nothing is overwritten without
//!   `--new`), removing it, and temp files of dead processes.
//! - [`lock`]: the exclusive lock a training process holds on its run directory.
//! - [`quality_csv`]: `quality.csv`, the live quality curve (with each score's spread).
//!
//! Turning a training `Gan` (networks and optimizers) into checkpoint files and back is the
//! trainer's; reading the networks back, as eval does, needs only this crate and the model.

// CI fails on a dependency the crate no longer uses (unit-test builds also see dev-dependencies).
#![cfg_attr(not(test), deny(unused_crate_dependencies))]

pub mod checkpoint;
pub mod choice;
pub mod config;
pub mod disk;
pub mod grow;
pub mod history;
pub mod lock;
pub mod networks;
pub mod quality_csv;
pub mod state;

pub use checkpoint::CheckpointInfo;
pub use choice::{find_checkpoint, CheckpointChoice};
pub use config::{LossKind, StepKind, TrainConfig};
pub use disk::Disk;
pub use lock::RunLock;
pub use state::TrainState;
