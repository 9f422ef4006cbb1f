//! Trainer behaviour on the tiny preset and a small synthetic shard: optimizer steps really
//! update weights, D's loss falls, resume is bit-exact, the NaN guard fires, bad inputs are refused.

mod common;
use common::{rng_turn, tiny_shard, train_options as opts, values};

use std::path::{Path, PathBuf};

use burn::module::AutodiffModule;
use burn::tensor::{Tensor, TensorData};
use facegan_trainer::checkpoint;
use facegan_trainer::device::{CpuBackend, CpuInference};
use facegan_trainer::gan::{noise, Gan};
use facegan_trainer::quality::QualityPoint;
use facegan_trainer::{train, TrainConfig, TrainOutcome, TrainSummary};

type AD = CpuBackend;

/// Equality of tensor lists without printing megabytes on failure.
fn same(a: &[Vec<f32>], b: &[Vec<f32>]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits())
        })
}

fn real_batch(shard: &Path, n: usize) -> Tensor<AD, 4> {
    let s = facegan_shard::Shard::open(shard).unwrap();
    let ids: Vec<usize> = (0..n).collect();
    let px = facegan_trainer::data::gather_chw(&s, &ids);
    facegan_trainer::gan::upload_images::<AD>(px, n, 16, 16, &Default::default())
}

#[test]
fn d_step_changes_only_d_and_g_step_changes_g() {
    let _turn = rng_turn();
    let dir = tempfile::tempdir().unwrap();
    let shard = tiny_shard(dir.path(), 40);
    let device = Default::default();
    let cfg = TrainConfig::preset("tiny").unwrap();
    let mut gan = Gan::<AD>::new(&cfg, &device);
    let real = real_batch(&shard, 16);
    let fake = gan.g.forward(noise::<AD>(16, cfg.model.latent, &device));
    let (g0, d0) = (values(&gan.g), values(&gan.d));
    gan.d_step(real.clone(), fake.clone());
    let (g1, d1) = (values(&gan.g), values(&gan.d));
    assert!(same(&g0, &g1), "D's step leaves G untouched");
    assert!(!same(&d0, &d1), "D's step updates D");
    // Every D tensor moved: weights, biases, BatchNorm scales and shifts, and the running
    // statistics (D's step runs D's forward passes in training mode).
    assert_eq!(
        unchanged(&d0, &d1),
        0,
        "D tensors left unchanged by D's step, of {}",
        d0.len()
    );
    gan.g_step(fake);
    let g2 = values(&gan.g);
    assert!(!same(&g1, &g2), "G's step updates G");
    // Every G parameter moved. Only G's BatchNorm running statistics stay: G's step
    // back-propagates through the fakes drawn before the snapshot, and running statistics move
    // with forward passes, not with optimizer steps (two tensors per BatchNorm).
    let running_stats = 2 * cfg.model.g_batchnorm.iter().filter(|&&b| b).count();
    assert_eq!(
        unchanged(&g1, &g2),
        running_stats,
        "G tensors left unchanged by G's step, of {}",
        g1.len()
    );
}

/// How many tensors of two same-shaped lists are bit for bit equal.
fn unchanged(a: &[Vec<f32>], b: &[Vec<f32>]) -> usize {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .filter(|(x, y)| {
            x.iter()
                .zip(y.iter())
                .all(|(p, q)| p.to_bits() == q.to_bits())
        })
        .count()
}

#[test]
fn d_loss_falls_on_a_fixed_real_batch() {
    let _turn = rng_turn();
    let dir = tempfile::tempdir().unwrap();
    let shard = tiny_shard(dir.path(), 40);
    let device = Default::default();
    let mut cfg = TrainConfig::preset("tiny").unwrap();
    cfg.lr_d = 2e-3;
    let mut gan = Gan::<AD>::new(&cfg, &device);
    let real = real_batch(&shard, 16);
    let mut losses = Vec::new();
    for step in 0..12 {
        let stats = gan
            .step(real.clone(), step)
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        losses.push(stats[0]);
    }
    let first = losses[0];
    let last = losses[losses.len() - 3..].iter().sum::<f32>() / 3.0;
    assert!(last < 0.8 * first, "D loss should fall: {losses:?}");
}

/// A checkpoint folder half-written by a process that was killed mid-save
/// (`checkpoints/.tmp-*`) is removed by the next run of that directory, and resume works.
#[test]
fn a_resumed_run_removes_checkpoint_temps_of_dead_processes() {
    let _turn = rng_turn();
    let dir = tempfile::tempdir().unwrap();
    let shard = tiny_shard(dir.path(), 40);
    let run = dir.path().join("run");
    let mut o = opts(&shard, &run, TrainConfig::preset("tiny").unwrap());
    o.max_steps = Some(1);
    train::<AD>(&o, &Default::default()).unwrap();
    let stale = run.join("checkpoints/.tmp-ckpt_000000002-4000000");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("generator.bin"), b"half").unwrap();
    o.max_steps = Some(2);
    let summary = train::<AD>(&o, &Default::default()).unwrap();
    assert_eq!(summary.state.step, 2);
    assert!(!stale.exists(), "the dead process's temp folder is gone");
}

