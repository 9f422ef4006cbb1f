//! facegan-common: the small pieces every stage shares, so no stage imports another for them.
//!
//! - [`files`]: atomic writes (temp file, fsync, rename), the one way any stage writes a file.
//! - [`images`]: `[n, 3, h, w]` floats to RGB images, grids, PNG and animated GIF output.
//! - [`progress`]: the terminal progress bar.
//! - [`charts`]: line charts as PNG, with bands for spreads.
//! - [`TOOL_VERSION`]: the version string stamped into shards, checkpoints and reports.
//!
//! It sits below every stage and depends on none of them (see ARCHITECTURE.md).

// CI fails on a dependency the crate no longer uses (unit-test builds also see dev-dependencies).
#![cfg_attr(not(test), deny(unused_crate_dependencies))]

pub mod charts;
pub mod files;
pub mod images;
pub mod progress;

pub use files::{write_atomic, FileError};

/// "facegan X.Y.Z": written into shard headers, checkpoints and eval reports.
pub const TOOL_VERSION: &str = concat!("facegan ", env!("CARGO_PKG_VERSION"));
