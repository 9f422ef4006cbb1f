//! The Inception-v3 of pytorch-fid (`pytorch_fid.inception.InceptionV3` with
//! `use_fid_inception=True`), as Burn modules whose field names are the PyTorch state dict's
//! keys (`Mixed_5b.branch1x1.conv.weight`), so pytorch-fid's weight file loads as it is.
//!
//! It is torchvision's Inception-v3 with the blocks pytorch-fid swaps in to match TensorFlow's
//! 2015 graph: `FIDInceptionA`, `FIDInceptionC` and `FIDInceptionE_1` average-pool without
//! counting the padding, and `FIDInceptionE_2` max-pools instead. Every convolution is
//! `BasicConv2d`: a convolution without bias, BatchNorm (eps 0.001, running statistics) and
//! ReLU. The output is the 2048-d average-pooled activation of the last block (pytorch-fid's
//! block 3), the features FID is computed on.

#![allow(non_snake_case)] // the fields are PyTorch's keys

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::tensor::backend::Backend;
use burn::tensor::module::{avg_pool2d, max_pool2d};
use burn::tensor::Tensor;

/// The width of the features.
pub const FEATURES: usize = 2048;

/// Convolution (no bias), BatchNorm with eps 0.001, ReLU: torchvision's `BasicConv2d`. After
/// [`BasicConv2d::fuse`] the BatchNorm is folded into the convolution's weights and a bias
/// (the same function, one op less, and the form the CPU fast path takes).
#[derive(Module, Debug)]
pub struct BasicConv2d<B: Backend> {
    pub conv: Conv2d<B>,
    pub bn: BatchNorm<B>,
    /// The BatchNorm is folded into `conv` (not a weight).
    #[module(skip)]
    pub fused: bool,
}

impl<B: Backend> BasicConv2d<B> {
    /// `channels` [in, out], a `kernel` [h, w], a stride and `padding` [h, w].
    pub fn new(
        device: &B::Device,
        channels: [usize; 2],
        kernel: [usize; 2],
        stride: usize,
        padding: [usize; 2],
    ) -> Self {
        let conv = Conv2dConfig::new(channels, kernel)
            .with_stride([stride, stride])
            .with_padding(PaddingConfig2d::Explicit(
                padding[0], padding[1], padding[0], padding[1],
            ))
            .with_bias(false)
            .init(device);
        let bn = BatchNormConfig::new(channels[1])
            .with_epsilon(1e-3)
            .init(device);
        Self {
            conv,
            bn,
            fused: false,
        }
    }

    /// Folds the BatchNorm (running statistics) into the convolution: `w' = w * g`, `b' = beta
    /// - mean * g` with `g = gamma / sqrt(var + eps)`.
    pub fn fuse(mut self) -> Self {
        if self.fused {
            return self;
        }
        let g = self.bn.gamma.val().div(
            self.bn
                .running_var
                .value()
                .add_scalar(self.bn.epsilon)
                .sqrt(),
        );
        let out = g.dims()[0];
        let w = self.conv.weight.val();
        let w = w.mul(g.clone().reshape([out, 1, 1, 1]));
        let mut b = self.bn.beta.val().sub(self.bn.running_mean.value().mul(g));
        if let Some(bias) = &self.conv.bias {
            b = b.add(bias.val());
        }
        self.conv.weight = burn::module::Param::from_tensor(w);
        self.conv.bias = Some(burn::module::Param::from_tensor(b));
        self.fused = true;
        self
    }

    /// A square kernel `k` with stride and padding.
    pub fn square(
        device: &B::Device,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        pad: usize,
    ) -> Self {
        Self::new(device, [cin, cout], [k, k], stride, [pad, pad])
    }

    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let x = facegan_model::ops::conv2d(&self.conv, x);
        let x = if self.fused { x } else { self.bn.forward(x) };
        burn::tensor::activation::relu(x)
    }
}

/// Folds the BatchNorm of each listed [`BasicConv2d`] field of `$s` into its convolution.
macro_rules! fuse_fields {
    ($s:ident: $($f:ident),*) => {{
        let mut s = $s;
        $( s.$f = s.$f.fuse(); )*
        s
    }};
}

