//! Mechanics of each better-faces technique in the trainer: the losses against hand-computed
//! values, DiffAugment (shapes, differentiability, exact translation and cutout), the EMA
//! update, instance noise annealing, and R1's weight gradients against finite differences.

mod common;
use common::{rng_turn, values};

use burn::module::Param;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use facegan_model::{Discriminator, Generator, ModelConfig};
use facegan_trainer::augment::{self, DiffAugment};
use facegan_trainer::device::{CpuBackend, CpuInference};
use facegan_trainer::ema::{ema_decay, ema_update};
use facegan_trainer::gan::{d_loss, g_loss};
use facegan_trainer::r1::r1_gradients;
use facegan_trainer::{LossKind, TrainConfig};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

type AD = CpuBackend;
type B = CpuInference;

fn logits(v: &[f32]) -> Tensor<B, 2> {
    Tensor::from_data(
        TensorData::new(v.to_vec(), [v.len(), 1]),
        &Default::default(),
    )
}

fn scalar<Bk: Backend, const D: usize>(t: Tensor<Bk, D>) -> f64 {
    t.into_data().to_vec::<f32>().unwrap()[0] as f64
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-5 * (1.0 + b.abs())
}

fn softplus(x: f64) -> f64 {
    (1.0 + x.exp()).ln()
}

#[test]
fn losses_match_hand_computed_values() {
    let (real, fake) = ([2.0f32, -1.0], [0.5f32, -3.0]);
    // Logistic: D = mean softplus(-real) + mean softplus(fake); G = mean softplus(-fake).
    let want_d = (softplus(-2.0) + softplus(1.0)) / 2.0 + (softplus(0.5) + softplus(-3.0)) / 2.0;
    let got = scalar(d_loss(
        LossKind::Logistic,
        logits(&real),
        logits(&fake),
        0.0,
    ));
    assert!(close(got, want_d), "logistic D {got} vs {want_d}");
    let want_g = (softplus(-0.5) + softplus(3.0)) / 2.0;
    assert!(close(
        scalar(g_loss(LossKind::Logistic, logits(&fake))),
        want_g
    ));
    // Label smoothing 0.1 on reals: target 0.9 -> 0.9 softplus(-x) + 0.1 softplus(x).
    let s = |x: f64| 0.9 * softplus(-x) + 0.1 * softplus(x);
    let want = (s(2.0) + s(-1.0)) / 2.0 + (softplus(0.5) + softplus(-3.0)) / 2.0;
    let got = scalar(d_loss(
        LossKind::Logistic,
        logits(&real),
        logits(&fake),
        0.1,
    ));
    assert!(close(got, want), "smoothed logistic {got} vs {want}");
    // Seed BCE with smoothing agrees with the logistic form (no clipping at these values).
    let got = scalar(d_loss(LossKind::Seed, logits(&real), logits(&fake), 0.1));
    assert!(close(got, want), "smoothed BCE {got} vs {want}");
    // Hinge: D = mean relu(1 - real) + mean relu(1 + fake) = (0 + 2)/2 + (1.5 + 0)/2.
    let got = scalar(d_loss(LossKind::Hinge, logits(&real), logits(&fake), 0.0));
    assert!(close(got, 1.75), "hinge D {got}");
    // Hinge G = -mean fake = 1.25.
    assert!(close(scalar(g_loss(LossKind::Hinge, logits(&fake))), 1.25));
}

#[test]
fn config_validates_the_new_options() {
    let mut cfg = TrainConfig::preset("celeba48").unwrap();
    cfg.validate().unwrap();
    cfg.diffaugment = "color,zoom".into();
    assert!(cfg.validate().unwrap_err().to_string().contains("zoom"));
    let mut cfg = TrainConfig::preset("seed").unwrap();
    cfg.loss = LossKind::Hinge;
    cfg.label_smoothing = 0.1;
    assert!(cfg.validate().is_err());
    let cfg = TrainConfig::from_toml_str("preset = \"seed\"\nloss = \"hinge\"\nema_beta = 0.999\n")
        .unwrap();
    assert_eq!((cfg.loss, cfg.ema_beta), (LossKind::Hinge, 0.999));
}

