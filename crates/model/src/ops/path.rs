//! Which path an op call takes, and the record of it: the fast path runs on the CPU backends
//! (`Autodiff<Flex>` for training, `Flex` for inference) with f32 tensors unless
//! `FACEGAN_BURN_OPS=1` switches it off; every other call runs Burn's op, for a [`BurnReason`].
//! Per-thread counters record fast calls and fallbacks (guards that sent a CPU call to Burn),
//! and the first fallback of each op, and the switch, are reported on stderr.

use std::any::TypeId;
use std::cell::Cell;
use std::sync::{Mutex, OnceLock};

use burn::backend::Flex;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor};

use crate::cpu::Ad;

/// The CPU backend a fast op call runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CpuBackend {
    /// `Autodiff<Flex>`: kernels with custom backward passes.
    Train,
    /// `Flex`: forward kernels (convolutions only).
    Infer,
}

/// Why an op call runs Burn's op instead of the fast kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BurnReason {
    /// `FACEGAN_BURN_OPS=1` switched the fast path off.
    SwitchedOff,
    /// Not a CPU backend (CUDA, ...) or not an f32 tensor: Burn's op is the implementation.
    OtherBackend,
    /// The fast path has no kernel for this call, by design: a training-only op on `Flex`, or a
    /// dropout that keeps everything.
    NoKernel,
    /// A guard failed on a CPU backend: the shape or an option (named here) is not supported.
    /// The only reason counted by [`fallbacks`] and reported on stderr.
    Unsupported(&'static str),
}

/// Whether `FACEGAN_BURN_OPS=1` switched the fast path off (for A/B comparisons); said once on
/// stderr.
fn switched_off() -> bool {
    static OFF: OnceLock<bool> = OnceLock::new();
    *OFF.get_or_init(|| {
        let off = std::env::var("FACEGAN_BURN_OPS").is_ok_and(|v| v == "1");
        if off {
            eprintln!(
                "facegan: note: FACEGAN_BURN_OPS=1: the CPU fast path is off, every op runs Burn's"
            );
        }
        off
    })
}

/// The CPU backend `B` is, if it is one the fast path serves.
fn cpu_backend_of<B: Backend>() -> Option<CpuBackend> {
    let id = TypeId::of::<B>();
    if id == TypeId::of::<Ad>() {
        Some(CpuBackend::Train)
    } else if id == TypeId::of::<Flex>() {
        Some(CpuBackend::Infer)
    } else {
        None
    }
}

/// Whether op calls on backend `B` with f32 tensors take the fast kernels: `B` is
/// `Autodiff<Flex>` or `Flex`, and `FACEGAN_BURN_OPS=1` is not set. (Each op's guards may
/// still send a call to Burn's op; [`fallbacks`] counts those.)
pub fn fast_path_active<B: Backend>() -> bool {
    !switched_off() && cpu_backend_of::<B>().is_some()
}

/// The CPU backend a call on `x` may take the fast path on, or why it runs Burn's op.
pub(crate) fn cpu_backend<B: Backend, const D: usize>(
    x: &Tensor<B, D>,
) -> Result<CpuBackend, BurnReason> {
    if switched_off() {
        return Err(BurnReason::SwitchedOff);
    }
    match cpu_backend_of::<B>() {
        Some(backend) if x.dtype() == DType::F32 => Ok(backend),
        _ => Err(BurnReason::OtherBackend),
    }
}

/// Proof that a call runs on the CPU training backend (`Autodiff<Flex>`, f32), for the ops
/// whose kernels exist for training only.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Training(());

/// [`cpu_backend`], for the training-only ops.
pub(crate) fn training_backend<B: Backend, const D: usize>(
    x: &Tensor<B, D>,
) -> Result<Training, BurnReason> {
    match cpu_backend(x)? {
        CpuBackend::Train => Ok(Training(())),
        CpuBackend::Infer => Err(BurnReason::NoKernel),
    }
}

thread_local! {
    static FAST_CALLS: Cell<u64> = const { Cell::new(0) };
    static FALLBACKS: Cell<u64> = const { Cell::new(0) };
}

/// How many op calls made on this thread ran the fast kernels (a test asks this to know the
/// fast path really ran). Counted when the op is called, so on the thread that called it.
pub fn fast_path_calls() -> u64 {
    FAST_CALLS.with(Cell::get)
}

/// How many op calls made on this thread on the CPU backends fell back to Burn's op because a
/// guard failed (an unsupported shape or option); CUDA and other backends, `FACEGAN_BURN_OPS=1`
/// and ops without a kernel for the call never count.
pub fn fallbacks() -> u64 {
    FALLBACKS.with(Cell::get)
}

/// Counts an op call that runs the fast kernels.
pub(crate) fn count_fast() {
    FAST_CALLS.with(|c| c.set(c.get() + 1));
}

/// Records an op call that runs Burn's op: a failed guard ([`BurnReason::Unsupported`]) is
/// counted, and reported on stderr the first time for each op name.
pub(crate) fn note_fallback(op: &'static str, why: BurnReason) {
    let BurnReason::Unsupported(what) = why else {
        return;
    };
    FALLBACKS.with(|c| c.set(c.get() + 1));
    static SEEN: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if !seen.contains(&op) {
        seen.push(op);
        eprintln!(
            "facegan: note: {op} ran on Burn's op, not the CPU fast path (unsupported shape or option: {what})"
        );
    }
}
