//! Model presets as plain config values (serde/TOML): the `seed` preset reproduces the
//! tutorial's networks exactly; `tiny` is for tests; `demo` trains visibly in minutes on a CPU;
//! `faces48` is the measured CPU recipe and `faces96` its 96x80 version; `seed48` / `celeba48` are the seed and the earlier recipe at 48x40,
//! the baselines of `docs/results.md`.

use serde::{Deserialize, Serialize};

/// How G doubles its resolution at each step (see [`crate::layers::UpConv`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Upsample {
    /// 3x3 stride-2 transposed convolution (the seed's; uneven overlap, a checkerboard).
    #[default]
    Transposed3,
    /// 4x4 stride-2 transposed convolution (DCGAN's; even overlap).
    Transposed4,
    /// Nearest-neighbour x2, then a 3x3 convolution (no checkerboard by construction).
    Resize,
}

/// How the stride-2 3x3 layers pad (see [`crate::layers::conv3x3`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Padding {
    /// PyTorch's convention: 1 on every side (transposed: padding 1, output padding 1).
    #[default]
    Symmetric,
    /// Keras' `padding="same"` on an even size: 0 before, 1 after (bottom and right); the
    /// transposed convolution is that convolution's transpose (padding 0, its last row and
    /// column cropped). The tutorial's, so the `seed` presets'.
    Keras,
}

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
    /// Spectral normalization (one power iteration per training forward) on every D weight.
    #[serde(default)]
    pub spectral_norm: bool,
    /// Minibatch-stddev feature in D: group size (0 = off). Appends one channel, the mean
    /// standard deviation across each group of images, before D's dense layer.
    #[serde(default)]
    pub mbstd_group: usize,
    /// Extra stride-1 3x3 convolutions after each resolution step, in both networks (depth).
    #[serde(default)]
    pub block_convs: usize,
    /// G's upsampling layer: `transposed3` (the seed's), `transposed4` or `resize`.
    #[serde(default)]
    pub g_upsample: Upsample,
    /// Residual connections around the `block_convs` extra convolutions, in both networks:
    /// `x + f(x)` instead of `f(x)` (He et al. 2016), so depth adds refinement, not a longer path.
    #[serde(default)]
    pub residual: bool,
    /// Padding of the stride-2 3x3 convolutions and transposed convolutions: `symmetric`
    /// (PyTorch's, the default) or `keras` (the tutorial's "same": 0 before, 1 after).
    #[serde(default)]
    pub padding: Padding,
    /// Progressive growing's extra layers (see [`crate::grow`]): an RGB output (3x3 conv) after
    /// each of G's resolution steps but the last, and an RGB input (1x1 conv, LeakyReLU) before
    /// each of D's but the first, so training can run the networks at a fraction of the size
    /// and grow them. The full-size networks are the same as without it.
    #[serde(default)]
    pub progressive: bool,
    /// Output skips in G (MSG-GAN, Karras et al. 2020's StyleGAN2 "skip" generator): a 3x3 RGB
    /// conv after every resolution step, each step's RGB added to the previous sum upsampled x2
    /// (bilinear), the sigmoid taken of the total. Early in training the coarse steps' outputs
    /// carry the image, as in progressive growing, with no schedule.
    #[serde(default)]
    pub g_skip: bool,
    /// Skip-layer excitation in G (FastGAN, Liu et al. 2021): the output of every step from the
    /// third on is multiplied channel-wise by gates computed from the feature map three steps
    /// (8x) coarser: that map average-pooled to 4x4, a dense layer, Swish, a dense layer, a
    /// sigmoid. A short gradient path from the high-resolution layers to the coarse ones, at
    /// almost no compute. Needs at least 3 resolution steps.
    #[serde(default)]
    pub g_sle: bool,
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
            spectral_norm: false,
            mbstd_group: 0,
            block_convs: 0,
            g_upsample: Upsample::Transposed3,
            residual: false,
            padding: Padding::Keras,
            progressive: false,
            g_skip: false,
            g_sle: false,
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

    /// The demo's model: `faces48`'s (resize-convolution G, DCGAN-style D), so `make demo` shows
    /// the recipe that draws faces on a CPU.
    pub fn demo() -> Self {
        Self::faces48()
    }

    /// The seed's networks at the CPU protocol's 48x40 (one resolution step less, the seed's
    /// widths from the bottom): the baseline of the CPU comparison in `docs/results.md`.
    pub fn seed48() -> Self {
        ModelConfig {
            height: 48,
            width: 40,
            d_channels: vec![32, 64, 128],
            d_batchnorm: vec![true, true, false],
            g_channels: vec![256, 128, 64],
            g_batchnorm: vec![true, true, false],
            ..Self::seed()
        }
    }

    /// The earlier CPU recipe at 48x40, now a baseline in `docs/results.md` (`faces48` scores
    /// lower): a D with spectral norm and a minibatch-stddev feature instead of BatchNorm and
    /// dropout (64..256), a G of 3x3 transposed convolutions (256@6x5 -> 256 -> 128 -> 64),
    /// LeakyReLU 0.2.
    pub fn celeba48() -> Self {
        ModelConfig {
            height: 48,
            width: 40,
            latent: 64,
            d_channels: vec![64, 128, 256],
            d_batchnorm: vec![false; 3],
            d_dropout: 0.0,
            g_start_channels: 256,
            g_channels: vec![256, 128, 64],
            g_batchnorm: vec![true; 3],
            leaky_slope: 0.2,
            bn_momentum: 0.1,
            bn_epsilon: 1e-5,
            spectral_norm: true,
            mbstd_group: 4,
            block_convs: 0,
            g_upsample: Upsample::Transposed3,
            residual: false,
            padding: Padding::Symmetric,
            progressive: false,
            g_skip: false,
            g_sle: false,
        }
    }

    /// The CPU-tuned face model at 48x40 (`faces48`), chosen by the measured sweep in
    /// `docs/results.md`: a DCGAN-style D (64..256, BatchNorm after the first layer, no spectral
    /// norm, minibatch stddev) and a narrow G (256@6x5 -> 128 -> 64 -> 32) that upsamples by
    /// resize-convolution (no checkerboard). G is cheap, so a 2-core CPU shows it many images.
    pub fn faces48() -> Self {
        ModelConfig {
            height: 48,
            width: 40,
            latent: 64,
            d_channels: vec![64, 128, 256],
            d_batchnorm: vec![false, true, true],
            d_dropout: 0.0,
            g_start_channels: 256,
            g_channels: vec![128, 64, 32],
            g_batchnorm: vec![true; 3],
            leaky_slope: 0.2,
            bn_momentum: 0.1,
            bn_epsilon: 1e-5,
            spectral_norm: false,
            mbstd_group: 4,
            block_convs: 0,
            g_upsample: Upsample::Resize,
            residual: false,
            padding: Padding::Symmetric,
            progressive: false,
            g_skip: false,
            g_sle: false,
        }
    }

    /// `faces48`'s design at the seed's 96x80: one more resolution step on each side. About
    /// 47-50 img/s on 2 cores; measured on faces in docs/results-96x80.md.
    pub fn faces96() -> Self {
        ModelConfig {
            height: 96,
            width: 80,
            d_channels: vec![32, 64, 128, 256],
            d_batchnorm: vec![false, true, true, true],
            g_channels: vec![256, 128, 64, 32],
            g_batchnorm: vec![true; 4],
            ..Self::faces48()
        }
    }

    /// `faces96`'s networks with progressive growing's extra layers ([`crate::grow`]): the
    /// `grow96` preset trains them from a quarter of the size up to 96x80.
    pub fn grow96() -> Self {
        ModelConfig {
            progressive: true,
            ..Self::faces96()
        }
    }

    /// Looks up a preset by name.
    pub fn preset(name: &str) -> Option<Self> {
        match name {
            "seed" => Some(Self::seed()),
            "tiny" => Some(Self::tiny()),
            "demo" => Some(Self::demo()),
            "seed48" => Some(Self::seed48()),
            "celeba48" => Some(Self::celeba48()),
            "faces48" => Some(Self::faces48()),
            "faces96" => Some(Self::faces96()),
            "grow96" => Some(Self::grow96()),
            _ => None,
        }
    }

    pub const PRESETS: &'static [&'static str] = &[
        "seed", "tiny", "demo", "seed48", "faces48", "faces96", "grow96", "celeba48",
    ];

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
        if !(self.bn_momentum > 0.0 && self.bn_momentum <= 1.0) {
            return Err(format!(
                "bn_momentum must be in (0, 1] (got {})",
                self.bn_momentum
            ));
        }
        if !(self.bn_epsilon > 0.0 && self.bn_epsilon.is_finite()) {
            return Err(format!(
                "bn_epsilon must be a finite number > 0 (got {})",
                self.bn_epsilon
            ));
        }
        if !(self.leaky_slope >= 0.0 && self.leaky_slope < 1.0) {
            return Err(format!(
                "leaky_slope must be in [0, 1) (got {})",
                self.leaky_slope
            ));
        }
        if self.g_skip && self.progressive {
            return Err(
                "g_skip and progressive are two ways to use G's RGB outputs: pick one".into(),
            );
        }
        if self.g_sle && self.progressive {
            return Err(
                "g_sle and progressive cannot be combined: growing runs G's first steps \
                 alone, and the excitations join steps three apart"
                    .into(),
            );
        }
        if self.g_sle && self.g_channels.len() < crate::generator::EXCITATION_SPAN {
            return Err(format!(
                "g_sle needs at least {} resolution steps in G (got {})",
                crate::generator::EXCITATION_SPAN,
                self.g_channels.len()
            ));
        }
        if self.mbstd_group == 1 {
            return Err("mbstd_group must be 0 (off) or >= 2".into());
        }
        Ok(())
    }
}
