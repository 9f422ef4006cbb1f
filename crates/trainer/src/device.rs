//! Backend choice: Burn's `flex` CPU backend always; burn-cuda when built with `--features cuda`
//! and a GPU is usable. `auto` picks CUDA when it can and says which it chose.

use anyhow::{bail, Result};

/// The CPU training backend.
pub type CpuBackend = burn::backend::Autodiff<burn::backend::Flex>;
/// The CPU inference backend.
pub type CpuInference = burn::backend::Flex;

#[cfg(feature = "cuda")]
pub type CudaBackend = burn::backend::Autodiff<burn_cuda::Cuda>;
#[cfg(feature = "cuda")]
pub type CudaInference = burn_cuda::Cuda;

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceRequest {
    Auto,
    Cpu,
    Cuda,
}

impl DeviceRequest {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "auto" => DeviceRequest::Auto,
            "cpu" => DeviceRequest::Cpu,
            "cuda" | "gpu" => DeviceRequest::Cuda,
            other => bail!("unknown device {other:?}; use auto, cpu or cuda"),
        })
    }
}

/// The backend that will run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolvedDevice {
    Cpu,
    Cuda,
}

impl ResolvedDevice {
    pub fn name(self) -> &'static str {
        match self {
            ResolvedDevice::Cpu => "cpu (burn flex)",
            ResolvedDevice::Cuda => "cuda (burn-cuda)",
        }
    }
}

/// Whether a CUDA device answers (driver present, a tiny kernel runs).
#[cfg(feature = "cuda")]
pub fn cuda_usable() -> bool {
    use burn::tensor::Tensor;
    crate::cubecl_cache::configure();
    // cudarc panics when the driver is missing; probe quietly and report a plain `false`.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let ok = std::panic::catch_unwind(|| {
        let device = burn_cuda::CudaDevice::default();
        let _ = Tensor::<CudaInference, 1>::zeros([1], &device).into_data();
    })
    .is_ok();
    std::panic::set_hook(hook);
    ok
}

#[cfg(not(feature = "cuda"))]
pub fn cuda_usable() -> bool {
    false
}

pub fn resolve(req: DeviceRequest) -> Result<ResolvedDevice> {
    match req {
        DeviceRequest::Cpu => Ok(ResolvedDevice::Cpu),
        DeviceRequest::Cuda => {
            if !cfg!(feature = "cuda") {
                bail!(
                    "this facegan was built without CUDA; rebuild with `CUDARC_CUDA_VERSION=13000 cargo build --release --features cuda`"
                );
            }
            if !cuda_usable() {
                bail!("no usable CUDA device (driver or libcuda missing?); use --device cpu");
            }
            Ok(ResolvedDevice::Cuda)
        }
        DeviceRequest::Auto => Ok(if cfg!(feature = "cuda") && cuda_usable() {
            ResolvedDevice::Cuda
        } else {
            ResolvedDevice::Cpu
        }),
    }
}