/// `--max-images` stops at the first step that reaches the count (rounded up to a whole batch),
/// with a checkpoint; rerun with the same count, the run trains nothing, not even one step (a
/// resumable queue may rerun a finished job) and prepares no quality probe (its holdout floor
/// takes minutes at full size); a larger count extends it. `--max-steps` too.
#[test]
fn max_images_stops_at_the_count_and_a_rerun_trains_nothing() {
    let _turn = rng_turn();
    let dir = tempfile::tempdir().unwrap();
    let shard = tiny_shard(dir.path(), 40);
    let run = dir.path().join("run");
    let cfg = TrainConfig::preset("tiny").unwrap();
    let batch = cfg.batch as u64;
    let mut o = opts(&shard, &run, cfg);
    o.max_images = Some(2 * batch + 1);
    let first = train::<AD>(&o, &Default::default()).unwrap();
    assert_eq!(first.outcome, TrainOutcome::Stopped { step: 3 });
    assert_eq!(first.state.images_seen, 3 * batch);
    let log = std::fs::read_to_string(run.join("train.log")).unwrap();
    assert!(
        log.contains("rerun the same command with a larger --max-images"),
        "{log}"
    );
    let probes_announced = |log: &str| log.matches("quality probe:").count();
    assert_eq!(probes_announced(&log), 1, "{log}");
    let again = train::<AD>(&o, &Default::default()).unwrap();
    assert_eq!(again.outcome, TrainOutcome::Stopped { step: 3 });
    assert_eq!(again.state.images_seen, 3 * batch);
    let log = std::fs::read_to_string(run.join("train.log")).unwrap();
    assert!(log.contains("nothing to train"), "{log}");
    assert_eq!(
        probes_announced(&log),
        1,
        "the rerun prepared a probe: {log}"
    );
    o.max_images = Some(4 * batch);
    let extended = train::<AD>(&o, &Default::default()).unwrap();
    assert_eq!(extended.state.step, 4);
    let log = std::fs::read_to_string(run.join("train.log")).unwrap();
    assert_eq!(probes_announced(&log), 2, "{log}");
    // The same for --max-steps, on a run of its own.
    let run = dir.path().join("steps");
    let mut o = opts(&shard, &run, TrainConfig::preset("tiny").unwrap());
    o.max_steps = Some(1);
    train::<AD>(&o, &Default::default()).unwrap();
    let again = train::<AD>(&o, &Default::default()).unwrap();
    assert_eq!(again.outcome, TrainOutcome::Stopped { step: 1 });
    let log = std::fs::read_to_string(run.join("train.log")).unwrap();
    assert!(log.contains("--max-steps 1 reached"), "{log}");
    assert!(
        log.contains("past --max-steps 1; nothing to train"),
        "{log}"
    );
}

/// `--keep-at` keeps a checkpoint at the first step at or past each count, outside rotation:
/// it holds what a run stopped there by `--max-images` holds, and keeping it does not change
/// the run's course (its last checkpoint equals an unkept run's).
#[test]
fn keep_at_keeps_the_checkpoint_at_each_count_without_changing_the_run() {
    let _turn = rng_turn();
    let dir = tempfile::tempdir().unwrap();
    let shard = tiny_shard(dir.path(), 60);
    let mut cfg = TrainConfig::preset("tiny").unwrap();
    cfg.epochs = 2;
    cfg.batch = 8;
    cfg.sync_every = 4;
    cfg.keep_checkpoints = 1;
    let device = Default::default();
    let g_of = |dir: &Path| values(&checkpoint::load_gan::<AD>(dir, &cfg, &device).unwrap().g);
    // Kept at 17 (step 3, 24 images) and 40 (step 5): the whole run is 2 epochs of 6 steps.
    let kept = dir.path().join("kept");
    let mut o = opts(&shard, &kept, cfg.clone());
    o.keep_at_images = vec![40, 17];
    assert_eq!(
        train::<AD>(&o, &Default::default()).unwrap().outcome,
        TrainOutcome::Completed
    );
    assert_eq!(
        checkpoint::list(&kept).unwrap().len(),
        1,
        "rotation keeps one numbered"
    );
    assert_eq!(facegan_rundir::checkpoint::kept_counts(&kept), vec![17, 40]);
    let at17 = checkpoint::kept(&kept, 17).unwrap().unwrap();
    assert_eq!(at17.step, 3);
    assert_eq!(checkpoint::load_state(&at17.dir).unwrap().images_seen, 24);
    assert_eq!(checkpoint::kept(&kept, 40).unwrap().unwrap().step, 5);
    assert!(checkpoint::kept(&kept, 41).unwrap().is_none());
    let log = std::fs::read_to_string(kept.join("train.log")).unwrap();
    assert!(log.contains("at 24 images shown (--keep-at 17)"), "{log}");
    // A run stopped at 17 images holds the same networks.
    let stopped = dir.path().join("stopped");
    let mut o = opts(&shard, &stopped, cfg.clone());
    o.max_images = Some(17);
    train::<AD>(&o, &Default::default()).unwrap();
    let c = checkpoint::latest(&stopped).unwrap().unwrap();
    assert!(
        same(&g_of(&at17.dir), &g_of(&c.dir)),
        "kept checkpoint differs"
    );
    // And a run without --keep-at ends where the kept one did.
    let plain = dir.path().join("plain");
    train::<AD>(&opts(&shard, &plain, cfg.clone()), &Default::default()).unwrap();
    let (a, b) = (
        checkpoint::latest(&kept).unwrap().unwrap(),
        checkpoint::latest(&plain).unwrap().unwrap(),
    );
    assert!(
        same(&g_of(&a.dir), &g_of(&b.dir)),
        "keeping changed the run"
    );
}

/// `--init-from` starts a new run, on another shard of the same size and with other training
/// settings, from the source checkpoint's G, EMA and D with fresh optimizers; the config
/// records the source; rerun with the same flag, the new run resumes bit-exactly.
#[test]
fn init_from_fine_tunes_from_the_sources_networks_and_resumes_bit_exactly() {
    let _turn = rng_turn();
    let dir = tempfile::tempdir().unwrap();
    let source_shard = tiny_shard(&dir.path().join("source"), 40);
    let small_shard = tiny_shard(&dir.path().join("small"), 24);
    let mut cfg = TrainConfig::preset("tiny").unwrap();
    cfg.batch = 8;
    cfg.ema_beta = 0.9;
    let source = dir.path().join("source-run");
    let mut o = opts(&source_shard, &source, cfg.clone());
    o.max_steps = Some(3);
    train::<AD>(&o, &Default::default()).unwrap();
    let src = checkpoint::latest(&source).unwrap().unwrap();
    // Other training settings, the same model.
    let mut tuned_cfg = cfg.clone();
    tuned_cfg.lr_g *= 0.5;
    tuned_cfg.diffaugment = "translation".into();
    tuned_cfg.seed = 5;
    let device = Default::default();
    let start =
        checkpoint::load_networks_fresh_optimizers::<AD>(&src.dir, &tuned_cfg, &device).unwrap();
    let from = checkpoint::load_gan::<AD>(&src.dir, &cfg, &device).unwrap();
    assert!(
        same(&values(&start.g), &values(&from.g)),
        "G is the source's"
    );
    assert!(
        same(&values(&start.d), &values(&from.d)),
        "D is the source's"
    );
    let (a, b) = (start.g_ema.as_ref().unwrap(), from.g_ema.as_ref().unwrap());
    assert!(same(&values(a), &values(b)), "the EMA is the source's");
    // Trained in one go, and stopped then resumed with the same command.
    let init = Some((source.clone(), facegan_trainer::CheckpointChoice::Latest));
    let whole = dir.path().join("whole");
    let mut o = opts(&small_shard, &whole, tuned_cfg.clone());
    (o.init_from, o.max_steps) = (init.clone(), Some(4));
    train::<AD>(&o, &Default::default()).unwrap();
    let parts = dir.path().join("parts");
    let mut o = opts(&small_shard, &parts, tuned_cfg.clone());
    (o.init_from, o.max_steps) = (init, Some(2));
    let first = train::<AD>(&o, &Default::default()).unwrap();
    assert!(first.resumed_from.is_none());
    o.max_steps = Some(4);
    let second = train::<AD>(&o, &Default::default()).unwrap();
    assert!(second.resumed_from.is_some(), "the rerun resumes");
    assert_eq!(second.state.step, 4);
    let (cw, cp) = (
        checkpoint::latest(&whole).unwrap().unwrap(),
        checkpoint::latest(&parts).unwrap().unwrap(),
    );
    let (gw, gp) = (
        checkpoint::load_gan::<AD>(&cw.dir, &tuned_cfg, &device).unwrap(),
        checkpoint::load_gan::<AD>(&cp.dir, &tuned_cfg, &device).unwrap(),
    );
    assert!(same(&values(&gw.g), &values(&gp.g)), "resume is bit-exact");
    assert!(same(&values(&gw.d), &values(&gp.d)), "resume is bit-exact");
    assert!(!same(&values(&gw.g), &values(&from.g)), "training moved G");
    let recorded = checkpoint::load_state(&cp.dir)
        .unwrap()
        .config
        .init_from
        .unwrap();
    assert!(
        recorded.contains(&src.dir.display().to_string()),
        "{recorded}"
    );
    assert!(recorded.contains("step 3"), "{recorded}");
    let toml = std::fs::read_to_string(parts.join("config.toml")).unwrap();
    assert!(toml.contains("init_from"), "{toml}");
}