fn ramp(n: usize, c: usize, h: usize, w: usize) -> Vec<f32> {
    (0..n * c * h * w).map(|i| (i % 97) as f32 / 97.0).collect()
}

#[test]
fn diffaugment_keeps_shapes_is_differentiable_and_deterministic() {
    let device = Default::default();
    let (n, c, h, w) = (4, 3, 16, 12);
    let x = Tensor::<AD, 4>::from_data(TensorData::new(ramp(n, c, h, w), [n, c, h, w]), &device)
        .require_grad();
    let aug = DiffAugment::parse("color,translation,cutout").unwrap();
    let y = aug.apply(x.clone(), &mut ChaCha8Rng::seed_from_u64(5));
    assert_eq!(y.dims(), [n, c, h, w]);
    let grad = x
        .grad(&y.clone().sum().backward())
        .expect("gradient reaches the input");
    let g = grad.into_data().to_vec::<f32>().unwrap();
    assert!(g.iter().any(|v| *v != 0.0) && g.iter().all(|v| v.is_finite()));
    // Same seed, same augmentation; another seed, another one.
    let again = aug.apply(x.clone(), &mut ChaCha8Rng::seed_from_u64(5));
    assert_eq!(y.clone().into_data(), again.into_data());
    let other = aug.apply(x, &mut ChaCha8Rng::seed_from_u64(6));
    assert_ne!(y.into_data(), other.into_data());
    assert!(DiffAugment::parse("").unwrap().is_off());
}

/// DiffAugment's colour, computed as one channel mix and shift per image, equals the reference's
/// three steps (brightness, then saturation about the channel mean, then contrast about the
/// image mean) computed on the host in f64, value by value; and its gradient is the reference's
/// (checked by finite differences of the same host formula for a weighted sum).
#[test]
fn color_is_the_references_brightness_saturation_and_contrast() {
    let device = Default::default();
    let (n, c, h, w) = (3, 3, 5, 4);
    let (plane, image) = (h * w, c * h * w);
    let data: Vec<f32> = (0..n * image)
        .map(|i| ((i * 37 % 101) as f32) / 101.0)
        .collect();
    // The draws, in the order `color` takes them: brightness, saturation, contrast per image.
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let r: Vec<f64> = (0..3 * n)
        .map(|_| rand::Rng::random::<f32>(&mut rng) as f64)
        .collect();
    let reference = |x: &[f64]| -> Vec<f64> {
        let mut out = Vec::with_capacity(x.len());
        for img in 0..n {
            let (b, s, k) = ((r[img] - 0.5) * 0.5, r[n + img] * 2.0, r[2 * n + img] + 0.5);
            let x1: Vec<f64> = x[img * image..][..image].iter().map(|v| v + b).collect();
            let mean_c: Vec<f64> = (0..plane)
                .map(|p| (0..c).map(|ch| x1[ch * plane + p]).sum::<f64>() / c as f64)
                .collect();
            let x2: Vec<f64> = (0..image)
                .map(|i| (x1[i] - mean_c[i % plane]) * s + mean_c[i % plane])
                .collect();
            let mean = x2.iter().sum::<f64>() / image as f64;
            out.extend(x2.iter().map(|v| (v - mean) * k + mean));
        }
        out
    };
    let x64: Vec<f64> = data.iter().map(|&v| v as f64).collect();
    let want = reference(&x64);
    let x = Tensor::<AD, 4>::from_data(TensorData::new(data.clone(), [n, c, h, w]), &device)
        .require_grad();
    let y = augment::color(x.clone(), &mut ChaCha8Rng::seed_from_u64(3));
    let got = y.clone().into_data().to_vec::<f32>().unwrap();
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!((*g as f64 - w).abs() < 1e-5, "value {i}: {g} against {w}");
    }
    // d/dx of sum(y * weights), against central differences of the f64 reference.
    let weights: Vec<f32> = (0..n * image)
        .map(|i| ((i % 7) as f32 - 3.0) / 3.0)
        .collect();
    let wt = Tensor::<AD, 4>::from_data(TensorData::new(weights.clone(), [n, c, h, w]), &device);
    let grads = (y * wt).sum().backward();
    let grad = x.grad(&grads).unwrap().into_data().to_vec::<f32>().unwrap();
    let weighted = |x: &[f64]| -> f64 {
        reference(x)
            .iter()
            .zip(&weights)
            .map(|(y, w)| y * *w as f64)
            .sum()
    };
    for i in (0..n * image).step_by(7) {
        let (mut up, mut down) = (x64.clone(), x64.clone());
        up[i] += 1e-4;
        down[i] -= 1e-4;
        let numeric = (weighted(&up) - weighted(&down)) / 2e-4;
        assert!(
            (grad[i] as f64 - numeric).abs() < 1e-4,
            "gradient {i}: {} against {numeric}",
            grad[i]
        );
    }
}

