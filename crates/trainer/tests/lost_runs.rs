//! No lost runs: a checkpoint write that fails at any file-system call leaves the run resumable
//! from its earlier checkpoints (numbered and `best`); a checkpoint whose records do not load is
//! skipped on resume whatever its checksums say; and a run directory with history but no usable
//! checkpoint is refused rather than started over.

#[allow(dead_code)] // this binary uses only some of the shared helpers
mod common;
use common::{rng_turn, tiny_shard, train_options as opts};

use std::path::Path;

use facegan_rundir::Disk;
use facegan_trainer::checkpoint;
use facegan_trainer::device::CpuBackend as AD;
use facegan_trainer::{train, TrainConfig};

fn tiny(epochs: usize) -> TrainConfig {
    let mut cfg = TrainConfig::preset("tiny").unwrap();
    cfg.epochs = epochs;
    cfg.batch = 8;
    cfg
}

fn loads(dir: &Path, cfg: &TrainConfig) -> bool {
    checkpoint::verify(dir).is_ok()
        && checkpoint::load_gan::<AD>(dir, cfg, &Default::default()).is_ok()
}

#[test]
fn a_checkpoint_write_failing_at_any_call_leaves_the_run_resumable() {
    let _turn = rng_turn();
    let dir = tempfile::tempdir().unwrap();
    let shard = tiny_shard(dir.path(), 40);
    let run = dir.path().join("r");
    let mut cfg = tiny(1);
    cfg.eval_every = 16;
    train::<AD>(&opts(&shard, &run, cfg.clone()), &Default::default()).unwrap();
    let first = checkpoint::latest(&run).unwrap().unwrap();
    let best = checkpoint::best(&run).expect("a best checkpoint");
    let state = checkpoint::load_state(&first.dir).unwrap();
    let gan = checkpoint::load_gan::<AD>(&first.dir, &cfg, &Default::default()).unwrap();
    let mut next = state.clone();
    next.step += 1;
    // The calls of one numbered save and one replacement of `best`, from clean writes.
    let mut disk = Disk::real();
    let written = checkpoint::save_to(&run, &gan, &next, 5, &mut disk).unwrap();
    let numbered_calls = disk.calls();
    std::fs::remove_dir_all(&written).unwrap();
    let mut disk = Disk::real();
    checkpoint::save_best_to(&run, &gan, &state, &mut disk).unwrap();
    let best_calls = disk.calls();
    assert!(numbered_calls >= 20, "{numbered_calls}");
    for k in 0..numbered_calls {
        match checkpoint::save_to(&run, &gan, &next, 5, &mut Disk::failing_at(k)) {
            Err(e) => {
                assert!(format!("{e:#}").contains("untouched"), "call {k}: {e:#}");
                assert_eq!(
                    checkpoint::latest(&run).unwrap().unwrap(),
                    first,
                    "call {k}"
                );
            }
            Ok(dir) => {
                assert!(loads(&dir, &cfg), "call {k}: a saved checkpoint loads");
                std::fs::remove_dir_all(&dir).unwrap();
            }
        }
        assert!(loads(&first.dir, &cfg), "call {k}: the earlier checkpoint");
    }
    for k in 0..best_calls {
        let result = checkpoint::save_best_to(&run, &gan, &next, &mut Disk::failing_at(k));
        let now = checkpoint::best(&run).expect("a complete best after any failure");
        assert!(loads(&now.dir, &cfg), "call {k}");
        let expected = if result.is_ok() { next.step } else { best.step };
        assert_eq!(now.step, expected, "call {k}: {result:?}");
        if result.is_ok() {
            checkpoint::save_best(&run, &gan, &state).unwrap();
        }
    }
    // The run trains on from its checkpoint.
    let mut o = opts(&shard, &run, cfg);
    o.epochs_override = Some(2);
    let summary = train::<AD>(&o, &Default::default()).unwrap();
    assert_eq!(summary.resumed_from.as_deref(), Some(first.dir.as_path()));
    assert_eq!(summary.state.epoch, 2);
}