/// 3x3 average pooling, stride 1, padding 1, the padding not counted (TensorFlow's, and
/// pytorch-fid's `count_include_pad=False`).
fn avg_pool_3x3<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    avg_pool2d(x, [3, 3], [1, 1], [1, 1], false, false)
}

fn max_pool_3x3_s2<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    max_pool2d(x, [3, 3], [2, 2], [0, 0], [1, 1], false)
}

/// `FIDInceptionA` (Mixed_5b/c/d).
#[derive(Module, Debug)]
pub struct InceptionA<B: Backend> {
    pub branch1x1: BasicConv2d<B>,
    pub branch5x5_1: BasicConv2d<B>,
    pub branch5x5_2: BasicConv2d<B>,
    pub branch3x3dbl_1: BasicConv2d<B>,
    pub branch3x3dbl_2: BasicConv2d<B>,
    pub branch3x3dbl_3: BasicConv2d<B>,
    pub branch_pool: BasicConv2d<B>,
}

impl<B: Backend> InceptionA<B> {
    /// Every convolution with its BatchNorm folded in (see [`BasicConv2d::fuse`]).
    pub fn fuse(self) -> Self {
        fuse_fields!(self: branch1x1, branch5x5_1, branch5x5_2, branch3x3dbl_1, branch3x3dbl_2, branch3x3dbl_3, branch_pool)
    }

    pub fn new(device: &B::Device, cin: usize, pool_features: usize) -> Self {
        let c = |i, o, k, p| BasicConv2d::square(device, i, o, k, 1, p);
        Self {
            branch1x1: c(cin, 64, 1, 0),
            branch5x5_1: c(cin, 48, 1, 0),
            branch5x5_2: c(48, 64, 5, 2),
            branch3x3dbl_1: c(cin, 64, 1, 0),
            branch3x3dbl_2: c(64, 96, 3, 1),
            branch3x3dbl_3: c(96, 96, 3, 1),
            branch_pool: c(cin, pool_features, 1, 0),
        }
    }

    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let b1 = self.branch1x1.forward(x.clone());
        let b5 = self
            .branch5x5_2
            .forward(self.branch5x5_1.forward(x.clone()));
        let b3 = self.branch3x3dbl_3.forward(
            self.branch3x3dbl_2
                .forward(self.branch3x3dbl_1.forward(x.clone())),
        );
        let bp = self.branch_pool.forward(avg_pool_3x3(x));
        Tensor::cat(vec![b1, b5, b3, bp], 1)
    }
}

/// torchvision's `InceptionB` (Mixed_6a: the grid 35 -> 17).
#[derive(Module, Debug)]
pub struct InceptionB<B: Backend> {
    pub branch3x3: BasicConv2d<B>,
    pub branch3x3dbl_1: BasicConv2d<B>,
    pub branch3x3dbl_2: BasicConv2d<B>,
    pub branch3x3dbl_3: BasicConv2d<B>,
}

impl<B: Backend> InceptionB<B> {
    /// Every convolution with its BatchNorm folded in (see [`BasicConv2d::fuse`]).
    pub fn fuse(self) -> Self {
        fuse_fields!(self: branch3x3, branch3x3dbl_1, branch3x3dbl_2, branch3x3dbl_3)
    }

    pub fn new(device: &B::Device, cin: usize) -> Self {
        Self {
            branch3x3: BasicConv2d::square(device, cin, 384, 3, 2, 0),
            branch3x3dbl_1: BasicConv2d::square(device, cin, 64, 1, 1, 0),
            branch3x3dbl_2: BasicConv2d::square(device, 64, 96, 3, 1, 1),
            branch3x3dbl_3: BasicConv2d::square(device, 96, 96, 3, 2, 0),
        }
    }

    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let b3 = self.branch3x3.forward(x.clone());
        let bd = self.branch3x3dbl_3.forward(
            self.branch3x3dbl_2
                .forward(self.branch3x3dbl_1.forward(x.clone())),
        );
        let bp = max_pool_3x3_s2(x);
        Tensor::cat(vec![b3, bd, bp], 1)
    }
}

