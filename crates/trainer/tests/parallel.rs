//! Data-parallel training (`train_parallel`, `--devices cpu:N`) on the CPU: two peers at a
//! global batch give the weights one device gives at that batch; with BatchNorm (each peer its
//! own batch statistics) the losses track; a peer that fails stops the others with its name;
//! a batch the peer count does not divide is refused before anything is written.

mod common;
use common::{rng_turn, tiny_shard, train_options, values};

use std::path::Path;
use std::time::Duration;

use facegan_trainer::checkpoint;
use facegan_trainer::device::{CpuBackend, CpuInference};
use facegan_trainer::{train_parallel, TrainConfig, TrainOptions, TrainOutcome, TrainSummary};

/// Options that train `cfg` for `steps` steps.
fn opts(data: &Path, run: &Path, cfg: TrainConfig, steps: u64) -> TrainOptions {
    TrainOptions {
        max_steps: Some(steps),
        ..train_options(data, run, cfg)
    }
}

/// `tiny` at batch 64 with nothing that draws per-sample randomness apart from the noise
/// (no dropout, no augmentation) and, unless `batchnorm`, no BatchNorm: then a global batch
/// split over peers is the same computation as one device's, up to float summation order.
fn tiny_cfg(batchnorm: bool) -> TrainConfig {
    let mut cfg = TrainConfig::preset("tiny").unwrap();
    cfg.batch = 64;
    cfg.epochs = 50;
    cfg.eval_every = 0;
    cfg.model.d_dropout = 0.0;
    cfg.model.d_batchnorm = vec![batchnorm; cfg.model.d_batchnorm.len()];
    cfg.model.g_batchnorm = vec![batchnorm; cfg.model.g_batchnorm.len()];
    cfg
}

fn train_on(o: &TrainOptions, peers: usize) -> anyhow::Result<TrainSummary> {
    let devices = vec![Default::default(); peers];
    train_parallel::<CpuBackend>(o, &devices, None, Duration::from_secs(60))
}

/// G's and D's float tensors (weights; running statistics too) of the run's latest checkpoint.
fn weights(run: &Path, cfg: &TrainConfig) -> Vec<Vec<f32>> {
    let dev = Default::default();
    let ckpt = checkpoint::latest(run).unwrap().expect("a checkpoint");
    let g = checkpoint::load_generator::<CpuInference>(&ckpt.dir, cfg, &dev).unwrap();
    let d = checkpoint::load_discriminator::<CpuInference>(&ckpt.dir, cfg, &dev).unwrap();
    let mut all = values(&g);
    all.extend(values(&d));
    all
}

fn max_abs_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| {
            assert_eq!(x.len(), y.len());
            x.iter().zip(y).map(|(p, q)| (p - q).abs())
        })
        .fold(0.0, f32::max)
}

