//! Mechanics of the better-faces techniques in the model crate: spectral normalization's power
//! iteration converges to the true largest singular value, the minibatch-stddev feature has the
//! hand-computed values, and the better presets are bigger than the seed ones.

mod common;

use burn::backend::{Autodiff, Flex};
use burn::module::AutodiffModule;
use burn::tensor::{Tensor, TensorData};
use facegan_model::layers::{minibatch_stddev, SpectralNorm};
use facegan_model::{Discriminator, Generator, ModelConfig};

type B = Flex;
type AD = Autodiff<Flex>;

/// Householder reflection I - 2 v v^T / |v|^2 (orthogonal), as a row-major n x n matrix.
fn householder(v: &[f64]) -> Vec<f64> {
    let n = v.len();
    let vv: f64 = v.iter().map(|x| x * x).sum();
    let mut h = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            h[i * n + j] = f64::from(u8::from(i == j)) - 2.0 * v[i] * v[j] / vv;
        }
    }
    h
}

/// W = U diag(s) V^T with U, V Householder reflections, so its singular values are `s`.
fn matrix_with_singular_values(rows: usize, cols: usize, s: &[f64]) -> Vec<f32> {
    let u = householder(&(0..rows).map(|i| 1.0 + i as f64).collect::<Vec<_>>());
    let v = householder(
        &(0..cols)
            .map(|i| (i as f64 - 1.5).powi(2) + 0.5)
            .collect::<Vec<_>>(),
    );
    let mut w = vec![0f32; rows * cols];
    for i in 0..rows {
        for j in 0..cols {
            let mut acc = 0.0;
            for (k, sk) in s.iter().enumerate() {
                acc += u[i * rows + k] * sk * v[j * cols + k];
            }
            w[i * cols + j] = acc as f32;
        }
    }
    w
}

fn scalar<Bk: burn::tensor::backend::Backend, const D: usize>(t: Tensor<Bk, D>) -> f32 {
    t.into_data().to_vec::<f32>().unwrap()[0]
}

#[test]
fn spectral_norm_power_iteration_converges_to_the_largest_singular_value() {
    let _turn = common::rng_turn();
    let device = Default::default();
    <AD as burn::tensor::backend::Backend>::seed(&device, 3);
    let (rows, cols) = (5, 4);
    let w = matrix_with_singular_values(rows, cols, &[3.0, 2.0, 1.0, 0.5]);
    let weight = Tensor::<AD, 2>::from_data(TensorData::new(w.clone(), [rows, cols]), &device);
    let sn = SpectralNorm::<AD>::new(rows, &device);
    let mut last = 0.0;
    for _ in 0..40 {
        last = scalar(sn.sigma(weight.clone()));
    }
    assert!((last - 3.0).abs() < 1e-3, "sigma estimate {last}, want 3");
    // A 4-D conv weight is viewed as [dims[0], rest]: same matrix, same sigma.
    let w4 = Tensor::<AD, 4>::from_data(TensorData::new(w, [rows, 1, 2, 2]), &device);
    let normalized = sn.normalize(w4.clone());
    let ratio = scalar(w4.sum()) / scalar(normalized.sum());
    assert!(
        (ratio - 3.0).abs() < 1e-3,
        "normalize divides by sigma: {ratio}"
    );
    // The gradient of sigma w.r.t. W is u v^T, whose Frobenius norm is 1.
    let wg = weight.clone().require_grad();
    let grads = sn.sigma(wg.clone()).sum().backward();
    let g = wg
        .grad(&grads)
        .unwrap()
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    let norm: f32 = g.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-3, "|d sigma / dW| = {norm}");
}

#[test]
fn spectral_norm_eval_mode_keeps_its_state() {
    let _turn = common::rng_turn();
    let device = Default::default();
    <AD as burn::tensor::backend::Backend>::seed(&device, 4);
    let sn = SpectralNorm::<AD>::new(6, &device).valid();
    let before = sn.u.value().into_data();
    let w = Tensor::<B, 2>::ones([6, 3], &device);
    let a = scalar(sn.sigma(w.clone()));
    let b = scalar(sn.sigma(w));
    assert_eq!(a, b);
    assert_eq!(sn.u.value().into_data(), before);
}

#[test]
fn minibatch_stddev_matches_hand_computed_values() {
    let device = Default::default();
    // N = 4, group 2: samples {0, 2} and {1, 3} form the groups (n % 2).
    let x = Tensor::<B, 4>::from_floats([[[[1.0]]], [[[2.0]]], [[[3.0]]], [[[5.0]]]], &device);
    let y = minibatch_stddev(x, 2);
    assert_eq!(y.dims(), [4, 2, 1, 1]);
    let v = y.into_data().to_vec::<f32>().unwrap();
    let feature: Vec<f32> = v.chunks(2).map(|c| c[1]).collect();
    for (got, want) in feature.iter().zip([1.0, 1.5, 1.0, 1.5]) {
        assert!((got - want).abs() < 1e-4, "{feature:?}");
    }
    // N = 4, group 2, two channels of two pixels: the feature averages each group's
    // per-feature standard deviations, group {0, 2} and group {1, 3} apart.
    let x = Tensor::<B, 4>::from_floats(
        [
            [[[0.0, 0.0]], [[0.0, 0.0]]],
            [[[0.0, 0.0]], [[0.0, 0.0]]],
            [[[2.0, 0.0]], [[0.0, 4.0]]],
            [[[0.0, 6.0]], [[8.0, 0.0]]],
        ],
        &device,
    );
    let v = minibatch_stddev(x, 2).into_data().to_vec::<f32>().unwrap();
    // Each image is [3 channels of 2]; the feature is channel 2. Group {0, 2}: stds 1, 0, 0, 2
    // (mean 0.75); group {1, 3}: 0, 3, 4, 0 (mean 1.75).
    let feature: Vec<f32> = v.chunks(6).map(|image| image[4]).collect();
    for (got, want) in feature.iter().zip([0.75, 1.75, 0.75, 1.75]) {
        assert!((got - want).abs() < 1e-4, "{feature:?}");
    }
    // A batch of 3 with group 4 falls back to one group of 3.
    let x = Tensor::<B, 4>::from_floats([[[[0.0, 3.0]]], [[[0.0, 3.0]]], [[[3.0, 0.0]]]], &device);
    let v = minibatch_stddev(x, 4).into_data().to_vec::<f32>().unwrap();
    let want = (2.0f32).sqrt(); // std of {0, 0, 3} = sqrt(2) for both features
    assert!(
        (v[2] - want).abs() < 1e-4 && (v[3] - want).abs() < 1e-4,
        "{v:?}"
    );
}

#[test]
fn the_better_presets_are_bigger_than_the_seed_ones() {
    let device = Default::default();
    let count = |name: &str| {
        let cfg = ModelConfig::preset(name).unwrap();
        let d = Discriminator::<B>::new(&cfg, &device)
            .param_counts()
            .trainable;
        let g = Generator::<B>::new(&cfg, &device).param_counts().trainable;
        (d, g)
    };
    let (sd, sg) = count("seed48");
    let (bd, bg) = count("celeba48");
    assert!(
        bd > 3 * sd && bg > sg,
        "celeba48 {bd}/{bg} vs seed48 {sd}/{sg}"
    );
}
