//! The discriminator: stride-2 3x3 convolutions (Dropout, optional BatchNorm, LeakyReLU each),
//! optionally followed by `block_convs` stride-1 ones per resolution step (each added to its
//! input when `residual` is set), then an optional
//! minibatch-stddev channel, then Flatten -> Dropout -> LeakyReLU -> Linear -> one logit per
//! image. With `spectral_norm`, every weight is divided by its largest singular value.
//! For the seed preset: 3->32->64->128->128 channels, 96x80 -> 6x5, 3840 features. A
//! progressive model ([`crate::grow`]) also has a 1x1 RGB input before every resolution step but
//! the first, and [`Discriminator::forward_at`] runs its last steps only on smaller images.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::tensor::{backend::Backend, Tensor};

use crate::grow::Level;
use crate::layers::{
    conv1x1, conv3x3, dense, leaky_relu, minibatch_stddev, BatchNorm2d, SpectralNorm,
};
use crate::ops;
use crate::ModelConfig;

/// One D convolution: conv (stride 2 first in each resolution step, then stride 1), dropout,
/// optional BatchNorm, LeakyReLU; `sn` holds the spectral-norm state when that is on.
#[derive(Module, Debug)]
pub struct DiscriminatorBlock<B: Backend> {
    pub conv: Conv2d<B>,
    pub norm: Option<BatchNorm2d<B>>,
    pub sn: Option<SpectralNorm<B>>,
}

impl<B: Backend> DiscriminatorBlock<B> {
    fn new(
        cin: usize,
        cout: usize,
        stride: usize,
        bn: bool,
        cfg: &ModelConfig,
        device: &B::Device,
    ) -> Self {
        DiscriminatorBlock {
            conv: conv3x3(cin, cout, stride, cfg.padding, device),
            norm: bn.then(|| BatchNorm2d::new(cout, cfg.bn_momentum, cfg.bn_epsilon, device)),
            sn: cfg.spectral_norm.then(|| SpectralNorm::new(cout, device)),
        }
    }

    fn conv(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        match &self.sn {
            None => ops::conv2d(&self.conv, x),
            Some(sn) => ops::conv2d_weighted(&self.conv, sn.normalize(self.conv.weight.val()), x),
        }
    }
}

#[derive(Module, Debug)]
pub struct Discriminator<B: Backend> {
    /// Every convolution in order (`block_convs + 1` per resolution step).
    pub blocks: Vec<DiscriminatorBlock<B>>,
    pub dropout: Dropout,
    pub head: Linear<B>,
    pub head_sn: Option<SpectralNorm<B>>,
    pub slope: f64,
    pub mbstd_group: usize,
    pub residual: bool,
    /// Progressive growing's RGB inputs: `from_rgb[s - 1]` feeds resolution step `s` when the
    /// images enter there (every step but the first; 1x1 conv, then LeakyReLU; no spectral
    /// norm). Empty unless the model is progressive.
    pub from_rgb: Vec<Conv2d<B>>,
}

impl<B: Backend> Discriminator<B> {
    pub fn new(cfg: &ModelConfig, device: &B::Device) -> Self {
        let mut cin = 3;
        let mut blocks = Vec::new();
        for (&cout, &bn) in cfg.d_channels.iter().zip(&cfg.d_batchnorm) {
            blocks.push(DiscriminatorBlock::new(cin, cout, 2, bn, cfg, device));
            for _ in 0..cfg.block_convs {
                blocks.push(DiscriminatorBlock::new(cout, cout, 1, bn, cfg, device));
            }
            cin = cout;
        }
        let (bh, bw) = cfg.bottom_size();
        let features = (cin + usize::from(cfg.mbstd_group > 0)) * bh * bw;
        let head = dense(features, 1, true, device);
        let head_sn = cfg
            .spectral_norm
            .then(|| SpectralNorm::new(features, device));
        // Drawn last, so a progressive model's other layers start as the plain model's do.
        let steps = cfg.d_channels.len();
        let from_rgb = match cfg.progressive {
            true => cfg.d_channels[..steps - 1]
                .iter()
                .map(|&c| conv1x1(3, c, device))
                .collect(),
            false => Vec::new(),
        };
        Discriminator {
            blocks,
            dropout: DropoutConfig::new(cfg.d_dropout).init(),
            head,
            head_sn,
            slope: cfg.leaky_slope,
            mbstd_group: cfg.mbstd_group,
            residual: cfg.residual,
            from_rgb,
        }
    }

    /// A copy for a pass that only G learns from (the simultaneous step's G loss): its
    /// parameters are not tracked, so no weight gradients are computed (gradients still flow
    /// to the input), and its BatchNorm layers leave the running statistics as they are.
    pub fn frozen(&self) -> Self {
        let mut d = self.clone().no_grad();
        for block in &mut d.blocks {
            if let Some(norm) = &mut block.norm {
                norm.momentum = 0.0;
            }
        }
        d
    }