/// `--init-from` refuses a source whose model differs (naming each setting), a source without
/// a checkpoint, and a run that started from scratch; none of them writes the new run.
#[test]
fn init_from_refuses_another_model_a_source_without_checkpoint_and_a_scratch_run() {
    let _turn = rng_turn();
    let dir = tempfile::tempdir().unwrap();
    let shard = tiny_shard(dir.path(), 24);
    let mut cfg = TrainConfig::preset("tiny").unwrap();
    cfg.batch = 8;
    let source = dir.path().join("source");
    let mut o = opts(&shard, &source, cfg.clone());
    o.max_steps = Some(1);
    train::<AD>(&o, &Default::default()).unwrap();
    let latest = Some((source.clone(), facegan_trainer::CheckpointChoice::Latest));

    let mut wider = cfg.clone();
    wider.model.g_start_channels *= 2;
    let target = dir.path().join("wider");
    let mut o = opts(&shard, &target, wider);
    o.init_from = latest.clone();
    let err = format!("{:#}", train::<AD>(&o, &Default::default()).unwrap_err());
    assert!(err.contains("g_start_channels"), "{err}");
    assert!(err.contains("--init-from"), "{err}");
    assert!(!target.join("config.toml").exists(), "nothing written");

    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let mut o = opts(&shard, &dir.path().join("t2"), cfg.clone());
    o.init_from = Some((empty.clone(), facegan_trainer::CheckpointChoice::Latest));
    let err = format!("{:#}", train::<AD>(&o, &Default::default()).unwrap_err());
    assert!(err.contains("no finished checkpoint"), "{err}");

    let scratch = dir.path().join("scratch");
    let mut o = opts(&shard, &scratch, cfg.clone());
    o.max_steps = Some(1);
    train::<AD>(&o, &Default::default()).unwrap();
    o.init_from = latest;
    o.max_steps = Some(2);
    let err = format!("{:#}", train::<AD>(&o, &Default::default()).unwrap_err());
    assert!(err.contains("started from scratch"), "{err}");
    assert_eq!(checkpoint::latest(&scratch).unwrap().unwrap().step, 1);
}

/// `--resume` (`check_resumable`) refuses a run with no finished checkpoint, naming it, and
/// accepts one that has one.
#[test]
fn resume_is_refused_without_a_checkpoint() {
    let _turn = rng_turn();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let err = facegan_trainer::check_resumable(&run)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("run: --resume given but the run has no checkpoint"),
        "{err}"
    );
    let shard = tiny_shard(dir.path(), 40);
    let mut o = opts(&shard, &run, TrainConfig::preset("tiny").unwrap());
    o.max_steps = Some(1);
    train::<AD>(&o, &Default::default()).unwrap();
    facegan_trainer::check_resumable(&run).unwrap();
}

/// Both step kinds: `tiny` takes the seed's simultaneous step, and the alternating one.
#[test]
fn resume_is_bit_exact() {
    let cfg = TrainConfig::preset("tiny").unwrap();
    assert_eq!(cfg.step, facegan_trainer::StepKind::Simultaneous);
    check_resume_is_bit_exact(cfg.clone());
    let mut alternating = cfg;
    alternating.step = facegan_trainer::StepKind::Alternating;
    check_resume_is_bit_exact(alternating);
}

/// Every balancing option on at once (spectral norm, minibatch stddev, extra convs, logistic
/// loss with label smoothing, instance noise, DiffAugment, R1, EMA): resume is still bit-exact,
/// EMA included.
#[test]
fn resume_is_bit_exact_with_every_balancing_option() {
    let mut cfg = TrainConfig::preset("tiny").unwrap();
    cfg.model.spectral_norm = true;
    cfg.model.mbstd_group = 4;
    cfg.model.block_convs = 1;
    cfg.loss = facegan_trainer::LossKind::Logistic;
    cfg.label_smoothing = 0.1;
    cfg.instance_noise = 0.1;
    cfg.diffaugment = "color,translation,cutout".into();
    cfg.r1_gamma = 1.0;
    cfg.ema_beta = 0.99;
    cfg.lr_d = 2e-4;
    cfg.lr_decay = 0.5;
    check_resume_is_bit_exact(cfg);
}

