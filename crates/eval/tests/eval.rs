//! Eval mechanics: pyramid sizes, SWD's basic properties, D accuracy on a crafted D, `--fake-dir`
//! folders (bad ones, and an evaluation without a checkpoint), the report page's charts.

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use burn::module::Param;
use burn::tensor::Tensor;
use facegan_eval::generate::discriminate;
use facegan_eval::swd::{laplacian_pyramid, level_sizes, pyramids, swd, Planes};
use facegan_eval::{CheckpointChoice, DAccuracy, EvalOptions};
use facegan_model::{Discriminator, ModelConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn faces(n: usize, h: u32, w: u32, seed: u64) -> Vec<Planes> {
    let mut r = fast_image_resize::Resizer::new();
    (0..n as u64)
        .map(|i| {
            let img = facegan_preprocess::synth::draw_face(seed, i);
            let px = facegan_preprocess::decode::resize_rgb(
                &mut r,
                img,
                h,
                w,
                facegan_preprocess::Crop::None,
                facegan_preprocess::Filter::CatmullRom,
            );
            Planes::from_hwc_u8(h as usize, w as usize, &px)
        })
        .collect()
}

fn blurred(p: &Planes, times: usize) -> Planes {
    let mut cur = p.clone();
    for _ in 0..times {
        let down = facegan_eval::swd::pyr_down(&cur);
        cur = facegan_eval::swd::pyr_up(&down, p.h, p.w);
    }
    cur
}

/// `p` plus uniform noise in `[-sigma/2, sigma/2)`.
fn noised(p: &Planes, sigma: f32, seed: u64) -> Planes {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let data = p
        .data
        .iter()
        .map(|v| v + sigma * (rng.random::<f32>() - 0.5))
        .collect();
    Planes::new(p.h, p.w, data)
}

/// `count` synthetic faces (seed `seed`) in `dir/faces`, preprocessed to a 16x16 `dir/s.shard`
/// with a `holdout` fraction held out; returns (faces folder, shard path).
fn faces_shard(dir: &Path, count: usize, seed: u64, holdout: f64) -> (PathBuf, PathBuf) {
    let input = dir.join("faces");
    facegan_preprocess::synth::write_synth_set(&input, count, seed).unwrap();
    let shard_path = dir.join("s.shard");
    let mut cfg = facegan_preprocess::PreprocessConfig::new(&input, &shard_path);
    cfg.height = 16;
    cfg.width = 16;
    cfg.holdout = holdout;
    facegan_preprocess::run(&cfg, &std::sync::atomic::AtomicBool::new(false)).unwrap();
    (input, shard_path)
}

#[test]
fn pyramid_levels_have_the_right_sizes() {
    assert_eq!(level_sizes(96, 80), vec![(96, 80), (48, 40), (24, 20)]);
    assert_eq!(level_sizes(64, 64), vec![(64, 64), (32, 32), (16, 16)]);
    assert_eq!(level_sizes(16, 16), vec![(16, 16)]);
    let p = Planes::new(96, 80, vec![1.0; 3 * 96 * 80]);
    let pyr = laplacian_pyramid(&p);
    let sizes: Vec<_> = pyr.iter().map(|l| (l.h, l.w)).collect();
    assert_eq!(sizes, vec![(96, 80), (48, 40), (24, 20)]);
    // A constant image has no band-pass energy; the low-pass level keeps the constant.
    assert!(pyr[0].data.iter().all(|v| v.abs() < 1e-4));
    assert!(pyr[2].data.iter().all(|v| (v - 1.0).abs() < 1e-4));
}

#[test]
fn swd_is_zero_for_identical_sets_and_symmetric() {
    let a = pyramids(&faces(24, 48, 40, 1));
    let b = pyramids(&faces(24, 48, 40, 2));
    let same = swd(&a, &a, 3);
    assert!(same.average.abs() < 1e-9, "{:?}", same.per_level);
    let ab = swd(&a, &b, 3);
    let ba = swd(&b, &a, 3);
    assert!(ab.average > 1.0);
    assert!((ab.average - ba.average).abs() < 1e-9 * ab.average.max(1.0));
    assert_eq!(ab.per_level.len(), 2);
    // Deterministic for a fixed seed.
    assert_eq!(swd(&a, &b, 3).average, ab.average);
}

#[test]
fn swd_grows_with_blur_and_noise() {
    let base = faces(24, 48, 40, 5);
    let pa = pyramids(&base);
    let mut last = 0.0;
    for k in 1..=3 {
        let b: Vec<Planes> = base.iter().map(|p| blurred(p, k)).collect();
        let d = swd(&pa, &pyramids(&b), 11).average;
        assert!(d > last, "blur x{k}: {d} <= {last}");
        last = d;
    }
    let mut last = 0.0;
    for sigma in [8.0, 32.0, 96.0] {
        let b: Vec<Planes> = base
            .iter()
            .enumerate()
            .map(|(i, p)| noised(p, sigma, i as u64))
            .collect();
        let d = swd(&pa, &pyramids(&b), 11).average;
        assert!(d > last, "noise {sigma}: {d} <= {last}");
        last = d;
    }
}

#[test]
fn d_accuracy_is_exact_on_crafted_outputs_and_a_crafted_d() {
    let a = DAccuracy::from_probs(&[0.9, 0.8, 0.2, 0.6], &[0.1, 0.7, 0.3, 0.4]);
    assert_eq!(a.real, 0.75);
    assert_eq!(a.fake, 0.75);
    assert_eq!(a.balanced, 0.75);
    assert!((a.mean_d_real - 0.625).abs() < 1e-7);
    // A D whose head ignores its input and says "real" (bias +3) for everything.
    let device = Default::default();
    let cfg = ModelConfig::tiny();
    let mut d = Discriminator::<Flex>::new(&cfg, &device);
    d.head.weight = Param::from_tensor(Tensor::zeros(d.head.weight.dims(), &device));
    d.head.bias = Some(Param::from_tensor(Tensor::full([1], 3.0, &device)));
    let imgs = vec![0.5f32; 5 * 3 * 16 * 16];
    let p = discriminate(&d, &imgs, 16, 16, &device);
    assert_eq!(p.len(), 5);
    let acc = DAccuracy::from_probs(&p, &p);
    assert_eq!((acc.real, acc.fake, acc.balanced), (1.0, 0.0, 0.5));
    assert!((acc.mean_d_real - 0.952_574_1).abs() < 1e-5);
}

#[test]
fn fake_dir_with_only_bad_files_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let fakes = dir.path().join("fakes");
    std::fs::create_dir_all(&fakes).unwrap();
    std::fs::write(fakes.join("a.png"), b"not a png").unwrap();
    std::fs::write(fakes.join("b.jpg"), b"").unwrap();
    // A small shard to resize against.
    let (_, shard_path) = faces_shard(dir.path(), 3, 1, 0.05);
    let shard = facegan_shard::Shard::open(&shard_path).unwrap();
    let err = facegan_eval::load_fake_dir(&fakes, &shard, 10)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("fakes") && err.contains("no usable images") && err.contains("2 unreadable"),
        "{err}"
    );
}

