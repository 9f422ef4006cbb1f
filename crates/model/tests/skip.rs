//! The skip generator (`g_skip`): it trains on the CPU fast path, its upsampling is PyTorch's
//! bilinear x2, and with its early RGB layers at zero it is exactly the plain generator.
//! (Generator files from before the `skip` field load as the v3 layout: see `sle.rs`.)

mod common;

use burn::backend::{Autodiff, Flex};
use burn::module::Param;
use burn::tensor::{Distribution, Tensor, TensorData};
use facegan_model::generator::upsample2_bilinear;
use facegan_model::{Generator, ModelConfig};

type B = Flex;
type AD = Autodiff<Flex>;

fn tiny_skip() -> ModelConfig {
    ModelConfig {
        g_skip: true,
        ..ModelConfig::tiny()
    }
}

/// A skip generator draws full-size images in [0, 1], gradients reach its first RGB layer and
/// its dense layer, and its hot ops run the CPU kernels (none falls back to Burn's ops).
#[test]
fn a_skip_generator_trains_on_the_cpu_fast_path() {
    let cfg = tiny_skip();
    cfg.validate().unwrap();
    let device = Default::default();
    let _turn = common::rng_turn();
    let g = Generator::<AD>::new(&cfg, &device);
    assert!(!g.grows(), "a skip generator does not grow");
    let mark = common::FastPathMark::now();
    let z = Tensor::<AD, 2>::random([4, cfg.latent], Distribution::Normal(0.0, 1.0), &device);
    let images = g.forward(z);
    assert_eq!(images.dims(), [4, 3, 16, 16]);
    let (lo, hi) = (
        images.clone().min().into_scalar(),
        images.clone().max().into_scalar(),
    );
    assert!((0.0..=1.0).contains(&lo) && (0.0..=1.0).contains(&hi) && lo < hi);
    let grads = images.mean().backward();
    let rgb0 = g.to_rgb_steps[0]
        .weight
        .grad(&grads)
        .expect("step 1's RGB learns");
    let project = g
        .project
        .weight
        .grad(&grads)
        .expect("the dense layer learns");
    assert!(rgb0.abs().sum().into_scalar() > 0.0 && project.abs().sum().into_scalar() > 0.0);
    mark.assert_fast_since("the skip generator");
}

/// x2 bilinear upsampling with half-pixel centres gives PyTorch's numbers:
/// `F.interpolate(torch.tensor([[[[1., 2.], [3., 4.]]]]), scale_factor=2, mode="bilinear",
/// align_corners=False)`.
#[test]
fn bilinear_upsampling_matches_pytorch() {
    let device = Default::default();
    let x = Tensor::<B, 4>::from_data(
        TensorData::new(vec![1f32, 2., 3., 4.], [1, 1, 2, 2]),
        &device,
    );
    let y = upsample2_bilinear(x).into_data().to_vec::<f32>().unwrap();
    #[rustfmt::skip]
    let torch = [
        1.00, 1.25, 1.75, 2.00,
        1.50, 1.75, 2.25, 2.50,
        2.50, 2.75, 3.25, 3.50,
        3.00, 3.25, 3.75, 4.00,
    ];
    common::assert_matches_pytorch(&y, &torch, 1e-6);
}

/// The skip layers are drawn after all the others: from the same seed, a skip `faces96` whose
/// early RGB layers are zero draws exactly the plain `faces96`'s images, and its parameters
/// are the plain model's plus one 3x3 RGB conv after each step but the last.
#[test]
fn with_its_early_rgb_layers_at_zero_a_skip_generator_is_the_plain_one() {
    let device = Default::default();
    let _turn = common::rng_turn();
    let plain_cfg = ModelConfig::faces96();
    let skip_cfg = ModelConfig {
        g_skip: true,
        ..ModelConfig::faces96()
    };
    let [plain, mut skip] =
        common::generators_from_one_seed::<B>(5, [&plain_cfg, &skip_cfg], &device);
    let extra = [256, 128, 64].iter().map(|c| c * 9 * 3 + 3).sum::<usize>();
    assert_eq!(
        skip.param_counts().total,
        plain.param_counts().total + extra
    );
    let z = Tensor::<B, 2>::random([2, 64], Distribution::Normal(0.0, 1.0), &device);
    assert_ne!(
        skip.forward(z.clone()).into_data(),
        plain.forward(z.clone()).into_data(),
        "the early RGB layers add to the image"
    );
    for conv in &mut skip.to_rgb_steps {
        conv.weight = Param::from_tensor(conv.weight.val().zeros_like());
        conv.bias = conv
            .bias
            .take()
            .map(|b| Param::from_tensor(b.val().zeros_like()));
    }
    assert_eq!(
        skip.forward(z.clone()).into_data(),
        plain.forward(z).into_data()
    );
}