    /// The activations after each block (its convolution, norm and LeakyReLU) for `images`
    /// in [0, 1]: the features `facegan project` compares a reconstruction with its target on.
    pub fn block_features(&self, images: Tensor<B, 4>) -> Vec<Tensor<B, 4>> {
        let mut x = images;
        let mut out = Vec::with_capacity(self.blocks.len());
        for block in &self.blocks {
            x = self.block_forward(block, x);
            out.push(x.clone());
        }
        out
    }

    fn block_forward(&self, block: &DiscriminatorBlock<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let y = ops::dropout(&self.dropout, block.conv(x.clone()));
        let y = match &block.norm {
            Some(norm) => norm.forward_act(y, Some(self.slope)),
            None => leaky_relu(y, self.slope),
        };
        // A stride-1 block keeps the shape: with `residual` it adds to its input.
        if self.residual && block.conv.stride == [1, 1] {
            x + y
        } else {
            y
        }
    }

    /// `images` in [0, 1], `[N, 3, H, W]` -> logits `[N, 1]`.
    pub fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        let mut x = images;
        for block in &self.blocks {
            x = self.block_forward(block, x);
        }
        self.head_forward(x)
    }

    /// Resolution steps (each starts with a stride-2 convolution).
    pub fn steps(&self) -> usize {
        self.blocks
            .iter()
            .filter(|b| b.conv.stride == [2, 2])
            .count()
    }

    /// Convolutions per resolution step (`block_convs + 1`).
    fn per_step(&self) -> usize {
        self.blocks.len() / self.steps()
    }

    /// Whether the network has progressive growing's RGB inputs.
    pub fn grows(&self) -> bool {
        !self.from_rgb.is_empty()
    }

    /// `images` at `level`'s size -> logits: the last `level.steps` resolution steps, entered
    /// through that step's RGB input; while the first of them fades in, its output is blended
    /// with the images downsampled (2x2 mean) through the next step's RGB input.
    /// `level` must suit the network ([`Level::validate`]).
    pub fn forward_at(&self, images: Tensor<B, 4>, level: Level) -> Tensor<B, 2> {
        let n = self.steps();
        assert!(
            (1..=n).contains(&level.steps) && (level.steps == n || self.grows()),
            "level {level:?} does not suit this discriminator"
        );
        if level.steps == n && !level.fading() {
            return self.forward(images);
        }
        let first = n - level.steps;
        let mut x = self.step_forward(first, self.enter(first, images.clone()));
        if level.fading() {
            let a = f64::from(level.alpha);
            let smaller =
                burn::tensor::module::avg_pool2d(images, [2, 2], [2, 2], [0, 0], true, false);
            let previous = self.enter(first + 1, smaller);
            x = x.mul_scalar(a) + previous.mul_scalar(1.0 - a);
        }
        for s in first + 1..n {
            x = self.step_forward(s, x);
        }
        self.head_forward(x)
    }

    /// The input of resolution step `s` from images at its size: the images themselves for
    /// the first step, else its RGB input and LeakyReLU.
    fn enter(&self, s: usize, images: Tensor<B, 4>) -> Tensor<B, 4> {
        match s {
            0 => images,
            _ => leaky_relu(ops::conv2d(&self.from_rgb[s - 1], images), self.slope),
        }
    }

    /// Resolution step `s`'s convolutions.
    fn step_forward(&self, s: usize, mut x: Tensor<B, 4>) -> Tensor<B, 4> {
        let per_step = self.per_step();
        for block in &self.blocks[s * per_step..(s + 1) * per_step] {
            x = self.block_forward(block, x);
        }
        x
    }

    /// Minibatch stddev (if on), flatten, dropout, LeakyReLU, the dense layer: `[N, 1]` logits.
    fn head_forward(&self, mut x: Tensor<B, 4>) -> Tensor<B, 2> {
        if self.mbstd_group > 0 {
            x = minibatch_stddev(x, self.mbstd_group);
        }
        let x: Tensor<B, 2> = x.flatten(1, 3);
        let x = leaky_relu(ops::dropout(&self.dropout, x), self.slope);
        // A plain matmul rather than Burn's fused `linear` op: same values, and its backward
        // is itself differentiable, which the R1 penalty needs (Burn 0.21 panics with "Can't
        // differentiate linear_x_backward").
        let weight = match &self.head_sn {
            None => self.head.weight.val(),
            Some(sn) => sn.normalize(self.head.weight.val()),
        };
        let y = x.matmul(weight);
        match &self.head.bias {
            Some(b) => y + b.val().unsqueeze_dim(0),
            None => y,
        }
    }
}
