//! Eval mechanics: pyramid sizes, SWD's basic properties, D accuracy on a crafted D, bad folders.

use burn::backend::Flex;
use burn::module::Param;
use burn::tensor::Tensor;
use facegan_eval::generate::discriminate;
use facegan_eval::swd::{laplacian_pyramid, level_sizes, pyramids, swd, Planes};
use facegan_eval::DAccuracy;
use facegan_model::{Discriminator, ModelConfig};

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

fn noised(p: &Planes, sigma: f32, seed: u64) -> Planes {
    let mut s = seed;
    let data = p
        .data
        .iter()
        .map(|v| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let u = ((s >> 33) as f32 / (1u64 << 31) as f32) - 0.5;
            v + sigma * u
        })
        .collect();
    Planes::new(p.h, p.w, data)
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
    // A one-image shard to resize against.
    let input = dir.path().join("in");
    facegan_preprocess::synth::write_synth_set(&input, 3, 1).unwrap();
    let shard_path = dir.path().join("s.shard");
    let mut cfg = facegan_preprocess::PreprocessConfig::new(&input, &shard_path);
    cfg.height = 16;
    cfg.width = 16;
    facegan_preprocess::run(&cfg, &std::sync::atomic::AtomicBool::new(false)).unwrap();
    let shard = facegan_shard::Shard::open(&shard_path).unwrap();
    let err = facegan_eval::load_fake_dir(&fakes, &shard, 10)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("fakes") && err.contains("no usable images") && err.contains("2 unreadable"),
        "{err}"
    );
}