/// The new generator and discriminator designs: resize-convolution upsampling and residual
/// blocks (plus 4x4 transposed convolutions) resume bit-exactly too.
#[test]
fn resume_is_bit_exact_with_resize_upsampling_and_residual_blocks() {
    let mut cfg = TrainConfig::preset("tiny").unwrap();
    cfg.model.g_upsample = facegan_model::Upsample::Resize;
    cfg.model.block_convs = 1;
    cfg.model.residual = true;
    cfg.ema_beta = 0.99;
    check_resume_is_bit_exact(cfg.clone());
    cfg.model.g_upsample = facegan_model::Upsample::Transposed4;
    check_resume_is_bit_exact(cfg);
}

/// Trains the tiny preset for `epochs` on a 60-image shard in `dir` (batch 8, a probe due every
/// 16 images, probes allowed `time_share` of the training time); returns the run directory, the
/// summary and the quality curve it wrote.
fn probed_tiny_run(
    dir: &Path,
    epochs: usize,
    time_share: f64,
) -> (PathBuf, TrainSummary, Vec<QualityPoint>) {
    let shard = tiny_shard(dir, 60);
    let mut cfg = TrainConfig::preset("tiny").unwrap();
    cfg.epochs = epochs;
    cfg.batch = 8;
    cfg.eval_every = 16; // every 2 steps
    cfg.eval_time_share = time_share;
    let run = dir.join("run");
    let summary = train::<AD>(&opts(&shard, &run, cfg), &Default::default()).unwrap();
    let curve = facegan_trainer::quality::read_quality(&run.join("quality.csv")).unwrap();
    (run, summary, curve)
}

/// The live quality curve: probes land in `quality.csv` (and the per-epoch `swd` column), the
/// best one is kept as `checkpoints/best/` with its score in the state, and `quality.png` exists.
#[test]
fn quality_probe_writes_a_curve_and_keeps_the_best_checkpoint() {
    let _turn = rng_turn();
    let dir = tempfile::tempdir().unwrap();
    let (run, summary, curve) = probed_tiny_run(dir.path(), 3, 0.05);
    // One probe at the start and one at the end; those in between are due every 16 images but
    // postponed while they would cost over 5% of training time (`ProbeSchedule`'s own test).
    assert!(curve.len() >= 2, "{curve:?}");
    assert_eq!(curve[0].step, 1);
    assert_eq!(curve.last().unwrap().images_seen, summary.state.images_seen);
    assert!(curve
        .iter()
        .all(|q| q.swd > 0.0 && q.floor > 0.0 && q.swd_finest > 0.0));
    // Every point carries its spread.
    assert!(curve
        .iter()
        .all(|q| q.swd_std > 0.0 && q.swd_finest_std > 0.0 && q.floor_std > 0.0));
    assert!(curve
        .windows(2)
        .all(|w| w[0].images_seen < w[1].images_seen));
    let best_row = curve.iter().min_by(|a, b| a.swd.total_cmp(&b.swd)).unwrap();
    let best = summary.state.best.clone().expect("a best score");
    assert_eq!(
        (best.swd, best.images_seen),
        (best_row.swd, best_row.images_seen)
    );
    let info = checkpoint::best(&run).expect("checkpoints/best is complete");
    let state = checkpoint::load_state(&info.dir).unwrap();
    assert_eq!(state.images_seen, best.images_seen);
    assert_eq!(state.best.unwrap().swd, best.swd);
    // The last probe precedes the last checkpoint, whose state carries the best score too.
    let latest = checkpoint::load_state(&checkpoint::latest(&run).unwrap().unwrap().dir).unwrap();
    assert_eq!(latest.best, summary.state.best);
    assert_eq!(latest.images_seen, curve.last().unwrap().images_seen);
    // The best checkpoint is not one of the rotated ones.
    assert!(checkpoint::list(&run)
        .unwrap()
        .iter()
        .all(|c| c.dir != info.dir));
    assert!(summary.metrics.iter().all(|m| m.swd.is_some()));
    assert!(run.join("quality.png").is_file());
}

/// `eval_time_share = 1` never postpones a probe: one lands every `eval_every` images from the
/// first step to the last, however long each probe takes against the training steps.
#[test]
fn a_time_share_of_1_probes_at_every_eval_every_images() {
    let _turn = rng_turn();
    let dir = tempfile::tempdir().unwrap();
    let (_, summary, curve) = probed_tiny_run(dir.path(), 2, 1.0);
    let seen: Vec<u64> = curve.iter().map(|q| q.images_seen).collect();
    assert_eq!(seen.first(), Some(&8), "{seen:?}");
    assert_eq!(seen.last(), Some(&summary.state.images_seen), "{seen:?}");
    assert!(
        seen.windows(2).all(|w| w[1] > w[0] && w[1] - w[0] <= 16),
        "a probe was postponed: {seen:?}"
    );
}

/// A `quality.csv` written before the spread was measured (eight columns) still loads, its
/// spreads 0.
#[test]
fn a_quality_curve_without_spread_columns_still_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("quality.csv");
    std::fs::write(
        &path,
        "step,images_seen,train_minutes,swd,swd_finest,floor,floor_finest,probe_seconds\n\
         1,64,0.010,150.5,160.25,20.5,25.0,0.500\n",
    )
    .unwrap();
    let curve = facegan_trainer::quality::read_quality(&path).unwrap();
    assert_eq!(curve.len(), 1);
    assert_eq!(
        (curve[0].swd, curve[0].swd_std, curve[0].floor_std),
        (150.5, 0.0, 0.0)
    );
    facegan_trainer::quality::write_quality(&path, &curve).unwrap();
    assert_eq!(
        facegan_trainer::quality::read_quality(&path).unwrap(),
        curve
    );
}