/// `FIDInceptionC` (Mixed_6b/c/d/e): factorised 7x7 convolutions.
#[derive(Module, Debug)]
pub struct InceptionC<B: Backend> {
    pub branch1x1: BasicConv2d<B>,
    pub branch7x7_1: BasicConv2d<B>,
    pub branch7x7_2: BasicConv2d<B>,
    pub branch7x7_3: BasicConv2d<B>,
    pub branch7x7dbl_1: BasicConv2d<B>,
    pub branch7x7dbl_2: BasicConv2d<B>,
    pub branch7x7dbl_3: BasicConv2d<B>,
    pub branch7x7dbl_4: BasicConv2d<B>,
    pub branch7x7dbl_5: BasicConv2d<B>,
    pub branch_pool: BasicConv2d<B>,
}

impl<B: Backend> InceptionC<B> {
    /// Every convolution with its BatchNorm folded in (see [`BasicConv2d::fuse`]).
    pub fn fuse(self) -> Self {
        fuse_fields!(self: branch1x1, branch7x7_1, branch7x7_2, branch7x7_3, branch7x7dbl_1, branch7x7dbl_2, branch7x7dbl_3, branch7x7dbl_4, branch7x7dbl_5, branch_pool)
    }

    pub fn new(device: &B::Device, cin: usize, c7: usize) -> Self {
        let k1x7 = |i, o| BasicConv2d::new(device, [i, o], [1, 7], 1, [0, 3]);
        let k7x1 = |i, o| BasicConv2d::new(device, [i, o], [7, 1], 1, [3, 0]);
        let k1 = |i, o| BasicConv2d::square(device, i, o, 1, 1, 0);
        Self {
            branch1x1: k1(cin, 192),
            branch7x7_1: k1(cin, c7),
            branch7x7_2: k1x7(c7, c7),
            branch7x7_3: k7x1(c7, 192),
            branch7x7dbl_1: k1(cin, c7),
            branch7x7dbl_2: k7x1(c7, c7),
            branch7x7dbl_3: k1x7(c7, c7),
            branch7x7dbl_4: k7x1(c7, c7),
            branch7x7dbl_5: k1x7(c7, 192),
            branch_pool: k1(cin, 192),
        }
    }

    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let b1 = self.branch1x1.forward(x.clone());
        let b7 = self.branch7x7_3.forward(
            self.branch7x7_2
                .forward(self.branch7x7_1.forward(x.clone())),
        );
        let mut bd = self.branch7x7dbl_1.forward(x.clone());
        for conv in [
            &self.branch7x7dbl_2,
            &self.branch7x7dbl_3,
            &self.branch7x7dbl_4,
            &self.branch7x7dbl_5,
        ] {
            bd = conv.forward(bd);
        }
        let bp = self.branch_pool.forward(avg_pool_3x3(x));
        Tensor::cat(vec![b1, b7, bd, bp], 1)
    }
}

/// torchvision's `InceptionD` (Mixed_7a: the grid 17 -> 8).
#[derive(Module, Debug)]
pub struct InceptionD<B: Backend> {
    pub branch3x3_1: BasicConv2d<B>,
    pub branch3x3_2: BasicConv2d<B>,
    pub branch7x7x3_1: BasicConv2d<B>,
    pub branch7x7x3_2: BasicConv2d<B>,
    pub branch7x7x3_3: BasicConv2d<B>,
    pub branch7x7x3_4: BasicConv2d<B>,
}

impl<B: Backend> InceptionD<B> {
    /// Every convolution with its BatchNorm folded in (see [`BasicConv2d::fuse`]).
    pub fn fuse(self) -> Self {
        fuse_fields!(self: branch3x3_1, branch3x3_2, branch7x7x3_1, branch7x7x3_2, branch7x7x3_3, branch7x7x3_4)
    }

    pub fn new(device: &B::Device, cin: usize) -> Self {
        Self {
            branch3x3_1: BasicConv2d::square(device, cin, 192, 1, 1, 0),
            branch3x3_2: BasicConv2d::square(device, 192, 320, 3, 2, 0),
            branch7x7x3_1: BasicConv2d::square(device, cin, 192, 1, 1, 0),
            branch7x7x3_2: BasicConv2d::new(device, [192, 192], [1, 7], 1, [0, 3]),
            branch7x7x3_3: BasicConv2d::new(device, [192, 192], [7, 1], 1, [3, 0]),
            branch7x7x3_4: BasicConv2d::square(device, 192, 192, 3, 2, 0),
        }
    }

    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let b3 = self
            .branch3x3_2
            .forward(self.branch3x3_1.forward(x.clone()));
        let mut b7 = self.branch7x7x3_1.forward(x.clone());
        for conv in [
            &self.branch7x7x3_2,
            &self.branch7x7x3_3,
            &self.branch7x7x3_4,
        ] {
            b7 = conv.forward(b7);
        }
        let bp = max_pool_3x3_s2(x);
        Tensor::cat(vec![b3, b7, bp], 1)
    }
}

