//! Progressive growing's networks: every level runs at its size on the CPU fast path (forward
//! and backward), a fade at alpha 0 is exactly the level before it, the extra layers leave the
//! full-size networks as the plain model's, and a level that does not suit the model is refused.

mod common;

use burn::backend::{Autodiff, Flex};
use burn::tensor::{Distribution, Tensor};
use facegan_model::generator::upsample2;
use facegan_model::{Discriminator, Generator, Level, ModelConfig};

type B = Flex;
type AD = Autodiff<Flex>;

fn tiny_progressive() -> ModelConfig {
    ModelConfig {
        progressive: true,
        ..ModelConfig::tiny()
    }
}

/// Every level of a growing model (the first step alone at 8x8, the full size fading in, the
/// full size) draws images of its size, D scores them, gradients reach both networks, and every
/// hot op of it runs the CPU kernels (none falls back to Burn's ops).
#[test]
fn every_level_runs_at_its_size_on_the_cpu_fast_path() {
    let cfg = tiny_progressive();
    let device = Default::default();
    let _turn = common::rng_turn();
    let g = Generator::<AD>::new(&cfg, &device);
    let d = Discriminator::<AD>::new(&cfg, &device);
    for (level, size) in [
        (
            Level {
                steps: 1,
                alpha: 1.0,
            },
            [8, 8],
        ),
        (
            Level {
                steps: 2,
                alpha: 0.3,
            },
            [16, 16],
        ),
        (
            Level {
                steps: 2,
                alpha: 1.0,
            },
            [16, 16],
        ),
    ] {
        level.validate(&cfg).unwrap();
        assert_eq!(level.size(&cfg), (size[0], size[1]));
        let mark = common::FastPathMark::now();
        let z = Tensor::<AD, 2>::random([4, cfg.latent], Distribution::Normal(0.0, 1.0), &device);
        let images = g.forward_at(z, level);
        assert_eq!(images.dims(), [4, 3, size[0], size[1]], "{level:?}");
        let logits = d.forward_at(images, level);
        assert_eq!(logits.dims(), [4, 1]);
        let grads = logits.mean().backward();
        let g_grad = g.project.weight.grad(&grads).expect("G learns");
        let d_grad = d.head.weight.grad(&grads).expect("D learns");
        assert!(g_grad.abs().sum().into_scalar() > 0.0 && d_grad.abs().sum().into_scalar() > 0.0);
        mark.assert_fast_since(&format!("{level:?}"));
    }
}

/// At the start of a fade (alpha 0) G draws exactly the previous level's images upsampled x2,
/// and D scores exactly what the previous level's D scores on the images shrunk by 2x2 means:
/// growing changes nothing until the new step fades in.
#[test]
fn a_fade_at_alpha_zero_is_exactly_the_level_before() {
    let cfg = tiny_progressive();
    let device = Default::default();
    let _turn = common::rng_turn();
    let g = Generator::<B>::new(&cfg, &device);
    let d = Discriminator::<B>::new(&cfg, &device);
    let z = Tensor::<B, 2>::random([3, cfg.latent], Distribution::Normal(0.0, 1.0), &device);
    let before = Level {
        steps: 1,
        alpha: 1.0,
    };
    let start = Level {
        steps: 2,
        alpha: 0.0,
    };
    let faded = g.forward_at(z.clone(), start).into_data();
    let previous = upsample2(g.forward_at(z, before)).into_data();
    assert_eq!(faded, previous);
    let x = Tensor::<B, 4>::random([3, 3, 16, 16], Distribution::Uniform(0.0, 1.0), &device);
    let shrunk = burn::tensor::module::avg_pool2d(x.clone(), [2, 2], [2, 2], [0, 0], true, false);
    assert_eq!(
        d.forward_at(x, start).into_data(),
        d.forward_at(shrunk, before).into_data()
    );
}

/// The progressive layers are drawn after all the others: from the same seed, each network of a
/// progressive model is, at its full size, the plain model's, output for output, and its
/// parameters are
/// the plain model's plus one RGB layer per step but the last on each side.
#[test]
fn the_extra_layers_leave_the_full_size_networks_as_the_plain_models() {
    let device = Default::default();
    let _turn = common::rng_turn();
    let plain_cfg = ModelConfig::faces96();
    let grow_cfg = ModelConfig::grow96();
    let seeded = |seed| <B as burn::tensor::backend::Backend>::seed(&device, seed);
    seeded(5);
    let g0 = Generator::<B>::new(&plain_cfg, &device);
    seeded(5);
    let g1 = Generator::<B>::new(&grow_cfg, &device);
    seeded(6);
    let d0 = Discriminator::<B>::new(&plain_cfg, &device);
    seeded(6);
    let d1 = Discriminator::<B>::new(&grow_cfg, &device);
    let z = Tensor::<B, 2>::random([2, 64], Distribution::Normal(0.0, 1.0), &device);
    let image = g0.forward(z.clone());
    assert_eq!(image.to_data(), g1.forward(z).to_data());
    assert_eq!(
        d0.forward(image.clone()).into_data(),
        d1.forward(image).into_data()
    );
    // G: a 3x3 RGB conv after the 256-, 128- and 64-channel steps; D: a 1x1 RGB conv into
    // the 32-, 64- and 128-channel inputs.
    let extra_g = [256, 128, 64].iter().map(|c| c * 9 * 3 + 3).sum::<usize>();
    let extra_d = [32, 64, 128].iter().map(|c| 3 * c + c).sum::<usize>();
    assert_eq!(g1.param_counts().total, g0.param_counts().total + extra_g);
    assert_eq!(d1.param_counts().total, d0.param_counts().total + extra_d);
}

/// Levels a model cannot run are refused with the reason: outside its steps, a fade of the
/// first step, alpha outside [0, 1], or a smaller size on a model without the extra layers.
#[test]
fn a_level_that_does_not_suit_the_model_is_refused() {
    let cfg = tiny_progressive();
    let bad = [
        (
            Level {
                steps: 0,
                alpha: 1.0,
            },
            "1 to 2",
        ),
        (
            Level {
                steps: 3,
                alpha: 1.0,
            },
            "1 to 2",
        ),
        (
            Level {
                steps: 1,
                alpha: 0.5,
            },
            "nothing to fade in from",
        ),
        (
            Level {
                steps: 2,
                alpha: 1.5,
            },
            "alpha",
        ),
    ];
    for (level, why) in bad {
        let e = level.validate(&cfg).unwrap_err();
        assert!(e.contains(why), "{level:?}: {e}");
    }
    let plain = ModelConfig::tiny();
    let e = Level {
        steps: 1,
        alpha: 1.0,
    }
    .validate(&plain)
    .unwrap_err();
    assert!(e.contains("progressive"), "{e}");
    assert!(Level::full(&plain).validate(&plain).is_ok());
}
