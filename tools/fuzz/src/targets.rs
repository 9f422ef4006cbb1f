//! The fuzz targets: every parser of bytes that come from disk or from the cluster's ports,
//! driven the way facegan drives it.
//! A target returns normally for any input (an `Err` is a clear refusal, which is fine); a panic,
//! abort, hang or runaway allocation is a bug.

use std::path::Path;

use facegan_shard::Shard;
use facegan_trainer::checkpoint::TrainState;
use facegan_trainer::TrainConfig;

/// The targets by name.
pub const TARGETS: [&str; 6] = ["shard", "state", "config", "image", "orchestrator", "node"];

/// Runs target `name` on `input`; `scratch` is a private folder for files the target needs.
pub fn run(name: &str, input: &[u8], scratch: &Path) {
    match name {
        "shard" => shard(input, scratch),
        "state" => state(input),
        "config" => config(input),
        "image" => image(input),
        "orchestrator" => burn_collective::fuzzing::orchestrator_messages(input),
        "node" => node(input),
        other => panic!("unknown target {other}"),
    }
}

/// A shard file as `inspect --verify` and the trainer read it: header, metadata, every image,
/// both splits, the payload checksum.
fn shard(input: &[u8], scratch: &Path) {
    let path = scratch.join("input.shard");
    std::fs::write(&path, input).expect("scratch file writes");
    if let Ok(s) = Shard::open(&path) {
        let mut acc = 0u64;
        for i in 0..s.len() {
            acc = acc.wrapping_add(s.image(i).iter().map(|&b| b as u64).sum::<u64>());
        }
        let _ = s.indices(facegan_shard::Split::Train);
        let _ = s.indices(facegan_shard::Split::Holdout);
        let _ = s.verify();
        std::hint::black_box(acc);
    }
}

/// A checkpoint's `state.json` as resume reads it, then its config as resume checks it.
fn state(input: &[u8]) {
    if let Ok(state) = serde_json::from_slice::<TrainState>(input) {
        let _ = state.config.validate();
    }
}

/// A `--config` TOML file (partial or full), resolved and validated as `train` does.
fn config(input: &[u8]) {
    if let Ok(text) = std::str::from_utf8(input) {
        if let Ok(cfg) = TrainConfig::from_toml_str(text) {
            let _ = cfg.to_toml();
        }
    }
}

/// One image file as preprocess decodes it (JPEG, PNG; with its size limits and checks).
fn image(input: &[u8]) {
    let _ = std::hint::black_box(facegan_preprocess::decode::decode_rgb(input));
}

/// A message to a node's data service (first byte even) or sync service (odd), decoded as the
/// node's `/data` and `/sync` routes decode it.
fn node(input: &[u8]) {
    match input.split_first() {
        Some((kind, rest)) if kind % 2 == 0 => {
            let _ = burn_communication::data_service::decode_data_message_for_fuzzing(rest);
        }
        Some((_, rest)) => burn_collective::fuzzing::sync_message(rest),
        None => {}
    }
}
