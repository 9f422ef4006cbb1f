//! The discriminator: stride-2 3x3 convolutions (Dropout, optional BatchNorm, LeakyReLU each),
//! then Flatten -> Dropout -> LeakyReLU -> Linear -> one logit per image.
//! For the seed preset: 3->32->64->128->128 channels, 96x80 -> 6x5, 3840 features.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::tensor::{backend::Backend, Tensor};

use crate::cpu::ops as cpu;
use crate::layers::{conv3x3, dense, leaky_relu, BatchNorm2d};
use crate::ModelConfig;

/// One D stage: conv, dropout, optional BatchNorm, LeakyReLU.
#[derive(Module, Debug)]
pub struct DiscriminatorBlock<B: Backend> {
    pub conv: Conv2d<B>,
    pub norm: Option<BatchNorm2d<B>>,
}

#[derive(Module, Debug)]
pub struct Discriminator<B: Backend> {
    pub blocks: Vec<DiscriminatorBlock<B>>,
    pub dropout: Dropout,
    pub head: Linear<B>,
    pub slope: f64,
}

impl<B: Backend> Discriminator<B> {
    pub fn new(cfg: &ModelConfig, device: &B::Device) -> Self {
        let mut cin = 3;
        let blocks = cfg
            .d_channels
            .iter()
            .zip(&cfg.d_batchnorm)
            .map(|(&cout, &bn)| {
                let block = DiscriminatorBlock {
                    conv: conv3x3(cin, cout, 2, device),
                    norm: bn
                        .then(|| BatchNorm2d::new(cout, cfg.bn_momentum, cfg.bn_epsilon, device)),
                };
                cin = cout;
                block
            })
            .collect();
        let (bh, bw) = cfg.bottom_size();
        Discriminator {
            blocks,
            dropout: DropoutConfig::new(cfg.d_dropout).init(),
            head: dense(cin * bh * bw, 1, true, device),
            slope: cfg.leaky_slope,
        }
    }

    /// `images` in [0, 1], `[N, 3, H, W]` -> logits `[N, 1]`.
    pub fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        let mut x = images;
        for block in &self.blocks {
            x = cpu::dropout(&self.dropout, cpu::conv2d(&block.conv, x));
            x = match &block.norm {
                Some(norm) => norm.forward_act(x, Some(self.slope)),
                None => leaky_relu(x, self.slope),
            };
        }
        let x: Tensor<B, 2> = x.flatten(1, 3);
        let x = leaky_relu(cpu::dropout(&self.dropout, x), self.slope);
        self.head.forward(x)
    }
}