/// `minutes`: the run stops with a checkpoint once it has trained that long, and a larger budget
/// on resume carries on from there.
#[test]
fn time_budget_stops_with_a_checkpoint_and_extends_on_resume() {
    let _turn = rng_turn();
    let dir = tempfile::tempdir().unwrap();
    let shard = tiny_shard(dir.path(), 60);
    let mut cfg = TrainConfig::preset("tiny").unwrap();
    cfg.epochs = 50;
    cfg.batch = 8;
    cfg.eval_every = 0;
    let run = dir.path().join("run");
    let mut o = opts(&shard, &run, cfg);
    o.minutes_override = Some(1e-6); // spent after the first step
    let first = train::<AD>(&o, &Default::default()).unwrap();
    assert_eq!(first.outcome, TrainOutcome::Stopped { step: 1 });
    let state = checkpoint::load_state(&checkpoint::latest(&run).unwrap().unwrap().dir).unwrap();
    assert_eq!(state.step, 1);
    assert!(state.train_seconds > 0.0);
    assert!(std::fs::read_to_string(run.join("train.log"))
        .unwrap()
        .contains("time budget reached"));
    // Rerun with the same, spent budget: nothing more is trained.
    let again = train::<AD>(&o, &Default::default()).unwrap();
    assert_eq!(again.outcome, TrainOutcome::Stopped { step: 1 });
    assert_eq!(again.state.step, 1);
    assert!(std::fs::read_to_string(run.join("train.log"))
        .unwrap()
        .contains("is spent"));
    // Resume with a budget that lasts, bounded by the epochs instead.
    o.minutes_override = Some(60.0);
    o.epochs_override = Some(1);
    let second = train::<AD>(&o, &Default::default()).unwrap();
    assert!(second.resumed_from.is_some());
    assert_eq!(second.outcome, TrainOutcome::Completed);
    assert_eq!(second.state.epoch, 1);
    assert!(second.state.train_seconds >= state.train_seconds);
    assert_eq!(second.state.config.minutes, Some(60.0));
}

