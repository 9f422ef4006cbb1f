//! The seed preset matches the reference (`tools/torch_dcgan.py`): shapes and Keras parameter
//! counts; every preset validates and runs; Glorot initialisation; the view-based BatchNorm
//! matches Burn's own BatchNorm.

mod common;

use burn::backend::{Autodiff, Flex};
use burn::module::AutodiffModule;
use burn::nn::BatchNormConfig;
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor, Tolerance};
use facegan_model::layers::BatchNorm2d;
use facegan_model::{Discriminator, Generator, ModelConfig};

type B = Flex;
type AD = Autodiff<Flex>;

#[test]
fn seed_parameter_counts_match_keras() {
    let device = Default::default();
    let cfg = ModelConfig::seed();
    let d = Discriminator::<B>::new(&cfg, &device).param_counts();
    let g = Generator::<B>::new(&cfg, &device).param_counts();
    assert_eq!((d.total, d.trainable), (245_057, 244_865));
    assert_eq!((g.total, g.trainable), (790_787, 789_763));
}

#[test]
fn seed_shapes_match_the_reference() {
    let device = Default::default();
    let cfg = ModelConfig::seed();
    assert_eq!(cfg.bottom_size(), (6, 5));
    let g = Generator::<B>::new(&cfg, &device);
    let d = Discriminator::<B>::new(&cfg, &device);
    let z = Tensor::<B, 2>::zeros([2, 64], &device);
    let img = g.forward(z);
    assert_eq!(img.dims(), [2, 3, 96, 80]);
    let v = img.clone().into_data().to_vec::<f32>().unwrap();
    assert!(v.iter().all(|x| (0.0..=1.0).contains(x)), "sigmoid output");
    assert_eq!(d.forward(img).dims(), [2, 1]);
    // The D's dense layer sees 128 x 6 x 5 = 3840 features.
    assert_eq!(d.head.weight.dims(), [3840, 1]);
    assert_eq!(g.project.weight.dims(), [64, 6 * 5 * 64]);
    assert!(g.project.bias.is_none());
}

/// Every preset validates, its G and D run on the training backend (batch 4) and its G on the
/// inference backend (batch 1), with the preset's image size and D's convolution count.
#[test]
fn every_preset_validates_and_runs_d_and_g_with_its_shapes() {
    let device = Default::default();
    for name in ModelConfig::PRESETS {
        let cfg = ModelConfig::preset(name).unwrap();
        cfg.validate().unwrap();
        let g = Generator::<AD>::new(&cfg, &device);
        let d = Discriminator::<AD>::new(&cfg, &device);
        let img = g.forward(Tensor::zeros([4, cfg.latent], &device));
        assert_eq!(img.dims(), [4, 3, cfg.height, cfg.width], "{name}");
        assert_eq!(d.forward(img).dims(), [4, 1], "{name}");
        let extra = cfg.block_convs * cfg.d_channels.len();
        assert_eq!(d.blocks.len(), cfg.d_channels.len() + extra, "{name}");
        assert_eq!(d.head_sn.is_some(), cfg.spectral_norm, "{name}");
        let g = Generator::<B>::new(&cfg, &device);
        let out = g.forward(Tensor::zeros([1, cfg.latent], &device));
        assert_eq!(out.dims(), [1, 3, cfg.height, cfg.width], "{name}");
    }
}

#[test]
fn a_size_not_divisible_by_the_downsampling_is_refused() {
    let mut bad = ModelConfig::seed();
    bad.height = 90;
    assert!(bad.validate().unwrap_err().contains("divisible"));
}

#[test]
fn glorot_init_has_keras_limits_and_zero_biases() {
    let _turn = common::rng_turn();
    let device = Default::default();
    B::seed(&device, 3);
    let d = Discriminator::<B>::new(&ModelConfig::seed(), &device);
    let w = d.blocks[1]
        .conv
        .weight
        .val()
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    let limit = (6.0f32 / (32.0 * 9.0 + 64.0 * 9.0)).sqrt();
    assert!(w.iter().all(|x| x.abs() <= limit));
    let max = w.iter().fold(0f32, |m, x| m.max(x.abs()));
    assert!(max > 0.9 * limit, "uniform over the whole range");
    let b = d.blocks[1]
        .conv
        .bias
        .as_ref()
        .unwrap()
        .val()
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    assert!(b.iter().all(|x| *x == 0.0));
}