/// Translation moves each image by the shift it drew, `(dy, dx)` in that order from the step's
/// RNG, each within 1/8 of the side: `out[i][j] = x[i + dy][j + dx]`, zero where that falls
/// outside the image, in every channel.
#[test]
fn translation_shifts_whole_images_and_fills_zeros() {
    let device = Default::default();
    let (n, c, h, w) = (3, 2, 16, 16);
    let data: Vec<f32> = (0..n * c * h * w).map(|i| 1.0 + i as f32).collect();
    let x = Tensor::<B, 4>::from_data(TensorData::new(data.clone(), [n, c, h, w]), &device);
    let y = augment::translation(x, &mut ChaCha8Rng::seed_from_u64(11));
    let y = y.into_data().to_vec::<f32>().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let reach = 2i64; // 16 / 8
    let mut moved = 0;
    for img in 0..n {
        let dy = rand::Rng::random_range(&mut rng, -reach..=reach);
        let dx = rand::Rng::random_range(&mut rng, -reach..=reach);
        moved += usize::from((dy, dx) != (0, 0));
        let at = |v: &[f32], ch: usize, i: usize, j: usize| v[((img * c + ch) * h + i) * w + j];
        for ch in 0..c {
            for i in 0..h {
                for j in 0..w {
                    let (si, sj) = (i as i64 + dy, j as i64 + dx);
                    let inside = (0..h as i64).contains(&si) && (0..w as i64).contains(&sj);
                    let want = if inside {
                        at(&data, ch, si as usize, sj as usize)
                    } else {
                        0.0
                    };
                    assert_eq!(
                        at(&y, ch, i, j),
                        want,
                        "image {img} (shift {dy}, {dx}), channel {ch}, pixel ({i}, {j})"
                    );
                }
            }
        }
    }
    assert!(moved > 0, "seed 11 draws at least one non-zero shift");
    // The filled border is written, not masked by multiplication: a NaN pixel does not spread
    // into it.
    let mut poisoned = data;
    for plane in poisoned.chunks_mut(h * w) {
        plane[0] = f32::NAN;
    }
    let x = Tensor::<B, 4>::from_data(TensorData::new(poisoned, [n, c, h, w]), &device);
    let y = augment::translation(x, &mut ChaCha8Rng::seed_from_u64(11));
    let nan = y.into_data().to_vec::<f32>().unwrap();
    let spread = nan.iter().filter(|v| v.is_nan()).count();
    assert!(
        spread <= n * c,
        "{spread} NaN pixels from {} NaN inputs",
        n * c
    );
}

#[test]
fn cutout_zeroes_one_rectangle_per_image_in_every_channel() {
    let device = Default::default();
    let (n, c, h, w) = (5, 3, 16, 16);
    let x = Tensor::<B, 4>::ones([n, c, h, w], &device);
    let y = augment::cutout(x, &mut ChaCha8Rng::seed_from_u64(2));
    let y = y.into_data().to_vec::<f32>().unwrap();
    for img in 0..n {
        let plane = |ch: usize| &y[(img * c + ch) * h * w..(img * c + ch + 1) * h * w];
        let zeros = plane(0).iter().filter(|v| **v == 0.0).count();
        assert!(
            zeros > 0 && zeros <= 64,
            "image {img}: {zeros} zeros (8x8 at most)"
        );
        assert_eq!(plane(0), plane(1));
        assert_eq!(plane(0), plane(2));
    }
}