fn check_resume_is_bit_exact(mut cfg: TrainConfig) {
    let _turn = rng_turn();
    let dir = tempfile::tempdir().unwrap();
    let shard = tiny_shard(dir.path(), 60);
    cfg.epochs = 2;
    cfg.batch = 8;
    cfg.sync_every = 3;
    // Uninterrupted.
    let a = dir.path().join("a");
    let sa = train::<AD>(&opts(&shard, &a, cfg.clone()), &Default::default()).unwrap();
    assert_eq!(sa.outcome, TrainOutcome::Completed);
    // Stopped mid-epoch 1 (step 4 of 6), then resumed by a new call.
    let b = dir.path().join("b");
    let mut o = opts(&shard, &b, cfg.clone());
    o.max_steps = Some(4);
    let sb = train::<AD>(&o, &Default::default()).unwrap();
    assert_eq!(sb.outcome, TrainOutcome::Stopped { step: 4 });
    o.max_steps = None;
    let sb = train::<AD>(&o, &Default::default()).unwrap();
    assert!(sb.resumed_from.is_some());
    assert_eq!(sb.outcome, TrainOutcome::Completed);
    assert_eq!(sa.state.step, sb.state.step);

    let device = Default::default();
    let ca = checkpoint::latest(&a).unwrap().unwrap();
    let cb = checkpoint::latest(&b).unwrap().unwrap();
    let ga = checkpoint::load_gan::<AD>(&ca.dir, &cfg, &device).unwrap();
    let gb = checkpoint::load_gan::<AD>(&cb.dir, &cfg, &device).unwrap();
    assert!(
        same(&values(&ga.g), &values(&gb.g)),
        "generator weights differ after resume"
    );
    assert!(
        same(&values(&ga.d), &values(&gb.d)),
        "discriminator weights differ after resume"
    );
    assert_eq!(ga.g_ema.is_some(), cfg.ema_beta > 0.0);
    if let (Some(ea), Some(eb)) = (&ga.g_ema, &gb.g_ema) {
        assert!(same(&values(ea), &values(eb)), "EMA differs after resume");
        assert!(
            !same(&values(ea), &values(&ga.g.valid())),
            "EMA is not a copy of G"
        );
    }
    // Losses per epoch agree exactly too (timings aside).
    let strip = |m: &[facegan_trainer::EpochMetrics]| {
        m.iter()
            .map(|r| {
                (
                    r.epoch,
                    r.step,
                    r.loss_d.to_bits(),
                    r.loss_g.to_bits(),
                    r.d_real.to_bits(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&sa.metrics), strip(&sb.metrics));
    // Both continue identically for one more step, so the Adam states match as well.
    let (mut ga, mut gb) = (ga, gb);
    let real = real_batch(&shard, 8);
    let xa = ga
        .step(real.clone(), 99)
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    let xb = gb.step(real, 99).into_data().to_vec::<f32>().unwrap();
    assert_eq!(xa, xb);
    assert!(
        same(&values(&ga.g), &values(&gb.g)),
        "one more step diverges: optimizer state differs"
    );
    // Eval-mode output (running statistics) agrees bit for bit.
    let z =
        Tensor::<CpuInference, 2>::from_data(TensorData::new(vec![0.5f32; 2 * 8], [2, 8]), &device);
    assert_eq!(
        ga.g.valid()
            .forward(z.clone())
            .into_data()
            .to_vec::<f32>()
            .unwrap(),
        gb.g.valid().forward(z).into_data().to_vec::<f32>().unwrap()
    );
    // Artifacts exist.
    for f in [
        "config.toml",
        "metrics.csv",
        "loss.png",
        "progress.gif",
        "train.log",
        "samples/epoch_0002.png",
    ] {
        assert!(b.join(f).is_file(), "{f}");
    }
}

#[test]
fn nan_guard_stops_and_keeps_the_last_good_checkpoint() {
    let _turn = rng_turn();
    let dir = tempfile::tempdir().unwrap();
    let shard = tiny_shard(dir.path(), 60);
    let mut cfg = TrainConfig::preset("tiny").unwrap();
    cfg.batch = 8;
    cfg.epochs = 3;
    let run = dir.path().join("nan");
    let mut o = opts(&shard, &run, cfg);
    let train_len = facegan_shard::Shard::open(&shard)
        .unwrap()
        .indices(facegan_shard::Split::Train)
        .len();
    let per_epoch = (train_len / 8) as u64;
    o.faults.nan_at_step = Some(per_epoch + 2); // the 3rd step of epoch 2
    let err = train::<AD>(&o, &Default::default())
        .unwrap_err()
        .to_string();
    let expected = format!("non-finite loss at epoch 2, step {}", per_epoch + 3);
    assert!(err.contains(&expected), "{err}");
    let ckpts = checkpoint::list(&run).unwrap();
    assert_eq!(ckpts.len(), 1);
    assert_eq!(ckpts[0].step, per_epoch, "only epoch 1's checkpoint");
    assert!(std::fs::read_to_string(run.join("train.log"))
        .unwrap()
        .contains("non-finite"));
}

#[test]
fn wrong_size_shard_and_mismatched_preset_are_refused() {
    let _turn = rng_turn();
    let dir = tempfile::tempdir().unwrap();
    let shard = tiny_shard(dir.path(), 40);
    let cfg = TrainConfig::preset("seed").unwrap();
    let err = train::<AD>(
        &opts(&shard, &dir.path().join("r"), cfg),
        &Default::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("shard images are 16x16 but preset \"seed\" needs 96x80"),
        "{err}"
    );

    let mut tiny = TrainConfig::preset("tiny").unwrap();
    tiny.epochs = 1;
    let run = dir.path().join("t");
    train::<AD>(&opts(&shard, &run, tiny), &Default::default()).unwrap();
    let mut other = TrainConfig::preset("tiny").unwrap();
    other.preset = "tiny-wide".into();
    other.model.g_start_channels = 32;
    let err = train::<AD>(&opts(&shard, &run, other), &Default::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("was trained with preset \"tiny\""), "{err}");
}

/// A run resumed by its own preset's name whose networks are not today's preset's (the preset
/// changed in a newer facegan) goes on with the networks it began with, saying so in train.log;
/// a config on the same preset that asks for other networks, or a config file's networks that
/// differ from the run's, is refused, naming the difference.
#[test]
fn a_run_resumed_by_its_preset_name_keeps_the_networks_it_began_with() {
    let _turn = rng_turn();
    let dir = tempfile::tempdir().unwrap();
    let shard = tiny_shard(dir.path(), 40);
    let run = dir.path().join("t");
    // `tiny` as an older facegan might have defined it: a wider start of G.
    let mut older = TrainConfig::preset("tiny").unwrap();
    older.model.g_start_channels = 32;
    let mut first = opts(&shard, &run, older.clone());
    first.max_steps = Some(1);
    train::<AD>(&first, &Default::default()).unwrap();

    let mut again = opts(&shard, &run, TrainConfig::preset("tiny").unwrap());
    again.max_steps = Some(2);
    let summary = train::<AD>(&again, &Default::default()).unwrap();
    assert_eq!(summary.state.step, 2, "the run resumed");
    assert_eq!(
        summary.state.config.model, older.model,
        "with its own networks"
    );
    let log = std::fs::read_to_string(run.join("train.log")).unwrap();
    assert!(
        log.contains("differ from today's preset \"tiny\" (g_start_channels 32 vs 16"),
        "{log}"
    );

    let mut other = TrainConfig::preset("tiny").unwrap();
    other.model.g_start_channels = 24;
    let mut o = opts(&shard, &run, other);
    o.max_steps = Some(3);
    let err = train::<AD>(&o, &Default::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("networks differ from the config asked for (g_start_channels 32 vs 24"),
        "{err}"
    );
    // A config file's networks are asked for explicitly, even when they are today's preset's.
    let mut o = opts(&shard, &run, TrainConfig::preset("tiny").unwrap());
    o.config_from_file = true;
    o.max_steps = Some(3);
    let err = train::<AD>(&o, &Default::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("networks differ from the config asked for (g_start_channels 32 vs 16"),
        "{err}"
    );
}

#[test]
fn partial_toml_config_overrides_a_preset() {
    let cfg =
        TrainConfig::from_toml_str("preset = \"tiny\"\nlr_g = 0.0005\n[model]\nlatent = 12\n")
            .unwrap();
    assert_eq!(cfg.preset, "tiny");
    assert_eq!(cfg.lr_g, 0.0005);
    assert_eq!(cfg.model.latent, 12);
    assert_eq!(cfg.model.d_channels, vec![8, 16]);
    let err = TrainConfig::from_toml_str("bogus = 1\n").unwrap_err();
    assert!(format!("{err:#}").contains("bogus"));
    let round = TrainConfig::from_toml_str(&cfg.to_toml()).unwrap();
    assert_eq!(round, cfg);
}

/// The experiment configs behind docs/results.md (`experiments/sweep-48x40/` and
/// `sweep-96x80/`) parse, build on their size's recommended preset, pin the
/// settings a comparison depends on (learning rates, batch, augmentation), and differ from the
/// preset in some training setting, except the configs of the preset's own measured runs, which
/// are the preset apart from `epochs`. A config with a learning-rate decay sets its epochs
/// (the decay follows them).
#[test]
fn the_experiment_configs_load_and_differ_from_their_preset() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments");
    let preset_runs = ["sweep-48x40/TRANS-DHALFLR.toml", "sweep-96x80/TRANS96.toml"];
    let mut seen = 0;
    for (folder, preset) in [("sweep-48x40", "faces48"), ("sweep-96x80", "faces96")] {
        let base = TrainConfig::preset(preset).unwrap();
        let base_table = toml::Table::try_from(&base).unwrap();
        for entry in std::fs::read_dir(root.join(folder)).unwrap() {
            let path = entry.unwrap().path();
            let at = path.display().to_string();
            let cfg = TrainConfig::from_toml_file(&path).unwrap();
            let text = std::fs::read_to_string(&path).unwrap();
            let set: toml::Table = toml::from_str(&text).unwrap();
            assert_eq!(cfg.preset, preset, "{at}");
            for key in ["lr_d", "lr_g", "batch", "diffaugment"] {
                assert!(set.contains_key(key), "{at} pins {key}");
            }
            if cfg.lr_decay > 0.0 {
                assert!(set.contains_key("epochs"), "{at}: a decay needs its epochs");
            }
            let differs: Vec<&String> = set
                .iter()
                .filter(|(k, v)| {
                    !["preset", "epochs"].contains(&k.as_str()) && base_table.get(*k) != Some(*v)
                })
                .map(|(k, _)| k)
                .collect();
            let name = format!("{folder}/{}", path.file_name().unwrap().to_string_lossy());
            if preset_runs.contains(&name.as_str()) {
                assert!(differs.is_empty(), "{at} is {preset}: {differs:?}");
                let mut same = cfg.clone();
                same.epochs = base.epochs;
                assert_eq!(same, base, "{at}");
            } else {
                assert!(!differs.is_empty(), "{at} changes nothing of {preset}");
            }
            seen += 1;
        }
    }
    assert!(seen >= 20, "{seen} configs");
}

#[test]
fn checkpoint_keeps_batchnorm_running_statistics() {
    let _turn = rng_turn();
    let dir = tempfile::tempdir().unwrap();
    let shard = tiny_shard(dir.path(), 60);
    let mut cfg = TrainConfig::preset("tiny").unwrap();
    cfg.epochs = 1;
    cfg.batch = 8;
    let run = dir.path().join("bn");
    let summary = train::<AD>(&opts(&shard, &run, cfg.clone()), &Default::default()).unwrap();
    let device = Default::default();
    let ckpt = checkpoint::latest(&run).unwrap().unwrap();
    let g = checkpoint::load_generator::<CpuInference>(&ckpt.dir, &cfg, &device).unwrap();
    let norm = g.blocks[0].norm.as_ref().unwrap();
    let var = norm
        .running_var
        .value()
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    let mean = norm
        .running_mean
        .value()
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    assert!(
        var.iter().any(|v| (v - 1.0).abs() > 1e-3),
        "running_var still at its initial ones: {var:?}"
    );
    assert!(
        mean.iter().any(|v| v.abs() > 1e-4),
        "running_mean still at zero: {mean:?}"
    );
    // The loaded generator draws exactly the grid the trainer saved for the epoch.
    let m = &cfg.model;
    let fixed = &summary.state.fixed_noise;
    let images = facegan_model::generator::generate_batched(&g, fixed, m.latent, 64, &device);
    let drawn = facegan_common::images::grid_from_chw(&images, 64, m.height, m.width, 8);
    let saved = image::open(run.join("samples/epoch_0001.png"))
        .unwrap()
        .to_rgb8();
    assert_eq!(drawn.dimensions(), saved.dimensions());
    assert!(
        drawn == saved,
        "the loaded generator draws a different grid"
    );
}

/// NaN, zero or negative values that would give an unusable run are refused
/// when the config is read, naming the setting.
#[test]
fn non_finite_and_out_of_range_settings_are_refused() {
    for (line, key) in [
        ("[model]\nbn_momentum = nan", "bn_momentum"),
        ("[model]\nbn_epsilon = -1.0", "bn_epsilon"),
        ("r1_gamma = nan", "r1_gamma"),
        ("instance_noise = nan", "instance_noise"),
        ("instance_noise = inf", "instance_noise"),
        ("lr_d = 0.0", "lr_d"),
        ("lr_g = -1e-4", "lr_g"),
        ("adam_epsilon = -1e-8", "adam_epsilon"),
        ("beta1 = nan", "beta1"),
        ("d_steps = 1000000", "d_steps"),
        ("minutes = nan", "minutes"),
    ] {
        let text = format!("preset = \"tiny\"\n{line}\n");
        let err = TrainConfig::from_toml_str(&text).unwrap_err();
        assert!(format!("{err:#}").contains(key), "{line}: {err:#}");
    }
}

/// A run that is refused (a shard of the wrong size, or too few images for a
/// batch) deletes nothing, not even with `--new`; and `--new` deletes only what facegan wrote.
#[test]
fn refused_runs_delete_nothing_and_new_keeps_foreign_files() {
    let _turn = rng_turn();
    let dir = tempfile::tempdir().unwrap();
    let shard = tiny_shard(dir.path(), 40);
    let run = dir.path().join("u");
    std::fs::create_dir_all(run.join("samples")).unwrap();
    std::fs::write(run.join("samples/keep.txt"), b"x").unwrap();
    std::fs::write(run.join("notes.md"), b"mine").unwrap();
    // Wrong image size: refused, nothing touched.
    let mut wrong = TrainConfig::preset("demo").unwrap();
    wrong.eval_every = 0;
    assert!(train::<AD>(&opts(&shard, &run, wrong), &Default::default()).is_err());
    assert!(run.join("samples/keep.txt").is_file() && run.join("notes.md").is_file());
    // A real run, then `--new` with a batch larger than the train split: refused, checkpoints kept.
    let mut cfg = TrainConfig::preset("tiny").unwrap();
    cfg.epochs = 1;
    cfg.batch = 8;
    cfg.eval_every = 0;
    train::<AD>(&opts(&shard, &run, cfg.clone()), &Default::default()).unwrap();
    let before = checkpoint::list(&run).unwrap().len();
    assert!(before > 0);
    let mut o = opts(&shard, &run, cfg.clone());
    o.new = true;
    o.config.as_mut().unwrap().batch = 1000;
    let err = train::<AD>(&o, &Default::default()).unwrap_err();
    assert!(err.to_string().contains("fewer than one batch"), "{err}");
    assert_eq!(checkpoint::list(&run).unwrap().len(), before);
    assert!(run.join("metrics.csv").is_file());
    // `--new` that trains: facegan's files are replaced, the user's stay.
    o.config.as_mut().unwrap().batch = 8;
    train::<AD>(&o, &Default::default()).unwrap();
    assert!(run.join("samples/keep.txt").is_file() && run.join("notes.md").is_file());
    assert!(run.join("samples/epoch_0001.png").is_file());
}

/// A second trainer on the same run directory is refused while the first
/// holds its lock (the lock dies with its process).
#[test]
fn a_locked_run_directory_is_refused() {
    let _turn = rng_turn();
    let dir = tempfile::tempdir().unwrap();
    let shard = tiny_shard(dir.path(), 40);
    let run = dir.path().join("r");
    let held = facegan_rundir::RunLock::acquire(&run).unwrap();
    let mut cfg = TrainConfig::preset("tiny").unwrap();
    cfg.eval_every = 0;
    let err = train::<AD>(&opts(&shard, &run, cfg.clone()), &Default::default()).unwrap_err();
    assert!(err.to_string().contains("another facegan process"), "{err}");
    drop(held);
    cfg.epochs = 1;
    cfg.batch = 8;
    train::<AD>(&opts(&shard, &run, cfg), &Default::default()).unwrap();
}

/// A flipped byte or a truncated file in the newest checkpoint is noticed by
/// its checksum, and training resumes from the newest intact one; a shard with flipped pixels
/// is refused before training.
#[test]
fn damaged_checkpoints_are_skipped_and_damaged_shards_refused() {
    let _turn = rng_turn();
    let dir = tempfile::tempdir().unwrap();
    let shard = tiny_shard(dir.path(), 40);
    let run = dir.path().join("r");
    let mut cfg = TrainConfig::preset("tiny").unwrap();
    cfg.epochs = 3;
    cfg.batch = 8;
    cfg.eval_every = 0;
    train::<AD>(&opts(&shard, &run, cfg.clone()), &Default::default()).unwrap();
    let all = checkpoint::list(&run).unwrap();
    assert_eq!(all.len(), 3);
    let (older, newest) = (&all[1], &all[2]);
    assert_eq!(checkpoint::latest(&run).unwrap().unwrap().dir, newest.dir);
    // One flipped bit in the generator's weights.
    let g = newest.dir.join("generator.bin");
    let mut b = std::fs::read(&g).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 1;
    std::fs::write(&g, &b).unwrap();
    let err = checkpoint::verify(&newest.dir).unwrap_err();
    assert!(format!("{err:#}").contains("generator.bin"), "{err:#}");
    assert_eq!(checkpoint::latest(&run).unwrap().unwrap().dir, older.dir);
    // A truncated discriminator in the older one too: the oldest is what is left.
    let d = older.dir.join("discriminator.bin");
    let len = std::fs::metadata(&d).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&d)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    assert_eq!(checkpoint::latest(&run).unwrap().unwrap().dir, all[0].dir);
    // Resuming (more epochs) picks that one up and trains on from it.
    let mut o = opts(&shard, &run, cfg);
    o.epochs_override = Some(4);
    let summary = train::<AD>(&o, &Default::default()).unwrap();
    assert_eq!(summary.resumed_from.as_deref(), Some(all[0].dir.as_path()));
    assert_eq!(summary.state.epoch, 4);

    // Flipped pixels in the shard's payload: refused with the checksum named.
    let mut bytes = std::fs::read(&shard).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&shard, &bytes).unwrap();
    let err = train::<AD>(&o, &Default::default()).unwrap_err();
    assert!(err.to_string().contains("checksum"), "{err}");
}