/// The model's BatchNorm (whichever path the backend takes: the fused kernel, or Burn's ops
/// with `FACEGAN_BURN_OPS=1`) against Burn's `BatchNorm` module, in training and eval mode.
#[test]
fn view_batchnorm_matches_burn_batchnorm_forward_backward_and_running_stats() {
    let _turn = common::rng_turn();
    let device = Default::default();
    AD::seed(&device, 11);
    let x = Tensor::<AD, 4>::random([4, 5, 6, 7], Distribution::Normal(0.5, 2.0), &device)
        .require_grad();
    let ours = BatchNorm2d::<AD>::new(5, 0.01, 1e-3, &device);
    let theirs = BatchNormConfig::new(5)
        .with_momentum(0.01)
        .with_epsilon(1e-3)
        .init::<AD>(&device);
    let weights = Tensor::<AD, 4>::random([4, 5, 6, 7], Distribution::Default, &device);
    let y1 = ours.forward(x.clone());
    let y2 = theirs.forward(x.clone());
    y1.clone()
        .into_data()
        .assert_approx_eq::<f32>(&y2.clone().into_data(), Tolerance::absolute(1e-5));
    let g1 = (y1 * weights.clone()).sum().backward();
    let g2 = (y2 * weights).sum().backward();
    x.grad(&g1)
        .unwrap()
        .into_data()
        .assert_approx_eq::<f32>(&x.grad(&g2).unwrap().into_data(), Tolerance::absolute(1e-5));
    let rm1 = ours.running_mean.value().into_data();
    let rm2 = theirs.running_mean.value().into_data();
    rm1.assert_approx_eq::<f32>(&rm2, Tolerance::absolute(1e-6));
    ours.running_var
        .value()
        .into_data()
        .assert_approx_eq::<f32>(
            &theirs.running_var.value().into_data(),
            Tolerance::absolute(1e-6),
        );
    // Eval mode uses the running statistics.
    let ours_eval = ours.valid();
    let theirs_eval = theirs.valid();
    let xi = x.inner();
    ours_eval
        .forward(xi.clone())
        .into_data()
        .assert_approx_eq::<f32>(
            &theirs_eval.forward(xi).into_data(),
            Tolerance::absolute(1e-5),
        );
}

/// Inside `as_at_inference`, G and D on the autodiff backend compute what the inference backend
/// computes (BatchNorm on running statistics, no dropout), yet gradients reach their input;
/// outside it they train (batch statistics), as before.
#[test]
fn as_at_inference_runs_the_networks_as_at_inference_with_gradients_to_the_input() {
    use facegan_model::layers::as_at_inference;
    let device = Default::default();
    let mut cfg = ModelConfig::seed();
    cfg.d_dropout = 0.5;
    let g = Generator::<AD>::new(&cfg, &device);
    let d = Discriminator::<AD>::new(&cfg, &device);
    let z = Tensor::<B, 2>::random([3, cfg.latent], Distribution::Normal(0.0, 1.0), &device);
    let want = g.valid().forward(z.clone());
    let za = Tensor::<AD, 2>::from_inner(z.clone()).require_grad();
    let got = as_at_inference(|| g.forward(za.clone()));
    want.clone()
        .into_data()
        .assert_approx_eq::<f32>(&got.clone().inner().into_data(), Tolerance::absolute(1e-5));
    let want_d = d.valid().forward(want);
    let got_d = as_at_inference(|| d.forward(got.clone()));
    want_d.into_data().assert_approx_eq::<f32>(
        &got_d.clone().inner().into_data(),
        Tolerance::absolute(1e-5),
    );
    let grads = got_d.sum().backward();
    let gz = za.grad(&grads).expect("a gradient reaches z");
    assert!(gz.abs().sum().into_scalar() > 0.0);
    // Outside it, the same G trains: batch statistics give other images.
    let trained = g.forward(Tensor::<AD, 2>::from_inner(z)).inner();
    let gap = (trained - got.inner()).abs().max().into_scalar();
    assert!(gap > 1e-3, "batch statistics made no difference ({gap})");
}
