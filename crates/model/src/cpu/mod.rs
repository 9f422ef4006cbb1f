//! The CPU fast path: the model's hot ops (convolution, transposed convolution, training
//! BatchNorm + LeakyReLU, LeakyReLU, dropout) as hand-written kernels ([`kernels`]) on Burn's
//! `flex` backend, each a custom autodiff op on `Autodiff<Flex>` with its own backward pass.
//!
//! Dispatch is by type at run time: [`ops`] functions are generic over any `Backend`; when `B` is
//! `Autodiff<Flex>` (training) or `Flex` (inference) and the tensors are f32 they take the fast
//! path, otherwise (CUDA, other dtypes) they call Burn's own ops, so every other backend behaves
//! exactly as before. The math is Burn's (tests compare values and gradients against Burn's ops).

mod autodiff;
pub mod kernels;
pub mod ops;

use std::any::{Any, TypeId};
use std::cell::Cell;

use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, Shape, Tensor, TensorData, TensorPrimitive};

/// The CPU training backend the fast path serves.
pub type Ad = Autodiff<Flex>;

/// Which implementation an op call takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Path {
    /// `Autodiff<Flex>`: fast kernels with custom backward passes.
    Train,
    /// `Flex`: fast forward kernels.
    Infer,
    /// Anything else: Burn's ops.
    Burn,
}

/// Whether the fast kernels are switched off (`FACEGAN_BURN_OPS=1`), for A/B comparisons.
fn disabled() -> bool {
    static OFF: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OFF.get_or_init(|| std::env::var("FACEGAN_BURN_OPS").is_ok_and(|v| v == "1"))
}

pub(crate) fn path<B: Backend, const D: usize>(x: &Tensor<B, D>) -> Path {
    if disabled() || x.dtype() != DType::F32 {
        return Path::Burn;
    }
    let id = TypeId::of::<B>();
    if id == TypeId::of::<Ad>() {
        Path::Train
    } else if id == TypeId::of::<Flex>() {
        Path::Infer
    } else {
        Path::Burn
    }
}

thread_local! {
    static FAST_CALLS: Cell<u64> = const { Cell::new(0) };
    static FALLBACKS: Cell<u64> = const { Cell::new(0) };
}

/// How many convolution calls made on this thread took the fast kernels (a test asks this to
/// know the fast path really ran).
pub fn fast_path_calls() -> u64 {
    FAST_CALLS.with(Cell::get)
}

/// How many op calls made on this thread on the CPU backends fell back to Burn's op because a
/// guard failed (an unsupported shape or option); CUDA and other backends never count.
pub fn fallbacks() -> u64 {
    FALLBACKS.with(Cell::get)
}

pub(crate) fn count_fast() {
    FAST_CALLS.with(|c| c.set(c.get() + 1));
}

/// Counts (and reports once per op name) a CPU-backend op that a guard sent to Burn's op.
pub(crate) fn note_fallback(p: Path, op: &'static str) {
    if p == Path::Burn {
        return;
    }
    FALLBACKS.with(|c| c.set(c.get() + 1));
    static SEEN: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if !seen.contains(&op) {
        seen.push(op);
        eprintln!("facegan: note: {op} ran on Burn's op, not the CPU fast path (unsupported shape or option)");
    }
}

/// Moves a value to the type it is known to have (checked at run time).
fn cast<A: 'static, T: 'static>(a: A) -> T {
    let mut slot = Some(a);
    (&mut slot as &mut dyn Any)
        .downcast_mut::<Option<T>>()
        .expect("fast path: backend type mismatch")
        .take()
        .expect("value present")
}

/// The autodiff primitive of a `Tensor<B, D>` whose `B` is [`Ad`].
pub(crate) fn ad_prim<B: Backend, const D: usize>(t: Tensor<B, D>) -> FloatTensor<Ad> {
    cast::<Tensor<B, D>, Tensor<Ad, D>>(t)
        .into_primitive()
        .tensor()
}

pub(crate) fn from_ad_prim<B: Backend, const D: usize>(p: FloatTensor<Ad>) -> Tensor<B, D> {
    cast(Tensor::<Ad, D>::from_primitive(TensorPrimitive::Float(p)))
}

/// The flex tensor of a `Tensor<B, D>` whose `B` is `Flex`.
pub(crate) fn flex_prim<B: Backend, const D: usize>(t: Tensor<B, D>) -> FlexTensor {
    cast::<Tensor<B, D>, Tensor<Flex, D>>(t)
        .into_primitive()
        .tensor()
}

pub(crate) fn from_flex_prim<B: Backend, const D: usize>(p: FlexTensor) -> Tensor<B, D> {
    cast(Tensor::<Flex, D>::from_primitive(TensorPrimitive::Float(p)))
}

/// A contiguous f32 view of a flex tensor (copies only when it is not contiguous).
pub(crate) fn contiguous(t: &FlexTensor) -> FlexTensor {
    t.to_contiguous()
}

pub(crate) fn data(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>()
        .expect("fast path: contiguous f32 tensor")
}

pub(crate) fn dims(t: &FlexTensor) -> Vec<usize> {
    t.layout().shape().to_vec()
}

/// A contiguous flex tensor from values and a shape.
pub(crate) fn tensor(values: Vec<f32>, shape: &[usize]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, Shape::from(shape.to_vec())))
}