/// A growing model's schedule (8x8 for 24 images, then 16x16 fading in over 40): a run stopped
/// mid-fade (32 images) resumes bit-exactly.
#[test]
fn resume_is_bit_exact_mid_fade_of_a_growing_run() {
    let mut cfg = TrainConfig::preset("tiny").unwrap();
    cfg.model.progressive = true;
    cfg.ema_beta = 0.99;
    cfg.grow = Some(facegan_trainer::config::GrowSchedule {
        sizes: vec![[8, 8], [16, 16]],
        images: vec![24],
        fade: 40,
    });
    let level = cfg.level_at(32);
    assert_eq!((level.steps, level.alpha), (2, 0.2));
    check_resume_is_bit_exact(cfg);
}

/// A growing run's probes score each phase at its own size against the holdout at that size
/// (`size` in `quality.csv`), only full-size probes compete for `best`, and a checkpoint from
/// before the full size runs alone is refused by the commands that sample it, naming the size.
#[test]
fn a_growing_run_probes_each_size_and_refuses_to_sample_before_it_has_grown() {
    let _turn = rng_turn();
    let dir = tempfile::tempdir().unwrap();
    let shard = tiny_shard(dir.path(), 60);
    let mut cfg = TrainConfig::preset("tiny").unwrap();
    cfg.model.progressive = true;
    cfg.epochs = 3;
    cfg.batch = 8;
    cfg.eval_every = 8;
    cfg.grow = Some(facegan_trainer::config::GrowSchedule {
        sizes: vec![[8, 8], [16, 16]],
        images: vec![48],
        fade: 48,
    });
    let run = dir.path().join("run");
    let mut o = opts(&shard, &run, cfg.clone());
    o.max_steps = Some(2);
    train::<AD>(&o, &Default::default()).unwrap();
    let e = facegan_rundir::find_checkpoint(&run, facegan_rundir::CheckpointChoice::Latest)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("still growing") && e.contains("8x8") && e.contains("96 images"),
        "{e}"
    );
    assert!(
        !e.contains("  "),
        "one sentence, no source indentation: {e}"
    );
    o.max_steps = None;
    let summary = train::<AD>(&o, &Default::default()).unwrap();
    let curve = facegan_trainer::quality::read_quality(&run.join("quality.csv")).unwrap();
    assert_eq!(curve[0].size, "8x8", "{curve:?}");
    let last = curve.last().unwrap();
    assert!(last.at_full_size() && last.images_seen == summary.state.images_seen);
    assert!(curve.iter().all(|q| q.swd > 0.0 && q.floor > 0.0));
    let best = summary.state.best.expect("a full-size best");
    assert!(curve
        .iter()
        .any(|q| q.at_full_size() && q.images_seen == best.images_seen));
    assert!(
        facegan_rundir::find_checkpoint(&run, facegan_rundir::CheckpointChoice::Latest).is_ok()
    );
}

