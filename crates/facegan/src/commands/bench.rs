//! `warmup` and the benchmarks: `bench-decode`, `bench-train` (one device, several, or a per-op
//! profile) and `bench-swd`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use facegan_preprocess::parse_size;
use facegan_trainer::device::{self, DeviceList, ResolvedDevice};
use facegan_trainer::TrainConfig;

#[cfg(feature = "parallel")]
use super::list_backend;
use super::pick_device;

#[derive(Args)]
pub struct WarmupArgs {
    #[arg(long, default_value = "auto")]
    device: String,
    /// Preset (default: the recommended one for --size).
    #[arg(long)]
    preset: Option<String>,
    /// Image size HxW whose recommended preset to warm up when no --preset is given.
    #[arg(long, default_value = "48x40")]
    size: String,
    /// Batch size of the coming run (kernels are tuned per shape).
    #[arg(long)]
    batch: Option<usize>,
}

pub fn warmup(a: WarmupArgs) -> Result<()> {
    let mut cfg = TrainConfig::preset(&preset_or_recommended(a.preset, &a.size)?)?;
    if let Some(b) = a.batch {
        cfg.batch = b;
    }
    let dev = pick_device(&a.device)?;
    let json = with_backend!(
        dev,
        train,
        |B, device| facegan_bench::throughput::warm_up::<B>(&cfg, &device)
    )?;
    println!("{json}");
    if dev == ResolvedDevice::Cuda {
        println!(
            "kernels cached in {}; the next run starts warm",
            facegan_trainer::cubecl_cache::cache_dir().display()
        );
    }
    Ok(())
}

#[derive(Args)]
pub struct BenchDecodeArgs {
    #[arg(long)]
    input: PathBuf,
}

pub fn bench_decode(a: BenchDecodeArgs) -> Result<()> {
    // Timed from the scan on, like `preprocess`'s own images/s: both must find the files.
    let t = Instant::now();
    let files = facegan_preprocess::scan(&a.input)?;
    let ok = facegan_preprocess::decode_only(&files);
    let s = t.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({"impl": "facegan-decode-only", "files": files.len(), "decoded": ok,
            "seconds": s, "img_per_s": files.len() as f64 / s})
    );
    Ok(())
}

#[derive(Args)]
pub struct BenchTrainArgs {
    /// Preset (default: the recommended one for --size).
    #[arg(long)]
    preset: Option<String>,
    /// Image size HxW whose recommended preset to time when no --preset or --config is given.
    #[arg(long, default_value = "48x40")]
    size: String,
    /// TOML config to time instead of a preset (as `train --config`: a base preset plus
    /// overrides), so a sweep's configurations get their quiet-machine speed.
    #[arg(long, conflicts_with = "preset")]
    config: Option<PathBuf>,
    /// Batch size (default: the preset's or the config's).
    #[arg(long)]
    batch: Option<usize>,
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    #[arg(long, default_value_t = 10)]
    steps: usize,
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Time data-parallel steps on these devices instead (`cpu:N` or `cuda:0,cuda:1,...`,
    /// as `train --devices`): adds the all-reduce time per step and the gradient bytes.
    #[arg(long, conflicts_with_all = ["device", "profile"])]
    devices: Option<String>,
    /// Also print a per-op forward/backward profile (to stderr, and as `profile` in the JSON).
    #[arg(long)]
    profile: bool,
}

pub fn bench_train(a: BenchTrainArgs) -> Result<()> {
    let cfg = match &a.config {
        Some(path) => TrainConfig::from_toml_file(path)?,
        None => TrainConfig::preset(&preset_or_recommended(a.preset, &a.size)?)?,
    }
    .with_overrides(a.batch, None);
    if let Some(list) = &a.devices {
        let list = DeviceList::parse(list)?;
        let json = bench_on_devices(&cfg, &list, a.warmup, a.steps)?;
        println!("{json}");
        return Ok(());
    }
    let dev = pick_device(&a.device)?;
    let mut json = with_backend!(dev, train, |B, device| {
        facegan_bench::throughput::bench_steps::<B>(&cfg, a.warmup, a.steps, &device)
    })?;
    json["backend"] = serde_json::json!(a.device);
    if a.profile {
        let rows = with_backend!(dev, train, |B, device| {
            facegan_bench::throughput::profile_ops::<B>(&cfg, 3, &device)
        });
        eprintln!("{}", facegan_bench::throughput::profile_table(&rows));
        json["profile"] = serde_json::to_value(&rows)?;
    }
    println!("{json}");
    Ok(())
}

/// `bench-train --devices`: data-parallel steps (see `facegan_bench::throughput::bench_parallel`).
#[cfg(feature = "parallel")]
fn bench_on_devices(
    cfg: &TrainConfig,
    list: &DeviceList,
    warmup: usize,
    steps: usize,
) -> Result<serde_json::Value> {
    let dev = list_backend(list)?;
    with_backend!(dev, train, |B, _first| {
        facegan_bench::throughput::bench_parallel::<B>(
            cfg,
            &device::devices::<B>(&list.indices),
            warmup,
            steps,
        )
    })
}

#[derive(Args)]
pub struct BenchSwdArgs {
    /// Images per side.
    #[arg(long, default_value_t = 10000)]
    n: usize,
    #[arg(long, default_value = "96x80")]
    size: String,
}

pub fn bench_swd(a: BenchSwdArgs) -> Result<()> {
    let (h, w) = parse_size(&a.size)?;
    let report = facegan_metrics::bench::bench_swd(a.n, h as usize, w as usize);
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// The preset asked for, else the recommended one for an image size given as `HxW`.
fn preset_or_recommended(preset: Option<String>, size: &str) -> Result<String> {
    if let Some(p) = preset {
        return Ok(p);
    }
    let (h, w) = parse_size(size)?;
    Ok(TrainConfig::recommended_preset(h as usize, w as usize)?.to_string())
}

#[cfg(not(feature = "parallel"))]
fn bench_on_devices(
    _: &TrainConfig,
    _: &DeviceList,
    _: usize,
    _: usize,
) -> Result<serde_json::Value> {
    anyhow::bail!("this facegan was built without the `parallel` feature; --devices needs it")
}
