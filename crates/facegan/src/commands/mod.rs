//! One function per subcommand: argument structs and the calls into the stage libraries,
//! grouped by stage: [`data`] (preprocess, inspect, synth), [`train`] (train, orchestrator),
//! [`eval`] (eval, sample, export) and [`bench`] (warmup and the benchmarks).

use anyhow::Result;
#[cfg(feature = "parallel")]
use facegan_trainer::device::DeviceList;
use facegan_trainer::device::{resolve, DeviceRequest, ResolvedDevice};

/// Runs `$body` with `$B` bound to the `train` (autodiff) or `inference` (no autodiff, BatchNorm
/// in eval mode) backend of `$dev`, CPU or CUDA, and `$device` to its default device. The CUDA
/// types are only named when the `cuda` feature is on.
macro_rules! with_backend {
    ($dev:expr, train, |$B:ident, $d:ident| $body:expr) => {
        with_backend!(@on $dev, device::CpuBackend, device::CudaBackend, |$B, $d| $body)
    };
    ($dev:expr, inference, |$B:ident, $d:ident| $body:expr) => {
        with_backend!(@on $dev, device::CpuInference, device::CudaInference, |$B, $d| $body)
    };
    (@on $dev:expr, $cpu:ty, $cuda:ty, |$B:ident, $device:ident| $body:expr) => {
        match $dev {
            ResolvedDevice::Cpu => {
                type $B = $cpu;
                let $device = device::default_device::<$B>();
                $body
            }
            ResolvedDevice::Cuda => {
                #[cfg(feature = "cuda")]
                {
                    type $B = $cuda;
                    let $device = device::default_device::<$B>();
                    $body
                }
                #[cfg(not(feature = "cuda"))]
                unreachable!("resolve() never picks CUDA without the feature")
            }
        }
    };
}

fn pick_device(arg: &str) -> Result<ResolvedDevice> {
    let dev = resolve(DeviceRequest::parse(arg)?)?;
    eprintln!("device: {}", dev.name());
    if dev == ResolvedDevice::Cuda {
        eprintln!(
            "compiling GPU kernels (first run only; cached in {})...",
            facegan_trainer::cubecl_cache::cache_dir().display()
        );
    }
    Ok(dev)
}

fn stderr_is_tty() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
}

/// The backend of a `--devices` list (CUDA only when the build and the machine have it).
#[cfg(feature = "parallel")]
fn list_backend(list: &DeviceList) -> Result<ResolvedDevice> {
    match list.kind {
        DeviceRequest::Cuda => resolve(DeviceRequest::Cuda),
        _ => Ok(ResolvedDevice::Cpu),
    }
}

/// A count that must be at least 1 (`--n 0` would score or draw nothing).
fn at_least_one() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
}

mod bench;
mod data;
mod eval;
mod train;

pub use bench::{
    bench_decode, bench_swd, bench_train, warmup, BenchDecodeArgs, BenchSwdArgs, BenchTrainArgs,
    WarmupArgs,
};
pub use data::{inspect, preprocess, synth, InspectArgs, PreprocessArgs, SynthArgs};
pub use eval::{
    compare, eval, export, interp, project, sample, CompareArgs, EvalArgs, ExportArgs, InterpArgs,
    ProjectArgs, SampleArgs,
};
pub use train::{orchestrator, train, OrchestratorArgs, TrainArgs};