/// The first probe at a smaller size makes the holdout and floor at that size and times it apart
/// from its own cost (the cost that spaces the next probe); later probes at that size reuse them,
/// and full-size probes never prepare anything (their reference is made with the probe).
#[test]
fn a_smaller_sizes_reference_is_made_once_and_timed_apart_from_the_probe() {
    use facegan_model::{Generator, Level};
    use facegan_trainer::quality::QualityProbe;
    let _turn = rng_turn();
    let dir = tempfile::tempdir().unwrap();
    let shard =
        std::sync::Arc::new(facegan_shard::Shard::open(tiny_shard(dir.path(), 60)).unwrap());
    let mut cfg = TrainConfig::preset("tiny").unwrap();
    cfg.model.progressive = true;
    cfg.grow = Some(facegan_trainer::config::GrowSchedule {
        sizes: vec![[8, 8], [16, 16]],
        images: vec![48],
        fade: 48,
    });
    let device = Default::default();
    let probe = QualityProbe::new::<CpuInference>(&shard, cfg.model.latent, 64, &device)
        .expect("a holdout");
    let g = Generator::<CpuInference>::new(&cfg.model, &device);
    let small = cfg.level_at(0);
    let first = probe.score_at(&g, small, Some(&cfg.model), &device);
    let second = probe.score_at(&g, small, Some(&cfg.model), &device);
    assert_eq!((first.size, second.size), (Some((8, 8)), Some((8, 8))));
    assert!(
        first.prepared_seconds > 0.0,
        "the first 8x8 probe makes the 8x8 reference"
    );
    assert_eq!(second.prepared_seconds, 0.0, "the second reuses it");
    assert_eq!(first.floor.average, second.floor.average);
    assert_eq!(
        first.swd.average, second.swd.average,
        "the same weights score the same"
    );
    let full = probe.score_at(&g, Level::full(&cfg.model), Some(&cfg.model), &device);
    assert_eq!((full.size, full.prepared_seconds), (None, 0.0));
    assert_eq!(full.floor.average, probe.floor().average);
    assert_ne!(
        full.floor.average, first.floor.average,
        "each size has its own floor"
    );
}