#[test]
fn two_peers_give_one_devices_weights_and_losses() {
    let _turn = rng_turn();
    let tmp = tempfile::tempdir().unwrap();
    let shard = tiny_shard(tmp.path(), 160);

    // Without BatchNorm: the same weights after 5 steps.
    let cfg = tiny_cfg(false);
    let one = tmp.path().join("one");
    let two = tmp.path().join("two");
    let s1 = train_on(&opts(&shard, &one, cfg.clone(), 5), 1).unwrap();
    let s2 = train_on(&opts(&shard, &two, cfg.clone(), 5), 2).unwrap();
    assert_eq!(s1.outcome, TrainOutcome::Stopped { step: 5 });
    assert_eq!(s2.outcome, TrainOutcome::Stopped { step: 5 });
    let (w1, w2) = (weights(&one, &cfg), weights(&two, &cfg));
    let start = {
        let r = tmp.path().join("start");
        train_on(&opts(&shard, &r, cfg.clone(), 1), 1).unwrap();
        weights(&r, &cfg)
    };
    let moved = max_abs_diff(&w1, &start);
    let diff = max_abs_diff(&w1, &w2);
    eprintln!("no BatchNorm, 5 steps: largest weight difference 1 vs 2 peers {diff:e} (weights moved up to {moved:e} after step 1)");
    assert!(moved > 1e-4, "training moved nothing");
    assert!(diff < 1e-5, "2 peers drifted from 1 device: {diff}");

    // With BatchNorm (each peer normalises its own 32 images): the losses track.
    let cfg = tiny_cfg(true);
    let one = tmp.path().join("bn-one");
    let two = tmp.path().join("bn-two");
    let s1 = train_on(&opts(&shard, &one, cfg.clone(), 6), 1).unwrap();
    let s2 = train_on(&opts(&shard, &two, cfg.clone(), 6), 2).unwrap();
    // 144 train images: 2 batches of 64 an epoch, so 6 steps are 3 epochs.
    assert_eq!((s1.metrics.len(), s2.metrics.len()), (3, 3));
    let mut gap = 0.0f64;
    for (a, b) in s1.metrics.iter().zip(&s2.metrics) {
        eprintln!(
            "BatchNorm, epoch {}: D loss {:.4} vs {:.4}, G loss {:.4} vs {:.4} (1 vs 2 peers)",
            a.epoch, a.loss_d, b.loss_d, a.loss_g, b.loss_g
        );
        gap = gap
            .max((a.loss_d - b.loss_d).abs())
            .max((a.loss_g - b.loss_g).abs());
    }
    assert!(gap < 0.05, "losses diverged by {gap}");
}

#[test]
fn a_run_resumes_on_another_number_of_devices() {
    let _turn = rng_turn();
    let tmp = tempfile::tempdir().unwrap();
    let shard = tiny_shard(tmp.path(), 160);
    let cfg = tiny_cfg(false);
    // 4 steps on one device, against 2 on one device then 2 more on two.
    let straight = tmp.path().join("straight");
    train_on(&opts(&shard, &straight, cfg.clone(), 4), 1).unwrap();
    let switched = tmp.path().join("switched");
    train_on(&opts(&shard, &switched, cfg.clone(), 2), 1).unwrap();
    let mut o = opts(&shard, &switched, cfg.clone(), 4);
    o.config = None;
    let s = train_on(&o, 2).unwrap();
    assert_eq!(s.outcome, TrainOutcome::Stopped { step: 4 });
    let diff = max_abs_diff(&weights(&straight, &cfg), &weights(&switched, &cfg));
    eprintln!("resumed on 2 devices after 2 steps on 1: largest weight difference {diff:e}");
    assert!(diff < 1e-5, "the resumed run drifted: {diff}");
}

#[test]
fn a_failing_peer_stops_the_others_and_is_named() {
    let _turn = rng_turn();
    let tmp = tempfile::tempdir().unwrap();
    let shard = tiny_shard(tmp.path(), 160);
    let run = tmp.path().join("run");
    let mut o = opts(&shard, &run, tiny_cfg(true), 1_000);
    o.faults.device_fails_at = Some((1, 3));
    // The run must end (not hang): it is run on a thread and awaited with a generous bound.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(train_on(&o, 2).map(|s| s.state.step));
    });
    let result = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("the other peer hung instead of stopping");
    let err = format!("{:#}", result.expect_err("a failed peer must fail the run"));
    assert!(
        err.contains("peer 1 of the 2") && err.contains("device 1 failed at step 3"),
        "unclear error: {err}"
    );
}

#[test]
fn a_batch_the_peers_do_not_divide_is_refused_before_anything_is_written() {
    let _turn = rng_turn();
    let tmp = tempfile::tempdir().unwrap();
    let shard = tiny_shard(tmp.path(), 160);
    let run = tmp.path().join("run");
    let mut cfg = tiny_cfg(false);
    cfg.batch = 30;
    let err = format!(
        "{:#}",
        train_on(&opts(&shard, &run, cfg, 2), 4).unwrap_err()
    );
    assert!(
        err.contains("batch of 30") && err.contains("4 devices"),
        "{err}"
    );
    assert!(!run.exists(), "the run directory was touched");
}