#[test]
fn ema_update_is_exact() {
    let _turn = rng_turn();
    let device = Default::default();
    let cfg = ModelConfig::tiny();
    B::seed(&device, 1);
    let ema = Generator::<B>::new(&cfg, &device);
    let live = Generator::<B>::new(&cfg, &device);
    let (e0, l0) = (values(&ema), values(&live));
    let decay = 0.9;
    let out = values(&ema_update(ema, &live, decay));
    assert_eq!(out.len(), e0.len());
    for ((o, e), l) in out.iter().zip(&e0).zip(&l0) {
        for ((o, e), l) in o.iter().zip(e).zip(l) {
            let want = (decay as f32) * e + (1.0 - decay as f32) * l;
            assert!(
                (o - want).abs() <= 1e-6 * (1.0 + want.abs()),
                "{o} vs {want}"
            );
        }
    }
    assert_eq!(ema_decay(0.999, 10.0, 0), 0.1);
    assert_eq!(ema_decay(0.999, 10.0, 1_000_000), 0.999);
    // A smaller warm-up constant averages over a longer stretch: at step 2,000 the default
    // still forgets in about 222 steps, warm-up 3 in about 1,000.
    assert_eq!(ema_decay(0.999, 3.0, 0), 1.0 / 3.0);
    assert!(ema_decay(0.999, 3.0, 2_000) > ema_decay(0.999, 10.0, 2_000));
    assert_eq!(ema_decay(0.999, 3.0, 1_000_000), 0.999);
}

#[test]
fn instance_noise_is_annealed_to_zero() {
    let _turn = rng_turn();
    let device = Default::default();
    let mut cfg = TrainConfig::preset("tiny").unwrap();
    cfg.instance_noise = 0.5;
    cfg.model.d_dropout = 0.0;
    let mut gan = facegan_trainer::gan::Gan::<AD>::new(&cfg, &device);
    let real = Tensor::<AD, 4>::full([8, 3, 16, 16], 0.5, &device);
    let fake = Tensor::<AD, 4>::full([8, 3, 16, 16], 0.25, &device);
    // At the end of the run (progress 1) D sees clean images: its loss equals the noiseless one.
    let d = gan.d.clone();
    gan.progress = 1.0;
    let (l_end, _) = gan.d_step(real.clone(), fake.clone());
    gan.d = d.clone();
    gan.progress = 0.0;
    let (l_start, _) = gan.d_step(real.clone(), fake.clone());
    gan.d = d.clone();
    cfg.instance_noise = 0.0;
    let mut plain = facegan_trainer::gan::Gan::<AD>::new(&cfg, &device);
    plain.d = d;
    let (l_off, _) = plain.d_step(real, fake);
    assert_eq!(
        scalar(l_end),
        scalar(l_off.clone()),
        "no noise at progress 1"
    );
    assert_ne!(scalar(l_start), scalar(l_off), "noise at progress 0");
}

#[test]
fn learning_rate_scale_is_one_then_falls_linearly_to_zero() {
    let mut cfg = TrainConfig::preset("faces48").unwrap();
    assert_eq!(cfg.lr_decay, 0.0, "no preset decays unless it says so");
    assert_eq!((cfg.lr_scale(0.0), cfg.lr_scale(1.0)), (1.0, 1.0));
    cfg.lr_decay = 0.25;
    cfg.validate().unwrap();
    for (progress, scale) in [
        (0.0, 1.0),
        (0.75, 1.0),
        (0.875, 0.5),
        (1.0, 0.0),
        (1.5, 0.0),
    ] {
        assert!((cfg.lr_scale(progress) - scale).abs() < 1e-12, "{progress}");
    }
    for bad in [-0.1, 1.5, f64::NAN] {
        cfg.lr_decay = bad;
        assert!(cfg.validate().unwrap_err().to_string().contains("lr_decay"));
    }
    let toml = TrainConfig::from_toml_str("preset = \"faces48\"\nlr_decay = 0.2\n").unwrap();
    assert_eq!(toml.lr_decay, 0.2);
    let written = TrainConfig::preset("faces48").unwrap().to_toml();
    assert!(
        !written.contains("lr_decay"),
        "configs without decay are written as before"
    );
}