/// How an `InceptionE` block pools its fourth branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolE {
    /// `FIDInceptionE_1` (Mixed_7b): 3x3 average, padding not counted.
    Average,
    /// `FIDInceptionE_2` (Mixed_7c): 3x3 max, stride 1, padding 1 (TensorFlow's graph has a
    /// max pool here, torchvision's block an average).
    Max,
}

/// `FIDInceptionE_1` / `FIDInceptionE_2` (Mixed_7b/c): the expanded 3x3 branches.
#[derive(Module, Debug)]
pub struct InceptionE<B: Backend> {
    pub branch1x1: BasicConv2d<B>,
    pub branch3x3_1: BasicConv2d<B>,
    pub branch3x3_2a: BasicConv2d<B>,
    pub branch3x3_2b: BasicConv2d<B>,
    pub branch3x3dbl_1: BasicConv2d<B>,
    pub branch3x3dbl_2: BasicConv2d<B>,
    pub branch3x3dbl_3a: BasicConv2d<B>,
    pub branch3x3dbl_3b: BasicConv2d<B>,
    pub branch_pool: BasicConv2d<B>,
    /// Max for Mixed_7c (not a weight).
    #[module(skip)]
    pub max_pool: bool,
}

impl<B: Backend> InceptionE<B> {
    /// Every convolution with its BatchNorm folded in (see [`BasicConv2d::fuse`]).
    pub fn fuse(self) -> Self {
        fuse_fields!(self: branch1x1, branch3x3_1, branch3x3_2a, branch3x3_2b, branch3x3dbl_1, branch3x3dbl_2, branch3x3dbl_3a, branch3x3dbl_3b, branch_pool)
    }

    pub fn new(device: &B::Device, cin: usize, pool: PoolE) -> Self {
        let k1x3 = |i, o| BasicConv2d::new(device, [i, o], [1, 3], 1, [0, 1]);
        let k3x1 = |i, o| BasicConv2d::new(device, [i, o], [3, 1], 1, [1, 0]);
        Self {
            branch1x1: BasicConv2d::square(device, cin, 320, 1, 1, 0),
            branch3x3_1: BasicConv2d::square(device, cin, 384, 1, 1, 0),
            branch3x3_2a: k1x3(384, 384),
            branch3x3_2b: k3x1(384, 384),
            branch3x3dbl_1: BasicConv2d::square(device, cin, 448, 1, 1, 0),
            branch3x3dbl_2: BasicConv2d::square(device, 448, 384, 3, 1, 1),
            branch3x3dbl_3a: k1x3(384, 384),
            branch3x3dbl_3b: k3x1(384, 384),
            branch_pool: BasicConv2d::square(device, cin, 192, 1, 1, 0),
            max_pool: pool == PoolE::Max,
        }
    }

    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let b1 = self.branch1x1.forward(x.clone());
        let b3 = self.branch3x3_1.forward(x.clone());
        let b3 = Tensor::cat(
            vec![
                self.branch3x3_2a.forward(b3.clone()),
                self.branch3x3_2b.forward(b3),
            ],
            1,
        );
        let bd = self
            .branch3x3dbl_2
            .forward(self.branch3x3dbl_1.forward(x.clone()));
        let bd = Tensor::cat(
            vec![
                self.branch3x3dbl_3a.forward(bd.clone()),
                self.branch3x3dbl_3b.forward(bd),
            ],
            1,
        );
        let pooled = if self.max_pool {
            max_pool2d(x, [3, 3], [1, 1], [1, 1], [1, 1], false)
        } else {
            avg_pool_3x3(x)
        };
        let bp = self.branch_pool.forward(pooled);
        Tensor::cat(vec![b1, b3, bd, bp], 1)
    }
}

