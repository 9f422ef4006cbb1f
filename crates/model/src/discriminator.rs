//! The discriminator: stride-2 3x3 convolutions (Dropout, optional BatchNorm, LeakyReLU each),
//! optionally followed by `block_convs` stride-1 ones per resolution step (each added to its
//! input when `residual` is set), then an optional
//! minibatch-stddev channel, then Flatten -> Dropout -> LeakyReLU -> Linear -> one logit per
//! image. With `spectral_norm`, every weight is divided by its largest singular value.
//! For the seed preset: 3->32->64->128->128 channels, 96x80 -> 6x5, 3840 features.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::tensor::{backend::Backend, Tensor};

use crate::layers::{conv3x3, dense, leaky_relu, minibatch_stddev, BatchNorm2d, SpectralNorm};
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
        Discriminator {
            blocks,
            dropout: DropoutConfig::new(cfg.d_dropout).init(),
            head: dense(features, 1, true, device),
            head_sn: cfg
                .spectral_norm
                .then(|| SpectralNorm::new(features, device)),
            slope: cfg.leaky_slope,
            mbstd_group: cfg.mbstd_group,
            residual: cfg.residual,
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