#[test]
fn decayed_learning_rates_stop_both_networks_at_the_end_of_the_run() {
    let _turn = rng_turn();
    let device = Default::default();
    let mut cfg = TrainConfig::preset("tiny").unwrap();
    // Without BatchNorm or spectral norm a step changes only what the optimizer changes.
    cfg.model.d_batchnorm.iter_mut().for_each(|b| *b = false);
    cfg.model.g_batchnorm.iter_mut().for_each(|b| *b = false);
    cfg.model.spectral_norm = false;
    cfg.model.d_dropout = 0.0;
    cfg.lr_decay = 0.5;
    let real = Tensor::<AD, 4>::full([8, 3, 16, 16], 0.5, &device);
    let z = Tensor::<AD, 2>::random(
        [8, cfg.model.latent],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &device,
    );
    for (progress, moves) in [(0.0, true), (0.75, true), (1.0, false)] {
        let mut gan = facegan_trainer::gan::Gan::<AD>::new(&cfg, &device);
        let (g0, d0) = (values(&gan.g), values(&gan.d));
        gan.progress = progress;
        gan.step_with_noise(real.clone(), z.clone(), 0);
        assert_eq!(values(&gan.g) != g0, moves, "G at progress {progress}");
        assert_eq!(values(&gan.d) != d0, moves, "D at progress {progress}");
    }
}

#[test]
fn r1_gradients_match_finite_differences() {
    let _turn = rng_turn();
    let device = Default::default();
    let mut cfg = ModelConfig::tiny();
    cfg.d_dropout = 0.0;
    cfg.d_batchnorm = vec![false, false];
    // Minibatch stddev on; spectral norm off (its power iteration moves u with W, which finite
    // differences would see but the paper's gradient, by design, does not).
    cfg.mbstd_group = 2;
    // LeakyReLU's kink makes the penalty jump wherever a pre-activation changes sign, which
    // breaks finite differences; slope 1 keeps D piecewise-free (still nonlinear through the
    // minibatch stddev) so the nested second derivative can be checked exactly.
    cfg.leaky_slope = 1.0;
    AD::seed(&device, 3);
    let d = Discriminator::<AD>::new(&cfg, &device);
    let real =
        Tensor::<B, 4>::from_data(TensorData::new(ramp(4, 3, 16, 16), [4, 3, 16, 16]), &device);
    let gamma = 10.0;
    let r1 = r1_gradients(&d, &cfg, real.clone(), gamma);
    assert!(scalar(r1.penalty.clone()) > 0.0);
    // The head's bias does not change grad_x D, so its R1 gradient is 0; the first conv weight's
    // is checked element by element against central differences of the penalty.
    let head_bias = d.head.bias.as_ref().unwrap().id;
    let conv0 = d.blocks[0].conv.weight.id;
    let grad_of = |id| {
        r1.grads
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, g)| g.clone().into_data().to_vec::<f32>().unwrap())
            .unwrap()
    };
    assert!(grad_of(head_bias).iter().all(|v| v.abs() < 1e-6));
    let analytic = grad_of(conv0);
    let w0 = d.blocks[0]
        .conv
        .weight
        .val()
        .inner()
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    let dims = d.blocks[0].conv.weight.dims();
    let penalty_with = |w: Vec<f32>| {
        let mut dd = d.clone();
        let t = Tensor::<B, 4>::from_data(TensorData::new(w, dims), &device);
        dd.blocks[0].conv.weight = Param::initialized(conv0, Tensor::from_inner(t).require_grad());
        scalar(r1_gradients(&dd, &cfg, real.clone(), gamma).penalty)
    };
    let eps = 1e-2f32;
    for k in [0usize, 7, 40, 100] {
        let (mut plus, mut minus) = (w0.clone(), w0.clone());
        plus[k] += eps;
        minus[k] -= eps;
        let fd = (penalty_with(plus) - penalty_with(minus)) / (2.0 * eps as f64);
        let an = analytic[k] as f64;
        assert!(
            (fd - an).abs() <= 3e-2 * (fd.abs().max(an.abs()) + 1e-3),
            "element {k}: finite difference {fd}, R1 gradient {an}"
        );
    }
}