/// pytorch-fid's `InceptionV3` up to its block 3 (the 2048-d pool features).
#[derive(Module, Debug)]
pub struct FidInception<B: Backend> {
    pub Conv2d_1a_3x3: BasicConv2d<B>,
    pub Conv2d_2a_3x3: BasicConv2d<B>,
    pub Conv2d_2b_3x3: BasicConv2d<B>,
    pub Conv2d_3b_1x1: BasicConv2d<B>,
    pub Conv2d_4a_3x3: BasicConv2d<B>,
    pub Mixed_5b: InceptionA<B>,
    pub Mixed_5c: InceptionA<B>,
    pub Mixed_5d: InceptionA<B>,
    pub Mixed_6a: InceptionB<B>,
    pub Mixed_6b: InceptionC<B>,
    pub Mixed_6c: InceptionC<B>,
    pub Mixed_6d: InceptionC<B>,
    pub Mixed_6e: InceptionC<B>,
    pub Mixed_7a: InceptionD<B>,
    pub Mixed_7b: InceptionE<B>,
    pub Mixed_7c: InceptionE<B>,
}

impl<B: Backend> FidInception<B> {
    /// Every convolution with its BatchNorm folded in (see [`BasicConv2d::fuse`]): the form
    /// [`crate::weights::load`] returns.
    pub fn fuse(self) -> Self {
        fuse_fields!(self: Conv2d_1a_3x3, Conv2d_2a_3x3, Conv2d_2b_3x3, Conv2d_3b_1x1, Conv2d_4a_3x3, Mixed_5b, Mixed_5c, Mixed_5d, Mixed_6a, Mixed_6b, Mixed_6c, Mixed_6d, Mixed_6e, Mixed_7a, Mixed_7b, Mixed_7c)
    }

    /// The network with Burn's initial weights (load the real ones with
    /// [`crate::weights::load`]).
    pub fn new(device: &B::Device) -> Self {
        Self {
            Conv2d_1a_3x3: BasicConv2d::square(device, 3, 32, 3, 2, 0),
            Conv2d_2a_3x3: BasicConv2d::square(device, 32, 32, 3, 1, 0),
            Conv2d_2b_3x3: BasicConv2d::square(device, 32, 64, 3, 1, 1),
            Conv2d_3b_1x1: BasicConv2d::square(device, 64, 80, 1, 1, 0),
            Conv2d_4a_3x3: BasicConv2d::square(device, 80, 192, 3, 1, 0),
            Mixed_5b: InceptionA::new(device, 192, 32),
            Mixed_5c: InceptionA::new(device, 256, 64),
            Mixed_5d: InceptionA::new(device, 288, 64),
            Mixed_6a: InceptionB::new(device, 288),
            Mixed_6b: InceptionC::new(device, 768, 128),
            Mixed_6c: InceptionC::new(device, 768, 160),
            Mixed_6d: InceptionC::new(device, 768, 160),
            Mixed_6e: InceptionC::new(device, 768, 192),
            Mixed_7a: InceptionD::new(device, 768),
            Mixed_7b: InceptionE::new(device, 1280, PoolE::Average),
            Mixed_7c: InceptionE::new(device, 2048, PoolE::Max),
        }
    }

    /// The features of images already resized to 299x299 and scaled to [-1, 1]
    /// (`[N, 3, 299, 299]`, see [`crate::input`]): `[N, 2048]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        let x = self.Conv2d_1a_3x3.forward(x);
        let x = self.Conv2d_2a_3x3.forward(x);
        let x = self.Conv2d_2b_3x3.forward(x);
        let x = max_pool_3x3_s2(x);
        let x = self.Conv2d_3b_1x1.forward(x);
        let x = self.Conv2d_4a_3x3.forward(x);
        let x = max_pool_3x3_s2(x);
        let x = self.Mixed_5b.forward(x);
        let x = self.Mixed_5c.forward(x);
        let x = self.Mixed_5d.forward(x);
        let x = self.Mixed_6a.forward(x);
        let x = self.Mixed_6b.forward(x);
        let x = self.Mixed_6c.forward(x);
        let x = self.Mixed_6d.forward(x);
        let x = self.Mixed_6e.forward(x);
        let x = self.Mixed_7a.forward(x);
        let x = self.Mixed_7b.forward(x);
        let x = self.Mixed_7c.forward(x);
        let [n, c, _, _] = x.dims();
        x.mean_dim(3).mean_dim(2).reshape([n, c])
    }
}
