//! Model presets as plain config values (serde/TOML): the `seed` preset reproduces the
//! tutorial's networks exactly; `tiny` is for tests; `demo` trains visibly in minutes on a CPU.

use serde::{Deserialize, Serialize};

/// Architecture of both networks. Image size and latent size live here, so a shard of another
/// size is refused before training starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Image height and width (must be divisible by 2^(number of D layers)).
    pub height: usize,
    pub width: usize,
    /// Size of the generator's input noise.
    pub latent: usize,
    /// Output channels of D's stride-2 convolutions, first to last.
    pub d_channels: Vec<usize>,
    /// Whether each of D's convolutions is followed by BatchNorm.
    pub d_batchnorm: Vec<bool>,
    /// Dropout probability after each D convolution and before D's dense layer.
    pub d_dropout: f64,
    /// Channels of the generator's first feature map (after the dense layer and reshape).
    pub g_start_channels: usize,
    /// Output channels of G's stride-2 transposed convolutions, first to last.
    pub g_channels: Vec<usize>,
    /// Whether each of G's transposed convolutions is followed by BatchNorm.
    pub g_batchnorm: Vec<bool>,
    /// LeakyReLU negative slope (the seed uses 0.01).
    pub leaky_slope: f64,
    /// BatchNorm momentum as Burn counts it: the weight of the new batch (Keras 0.99 -> 0.01).
    pub bn_momentum: f64,
    pub bn_epsilon: f64,
}

impl ModelConfig {
    /// The tutorial's networks (96x80, latent 64). D 245,057 / G 790,787 parameters as Keras counts.
    pub fn seed() -> Self {
        ModelConfig {
            height: 96,
            width: 80,
            latent: 64,
            d_channels: vec![32, 64, 128, 128],
            d_batchnorm: vec![true, true, false, false],
            d_dropout: 0.1,
            g_start_channels: 64,
            g_channels: vec![256, 128, 128, 64],
            g_batchnorm: vec![true, true, true, false],
            leaky_slope: 0.01,
            bn_momentum: 0.01,
            bn_epsilon: 1e-3,
        }
    }

    /// A very small model on 16x16 images, for tests.
    pub fn tiny() -> Self {
        ModelConfig {
            height: 16,
            width: 16,
            latent: 8,
            d_channels: vec![8, 16],
            d_batchnorm: vec![true, false],
            d_dropout: 0.1,
            g_start_channels: 16,
            g_channels: vec![16, 8],
            g_batchnorm: vec![true, false],
            ..Self::seed()
        }
    }

    /// The demo's model: the seed's shape at half resolution (48x40) with one block less,
    /// LeakyReLU 0.2 and faster BatchNorm statistics (momentum 0.1), so a 2-core CPU trains
    /// it visibly in minutes.
    pub fn demo() -> Self {
        ModelConfig {
            height: 48,
            width: 40,
            latent: 64,
            d_channels: vec![32, 64, 128],
            d_batchnorm: vec![true, true, false],
            g_start_channels: 64,
            g_channels: vec![128, 64, 32],
            g_batchnorm: vec![true, true, false],
            leaky_slope: 0.2,
            bn_momentum: 0.1,
            ..Self::seed()
        }
    }

    /// Looks up a preset by name.
    pub fn preset(name: &str) -> Option<Self> {
        match name {
            "seed" => Some(Self::seed()),
            "tiny" => Some(Self::tiny()),
            "demo" => Some(Self::demo()),
            _ => None,
        }
    }

    pub const PRESETS: &'static [&'static str] = &["seed", "tiny", "demo"];

    /// Spatial size of D's last feature map and of G's first one.
    pub fn bottom_size(&self) -> (usize, usize) {
        let f = 1 << self.d_channels.len();
        (self.height / f, self.width / f)
    }

    /// Checks internal consistency; the message says what to fix.
    pub fn validate(&self) -> Result<(), String> {
        if self.d_channels.is_empty() || self.g_channels.is_empty() {
            return Err("d_channels and g_channels must not be empty".into());
        }
        if self.d_channels.len() != self.d_batchnorm.len() {
            return Err("d_batchnorm must have one entry per d_channels entry".into());
        }
        if self.g_channels.len() != self.g_batchnorm.len() {
            return Err("g_batchnorm must have one entry per g_channels entry".into());
        }
        if self.d_channels.len() != self.g_channels.len() {
            return Err("D and G must have the same number of resolution steps".into());
        }
        let f = 1 << self.d_channels.len();
        if !self.height.is_multiple_of(f) || !self.width.is_multiple_of(f) {
            return Err(format!(
                "image size {}x{} must be divisible by {f} (2^layers)",
                self.height, self.width
            ));
        }
        if !(0.0..1.0).contains(&self.d_dropout) {
            return Err("d_dropout must be in [0, 1)".into());
        }
        if self.latent == 0 {
            return Err("latent must be > 0".into());
        }
        Ok(())
    }
}
