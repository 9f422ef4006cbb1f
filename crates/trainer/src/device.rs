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
                    "this facegan was built without CUDA; rebuild with `make build-cuda` (the binary is target/cuda/release/facegan)"
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

/// `--devices`: several devices of one kind for data-parallel training, as `cpu:N` (N CPU
/// peers sharing the machine's cores) or `cuda:0,cuda:1,...` (those GPUs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceList {
    pub kind: DeviceRequest,
    /// One entry per peer: the GPU index (always 0 on the CPU).
    pub indices: Vec<usize>,
}

impl DeviceList {
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |why: &str| {
            anyhow::anyhow!("--devices {s:?}: {why}; use cpu:N (N CPU peers) or cuda:0,cuda:1,...")
        };
        if let Some(n) = s.strip_prefix("cpu:") {
            let n: usize = n.parse().map_err(|_| bad("N is not a number"))?;
            if n == 0 {
                return Err(bad("N must be at least 1"));
            }
            return Ok(DeviceList {
                kind: DeviceRequest::Cpu,
                indices: vec![0; n],
            });
        }
        let mut indices = Vec::new();
        for part in s.split(',') {
            let i = part
                .trim()
                .strip_prefix("cuda:")
                .ok_or_else(|| bad(&format!("{part:?} is neither cpu:N nor cuda:I")))?;
            let i: usize = i
                .parse()
                .map_err(|_| bad(&format!("{part:?} has no GPU index")))?;
            if indices.contains(&i) {
                return Err(bad(&format!("cuda:{i} is listed twice")));
            }
            indices.push(i);
        }
        Ok(DeviceList {
            kind: DeviceRequest::Cuda,
            indices,
        })
    }
}

/// A backend device by its index in a [`DeviceList`] (the CPU has one device, whatever the index).
pub trait NthDevice: Sized {
    fn nth(index: usize) -> Self;
}

impl NthDevice for burn::backend::flex::FlexDevice {
    fn nth(_: usize) -> Self {
        burn::backend::flex::FlexDevice
    }
}

#[cfg(feature = "cuda")]
impl NthDevice for burn_cuda::CudaDevice {
    fn nth(index: usize) -> Self {
        burn_cuda::CudaDevice { index }
    }
}

/// The devices of backend `B` at `indices` (see [`DeviceList`]).
pub fn devices<B: burn::tensor::backend::Backend>(indices: &[usize]) -> Vec<B::Device>
where
    B::Device: NthDevice,
{
    indices.iter().map(|&i| NthDevice::nth(i)).collect()
}

/// Backend `B`'s default device (the CPU, or GPU 0).
pub fn default_device<B: burn::tensor::backend::Backend>() -> B::Device {
    Default::default()
}