/// `count` 16x16 PNGs of uniform noise in `dir/noise`.
fn noise_folder(dir: &Path, count: usize) -> PathBuf {
    let noise = dir.join("noise");
    std::fs::create_dir_all(&noise).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for i in 0..count {
        let px: Vec<u8> = (0..16 * 16 * 3).map(|_| rng.random()).collect();
        image::RgbImage::from_raw(16, 16, px)
            .unwrap()
            .save(noise.join(format!("n{i:02}.png")))
            .unwrap();
    }
    noise
}

/// `--fake-dir` with `--data` and no run folder: no checkpoint, so no D accuracy and no
/// interpolations; real faces as the fakes score near the train-vs-holdout floor, noise far
/// above it; the page says it has no loss chart until the run has a `loss.png`.
#[test]
fn fake_dir_without_a_checkpoint_scores_real_faces_near_the_floor() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (faces, shard_path) = faces_shard(d, 240, 4, 0.1);
    let noise = noise_folder(d, 64);
    let eval = |run: &str, fake_dir: &Path| {
        let opts = EvalOptions {
            run: d.join(run),
            data: Some(shard_path.clone()),
            checkpoint: CheckpointChoice::Latest,
            n: 64,
            fake_dir: Some(fake_dir.to_path_buf()),
            seed: 7,
            against: facegan_eval::Against::Holdout,
            inception: None,
            inception_sha256: None,
            fid_resize: Default::default(),
            truncation_sweep: false,
            out: None,
        };
        facegan_eval::evaluate::<Flex>(&opts, &Default::default()).unwrap()
    };
    let real = eval("real-run", &faces);
    assert_eq!(real.source, format!("folder {}", faces.display()));
    assert!(real.checkpoint.is_none() && real.config.is_none());
    assert!(real.d_accuracy_holdout.is_none() && real.d_accuracy_train.is_none());
    // 240 faces, about 10% held out: --n 64 is capped at the holdout's size.
    let shard = facegan_shard::Shard::open(&shard_path).unwrap();
    let holdout = shard.indices(facegan_shard::Split::Holdout).len();
    assert!((12..64).contains(&holdout), "{holdout}");
    assert_eq!(real.swd_fake_vs_holdout.images_per_side, holdout);
    assert_eq!(real.nearest_neighbours.len(), 8);
    let out = d.join("real-run/eval");
    for f in [
        "grid.png",
        "real.png",
        "nn.png",
        "report.json",
        "report.html",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
    assert!(!out.join("interp.png").exists() && !out.join("interp.gif").exists());

    let noisy = eval("noise-run", &noise);
    let (floor, faces_swd, noise_swd) = (
        real.swd_train_vs_holdout.average,
        real.swd_fake_vs_holdout.average,
        noisy.swd_fake_vs_holdout.average,
    );
    eprintln!("floor {floor:.3}, faces {faces_swd:.3}, noise {noise_swd:.3}");
    let noisy_floor = noisy.swd_train_vs_holdout.average;
    assert!(
        (noisy_floor - floor).abs() <= 1e-9 * floor,
        "same reals, same seed"
    );
    assert!(
        faces_swd < 1.5 * floor,
        "faces {faces_swd} vs floor {floor}"
    );
    assert!(
        noise_swd > 2.0 * faces_swd,
        "noise {noise_swd} vs faces {faces_swd}"
    );

    // The page shows the trainer's loss chart when the run has one.
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        html.contains("No loss chart (the run has no loss.png)."),
        "{html}"
    );
    std::fs::copy(out.join("grid.png"), d.join("real-run/loss.png")).unwrap();
    facegan_eval::report::write_html(&out, &real).unwrap();
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(!html.contains("No loss chart") && html.contains(r#"alt="loss.png""#));
    assert!(!html.contains("<svg"));
}

/// `--against`: the train split (its floor a second, disjoint train sample) or a folder of real
/// faces; the report names the reference beside the scores, every SWD carries its spread, and a
/// folder scored against itself scores exactly 0.
#[test]
fn fakes_can_be_scored_against_the_train_split_or_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (faces, shard_path) = faces_shard(d, 240, 4, 0.1);
    let eval = |run: &str, against: facegan_eval::Against| {
        let opts = EvalOptions {
            run: d.join(run),
            data: Some(shard_path.clone()),
            checkpoint: CheckpointChoice::Latest,
            n: 64,
            fake_dir: Some(faces.clone()),
            seed: 7,
            against,
            inception: None,
            inception_sha256: None,
            fid_resize: Default::default(),
            truncation_sweep: false,
            out: None,
        };
        facegan_eval::evaluate::<Flex>(&opts, &Default::default()).unwrap()
    };
    let train = eval("against-train", facegan_eval::Against::Train);
    assert_eq!(train.against, "train");
    assert_eq!(train.swd_fake_vs_holdout.images_per_side, 64);
    assert!(train.swd_fake_vs_holdout.spread.is_some());
    assert!(train.swd_train_vs_holdout.spread.is_some());
    assert!(
        train.summary_line().contains("vs train"),
        "{}",
        train.summary_line()
    );
    let floor = train.swd_train_vs_holdout.average;
    assert!(train.swd_fake_vs_holdout.average < 1.5 * floor);

    let itself = eval("against-itself", facegan_eval::Against::Dir(faces.clone()));
    assert_eq!(itself.against, format!("folder {}", faces.display()));
    assert_eq!(itself.swd_fake_vs_holdout.average, 0.0);
    let err = facegan_eval::Against::parse("nowhere/at/all")
        .unwrap_err()
        .to_string();
    assert!(err.contains("holdout") && err.contains("train"), "{err}");
}
