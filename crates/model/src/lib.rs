//! The GAN's networks as Burn modules, and their presets.
//!
//! - [`ModelConfig`]: image size, latent size, widths and depths, G's upsampling and residual
//!   blocks (serde/TOML); presets `seed` (the tutorial's exact networks), `faces48` (the
//!   measured CPU recipe) and `faces96`, `demo` (faces48's model), `tiny` (tests), `seed48` /
//!   `celeba48` (the baselines of the CPU comparison).
//! - [`Discriminator`]: images in [0, 1] -> one logit each. The seed's sigmoid is applied by the
//!   loss (see the trainer), so the same network serves logit losses too.
//! - [`Generator`]: noise -> images in [0, 1].
//! - [`grow`]: progressive growing's [`Level`] (which part of the networks runs, and its fade).
//! - [`layers`]: their building blocks (Glorot init, BatchNorm, spectral norm, G's upsampling).
//! - [`ops`]: the hot ops the networks call, generic over the backend: on the CPU backends they
//!   run the hand-written kernels of the private `cpu` module, elsewhere Burn's ops.
//!
//! Burn's BatchNorm mode follows the backend: on an autodiff backend it trains (batch statistics,
//! running-stat updates). Call `model.valid()` for sampling and evaluation.

// CI fails on a dependency the crate no longer uses (unit-test builds also see dev-dependencies).
#![cfg_attr(not(test), deny(unused_crate_dependencies))]

// burn-flex is a dependency only to switch on its `simd` and `rayon` features.
use burn_flex as _;

pub mod config;
mod cpu;
pub mod discriminator;
pub mod generator;
pub mod grow;
pub mod layers;
pub mod legacy;
pub mod ops;

pub use config::{ModelConfig, Padding, Upsample};
pub use discriminator::Discriminator;
pub use generator::Generator;
pub use grow::Level;

use burn::module::Module;
use burn::tensor::backend::Backend;

/// Parameter counts as Keras reports them: `total` includes BatchNorm moving mean/variance,
/// `trainable` does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamCounts {
    pub total: usize,
    pub trainable: usize,
}

/// Keras-style counts from Burn's `num_params`, which, like Keras' total, includes BatchNorm
/// running mean and variance (2 per channel), and also counts spectral norm's `u` vectors:
/// `untrained` is the number of those state values.
fn keras_counts(
    num_params: usize,
    norm_channels: impl Iterator<Item = usize>,
    untrained: usize,
) -> ParamCounts {
    let stats: usize = norm_channels.map(|c| 2 * c).sum();
    ParamCounts {
        total: num_params - untrained,
        trainable: num_params - untrained - stats,
    }
}

impl<B: Backend> Discriminator<B> {
    pub fn param_counts(&self) -> ParamCounts {
        let norms = self.blocks.iter().filter_map(|b| b.norm.as_ref());
        let sn_state: usize = self
            .blocks
            .iter()
            .filter_map(|b| b.sn.as_ref())
            .chain(self.head_sn.as_ref())
            .map(|sn| sn.u.value().dims()[0])
            .sum();
        keras_counts(self.num_params(), norms.map(|n| n.channels()), sn_state)
    }
}

impl<B: Backend> Generator<B> {
    pub fn param_counts(&self) -> ParamCounts {
        let norms = self.blocks.iter().flat_map(|b| {
            b.norm
                .iter()
                .chain(b.refine.iter().filter_map(|r| r.norm.as_ref()))
        });
        keras_counts(self.num_params(), norms.map(|n| n.channels()), 0)
    }
}
