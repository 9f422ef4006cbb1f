//! The CPU fast path's kernels, for Burn's `flex` backend: the model's hot ops (convolution,
//! transposed convolution, training BatchNorm + LeakyReLU, LeakyReLU, dropout) as hand-written
//! f32 kernels on contiguous NCHW slices, and each as a custom autodiff op on `Autodiff<Flex>`
//! with its own backward pass. Which calls take them is decided by [`crate::ops`].
//!
//! - [`gemm`]: the one matrix product ([`gemm::gemm_into`] on strided views).
//! - [`geom`], [`im2col`]: a convolution's geometry, and its lowering to matrix products.
//! - [`batch`]: splitting a batch over threads with results that do not depend on them.
//! - [`conv`], [`conv_taps`], [`conv_transpose`], [`batchnorm`], [`activation`]: the kernels.
//! - [`autodiff`]: the kernels as autodiff ops; this file: flex tensor helpers.
//!
//! The math is Burn's (`tests/cpu_ops.rs` compares values and gradients against Burn's ops).

pub(crate) mod activation;
pub(crate) mod autodiff;
pub(crate) mod batch;
pub(crate) mod batchnorm;
pub(crate) mod conv;
pub(crate) mod conv_taps;
pub(crate) mod conv_transpose;
pub(crate) mod gemm;
pub(crate) mod geom;
pub(crate) mod im2col;

use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::tensor::{Shape, TensorData};

/// The CPU training backend the fast path serves (`Flex` is its inference backend).
pub(crate) type Ad = Autodiff<Flex>;

/// A contiguous f32 view of a flex tensor (copies only when it is not contiguous).
pub(crate) fn contiguous(t: &FlexTensor) -> FlexTensor {
    t.to_contiguous()
}

/// The values of a contiguous f32 flex tensor.
pub(crate) fn data(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>()
        .expect("fast path: contiguous f32 tensor")
}

/// The shape of a flex tensor.
pub(crate) fn dims(t: &FlexTensor) -> Vec<usize> {
    t.layout().shape().to_vec()
}

/// A contiguous flex tensor from values and a shape.
pub(crate) fn tensor(values: Vec<f32>, shape: &[usize]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, Shape::from(shape.to_vec())))
}