/// What an older facegan could leave: a truncated file whose checksum was taken of the
/// truncated bytes, so it verifies but does not load.
fn truncate_with_matching_checksum(dir: &Path, name: &str) {
    let p = dir.join(name);
    let bytes = std::fs::read(&p).unwrap();
    let cut = &bytes[..bytes.len() / 2];
    std::fs::write(&p, cut).unwrap();
    let list = dir.join(checkpoint::CHECKSUMS_FILE);
    let mut sums: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&std::fs::read_to_string(&list).unwrap()).unwrap();
    sums.insert(
        name.into(),
        format!("{:016x}", xxhash_rust::xxh3::xxh3_64(cut)),
    );
    std::fs::write(&list, serde_json::to_string(&sums).unwrap()).unwrap();
}

#[test]
fn resume_skips_a_checkpoint_that_does_not_load_whatever_its_checksums_say() {
    let _turn = rng_turn();
    let dir = tempfile::tempdir().unwrap();
    let shard = tiny_shard(dir.path(), 40);
    let run = dir.path().join("r");
    let mut cfg = tiny(2);
    cfg.eval_every = 0;
    train::<AD>(&opts(&shard, &run, cfg.clone()), &Default::default()).unwrap();
    let all = checkpoint::list(&run).unwrap();
    truncate_with_matching_checksum(&all[1].dir, "discriminator.bin");
    assert!(
        checkpoint::verify(&all[1].dir).is_ok(),
        "the checksum matches"
    );
    let mut o = opts(&shard, &run, cfg);
    o.epochs_override = Some(3);
    let summary = train::<AD>(&o, &Default::default()).unwrap();
    assert_eq!(summary.resumed_from.as_deref(), Some(all[0].dir.as_path()));
    assert_eq!(summary.state.epoch, 3);
}

#[test]
fn a_run_with_history_but_no_usable_checkpoint_is_refused_not_started_over() {
    let _turn = rng_turn();
    let dir = tempfile::tempdir().unwrap();
    let shard = tiny_shard(dir.path(), 60);
    let run = dir.path().join("r");
    let mut cfg = tiny(3);
    cfg.eval_every = 16;
    train::<AD>(&opts(&shard, &run, cfg.clone()), &Default::default()).unwrap();
    // One flipped bit in every numbered checkpoint; `best` stays intact.
    for c in checkpoint::list(&run).unwrap() {
        let g = c.dir.join("generator.bin");
        let mut b = std::fs::read(&g).unwrap();
        b[100] ^= 1;
        std::fs::write(&g, &b).unwrap();
    }
    let read = |name: &str| std::fs::read(run.join(name)).unwrap();
    let (metrics, quality, log) = (read("metrics.csv"), read("quality.csv"), read("train.log"));
    let best_before = std::fs::read(run.join("checkpoints/best/generator.bin")).unwrap();
    let grids = std::fs::read_dir(run.join("samples")).unwrap().count();
    let err = train::<AD>(&opts(&shard, &run, cfg.clone()), &Default::default()).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("no checkpoint to resume from"), "{msg}");
    assert!(msg.contains("metrics.csv (3 rows)"), "{msg}");
    assert!(msg.contains("3 sample grid(s)"), "{msg}");
    assert!(msg.contains("`--new` would delete"), "{msg}");
    assert_eq!(read("metrics.csv"), metrics);
    assert_eq!(read("quality.csv"), quality);
    assert_eq!(read("train.log"), log);
    assert_eq!(
        std::fs::read(run.join("checkpoints/best/generator.bin")).unwrap(),
        best_before
    );
    assert_eq!(
        std::fs::read_dir(run.join("samples")).unwrap().count(),
        grids
    );
    // `--new` starts over.
    let mut o = opts(&shard, &run, cfg);
    o.new = true;
    o.epochs_override = Some(1);
    let summary = train::<AD>(&o, &Default::default()).unwrap();
    assert_eq!(summary.resumed_from, None);
    assert_eq!(summary.state.epoch, 1);
}
