//! The GAN's networks as Burn modules, and their presets.
//!
//! - [`ModelConfig`]: image size, latent size, widths and depths (serde/TOML); presets
//!   `seed` (the tutorial's exact networks), `tiny` (tests) and `demo` (a CPU demo).
//! - [`Discriminator`]: images in [0, 1] -> one logit each. The seed's sigmoid is applied by the
//!   loss (see the trainer), so the same network serves logit losses too.
//! - [`Generator`]: noise -> images in [0, 1].
//!
//! Burn's BatchNorm mode follows the backend: on an autodiff backend it trains (batch statistics,
//! running-stat updates). Call `model.valid()` for sampling and evaluation.

pub mod config;
pub mod cpu;
pub mod discriminator;
pub mod generator;
pub mod layers;

pub use config::ModelConfig;
pub use discriminator::Discriminator;
pub use generator::Generator;

use burn::module::Module;
use burn::tensor::backend::Backend;

/// Parameter counts as Keras reports them: `total` includes BatchNorm moving mean/variance,
/// `trainable` does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamCounts {
    pub total: usize,
    pub trainable: usize,
}

/// Keras-style counts from Burn's `num_params` (which, like Keras' total, includes BatchNorm
/// running mean and variance)
/// and the channel counts of the BatchNorm layers.
fn keras_counts(total: usize, norm_channels: impl Iterator<Item = usize>) -> ParamCounts {
    let stats: usize = norm_channels.map(|c| 2 * c).sum();
    ParamCounts {
        total,
        trainable: total - stats,
    }
}

impl<B: Backend> Discriminator<B> {
    pub fn param_counts(&self) -> ParamCounts {
        let norms = self.blocks.iter().filter_map(|b| b.norm.as_ref());
        keras_counts(self.num_params(), norms.map(|n| n.channels()))
    }
}

impl<B: Backend> Generator<B> {
    pub fn param_counts(&self) -> ParamCounts {
        let norms = self.blocks.iter().filter_map(|b| b.norm.as_ref());
        keras_counts(self.num_params(), norms.map(|n| n.channels()))
    }
}
