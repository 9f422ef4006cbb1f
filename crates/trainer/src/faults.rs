//! A test seam: faults a test injects into a training run, to check that the run reacts as it
//! should (the non-finite-loss guard, a failing device in a data-parallel run). Empty in normal
//! use; the CLI reads them once from `FACEGAN_INJECT_NAN_AT_STEP` and `FACEGAN_FAIL_DEVICE_AT`.

use anyhow::{bail, Result};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// Faults to inject, each at a global step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    /// Poison the real batch of this global step with NaN (`FACEGAN_INJECT_NAN_AT_STEP=N`).
    pub nan_at_step: Option<u64>,
    /// Peer K of a data-parallel run fails at global step S (`FACEGAN_FAIL_DEVICE_AT=K:S`).
    pub device_fails_at: Option<(usize, u64)>,
}

impl Faults {
    /// The faults the environment asks for (none when the variables are unset).
    pub fn from_env() -> Self {
        Faults {
            nan_at_step: std::env::var("FACEGAN_INJECT_NAN_AT_STEP")
                .ok()
                .and_then(|s| s.parse().ok()),
            device_fails_at: std::env::var("FACEGAN_FAIL_DEVICE_AT").ok().and_then(|s| {
                let (k, step) = s.split_once(':')?;
                Some((k.parse().ok()?, step.parse().ok()?))
            }),
        }
    }

    /// Applied to peer `peer`'s real batch before global step `step`: the batch as it is, or
    /// poisoned, or the peer's failure.
    pub(crate) fn before_step<B: Backend>(
        &self,
        real: Tensor<B, 4>,
        peer: usize,
        step: u64,
    ) -> Result<Tensor<B, 4>> {
        if self.device_fails_at == Some((peer, step)) {
            bail!("device {peer} failed at step {step} (FACEGAN_FAIL_DEVICE_AT)");
        }
        if self.nan_at_step == Some(step) {
            return Ok(real.mul_scalar(f32::NAN));
        }
        Ok(real)
    }
}
