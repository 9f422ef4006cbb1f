//! One function per subcommand: argument structs and the calls into the stage libraries.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use facegan_common::images::grid_from_hwc;
use facegan_preprocess::{parse_size, Crop, Filter, PreprocessConfig};
use facegan_shard::{Shard, Split};
use facegan_trainer::device::{self, resolve, DeviceList, DeviceRequest, ResolvedDevice};
use facegan_trainer::{TrainConfig, TrainOptions, TrainOutcome, TrainSummary};

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

#[derive(Args)]
pub struct PreprocessArgs {
    /// Folder of face photos (searched recursively for jpg, jpeg, png).
    #[arg(long)]
    input: PathBuf,
    /// Shard file to write.
    #[arg(long)]
    output: PathBuf,
    /// Output size HxW.
    #[arg(long, default_value = "96x80")]
    size: String,
    /// `none` (squeeze the whole frame, the seed's behaviour) or `center:N` (N pixels wide).
    #[arg(long, default_value = "none")]
    crop: String,
    /// Resize filter: nearest, box, bilinear, hamming, catmullrom, mitchell, lanczos3.
    #[arg(long, default_value = "catmullrom")]
    filter: String,
    /// Fraction of images held out from training (ignored for files named in CelebA's
    /// list_eval_partition.txt, when it sits beside or above the input).
    #[arg(long, default_value_t = 0.05)]
    holdout: f64,
    /// Skip images whose width or height is below this.
    #[arg(long, default_value_t = 32)]
    min_size: u32,
    /// Drop near-duplicates (they are always reported).
    #[arg(long)]
    dedupe: bool,
}

pub fn preprocess(a: PreprocessArgs, stop: &AtomicBool) -> Result<()> {
    let (height, width) = parse_size(&a.size)?;
    let mut cfg = PreprocessConfig::new(&a.input, &a.output);
    cfg.height = height;
    cfg.width = width;
    cfg.crop = Crop::parse(&a.crop)
        .with_context(|| format!("--crop {:?}: use none or center:N", a.crop))?;
    cfg.filter = Filter::parse(&a.filter)
        .with_context(|| format!("--filter {:?}: use one of {}", a.filter, Filter::NAMES))?;
    cfg.holdout = a.holdout;
    cfg.min_size = a.min_size;
    cfg.dedupe = a.dedupe;
    cfg.progress = stderr_is_tty();
    let report = facegan_preprocess::run(&cfg, stop)?;
    println!("{}", report.summary());
    println!(
        "wrote {} ({}x{}) and {}",
        a.output.display(),
        height,
        width,
        facegan_preprocess::report_path(&a.output).display()
    );
    Ok(())
}

#[derive(Args)]
pub struct InspectArgs {
    /// Shard file.
    file: PathBuf,
    /// Print a JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Recompute the payload checksum.
    #[arg(long)]
    verify: bool,
    /// Also write a PNG grid of images (the first 64, or those named by --paths).
    #[arg(long)]
    grid: Option<PathBuf>,
    /// Comma-separated source paths (as stored in the shard) for --grid.
    #[arg(long, value_delimiter = ',')]
    paths: Vec<String>,
    /// Also write the train split, in id order, as a NumPy `.npy` of u8
    /// `[N, H, W, 3]` (for other frameworks to train on the same pixels, e.g. the PyTorch twin).
    #[arg(long)]
    export_train: Option<PathBuf>,
}

pub fn inspect(a: InspectArgs) -> Result<()> {
    let shard = Shard::open(&a.file)?;
    if a.verify {
        shard.verify()?;
    }
    if let Some(out) = &a.export_train {
        facegan_common::write_atomic(out, &shard.train_split_npy())
            .with_context(|| format!("{}: cannot write the train split", out.display()))?;
        let n = shard.indices(Split::Train).len();
        eprintln!("wrote {n} train images to {}", out.display());
    }
    if let Some(out) = &a.grid {
        let ids: Vec<usize> = if a.paths.is_empty() {
            (0..shard.len().min(64)).collect()
        } else {
            a.paths
                .iter()
                .map(|p| {
                    shard.position_of_path(p).with_context(|| {
                        format!("{}: no image {p:?} in the shard", a.file.display())
                    })
                })
                .collect::<Result<_>>()?
        };
        let cols = if a.paths.is_empty() {
            8
        } else {
            a.paths.len().min(8)
        };
        let images = ids.iter().map(|&i| shard.image(i));
        let grid = grid_from_hwc(images, shard.height(), shard.width(), cols);
        facegan_common::images::save_png(out, &grid)?;
        eprintln!("wrote {} images to {}", ids.len(), out.display());
    }
    let summary = shard.summary(a.verify);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!("{summary}");
    }
    Ok(())
}

#[derive(Args)]
pub struct SynthArgs {
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 2000)]
    count: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub fn synth(a: SynthArgs) -> Result<()> {
    let t = Instant::now();
    let paths = facegan_preprocess::synth::write_synth_set(&a.out, a.count, a.seed)?;
    println!(
        "wrote {} synthetic faces (178x218 JPEG) to {} in {:.1} s",
        paths.len(),
        a.out.display(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

#[derive(Args)]
pub struct TrainArgs {
    /// Shard from `facegan preprocess`.
    #[arg(long)]
    data: PathBuf,
    /// Run directory (created, or resumed).
    #[arg(long, default_value = "runs/default")]
    run: PathBuf,
    /// Preset: faces48 (48x40) or faces96 (96x80), recommended; seed (the tutorial's networks at
    /// 96x80), demo, seed48, celeba48, tiny. Default for a new run: the recommended preset for
    /// the shard's size; a resumed run keeps its own.
    #[arg(long)]
    preset: Option<String>,
    /// TOML config (may be partial: `preset = ...` plus overrides).
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    epochs: Option<usize>,
    #[arg(long)]
    batch: Option<usize>,
    #[arg(long)]
    seed: Option<u64>,
    /// auto, cpu or cuda.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Data-parallel training on several devices: `cuda:0,cuda:1,...` or `cpu:N` (N CPU
    /// peers). Each takes batch / devices images of every batch; gradients are averaged every
    /// step, so the weights stay identical (BatchNorm uses each device's own batch statistics).
    #[arg(long, conflicts_with = "device")]
    devices: Option<String>,
    /// Several machines: the number of nodes (each runs this command with its own
    /// --node-rank and devices; all meet at --orchestrator). Node 0 writes the run directory.
    #[arg(long, requires_all = ["node_rank", "orchestrator"])]
    nodes: Option<usize>,
    /// This node's rank, 0..nodes.
    #[arg(long, requires = "nodes")]
    node_rank: Option<usize>,
    /// HOST:PORT of `facegan orchestrator --listen` (ws:// optional).
    #[arg(long, requires = "nodes")]
    orchestrator: Option<String>,
    /// HOST:PORT where the other nodes reach this one (default 127.0.0.1 at the orchestrator's
    /// port + 1 + rank).
    #[arg(long, requires = "nodes")]
    node_address: Option<String>,
    /// Several machines: seconds without a finished step (or to meet the others at the start)
    /// after which a node gives up, naming the nodes it lost.
    #[arg(long, default_value_t = 300, requires = "nodes")]
    peer_timeout: u64,
    /// Resume from the latest checkpoint (the default when the run has one).
    #[arg(long, conflicts_with = "new")]
    resume: bool,
    /// Start over, deleting the run's checkpoints, samples and metrics.
    #[arg(long)]
    new: bool,
    /// Stop with a checkpoint after this many steps in total.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    max_steps: Option<u64>,
    /// Stop with a checkpoint once this many images have been shown in total (rounded up to a
    /// whole batch): a budget that means the same at any batch size. The epoch count (the
    /// preset's, or --epochs) still ends the run if it comes first.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    max_images: Option<u64>,
    /// Train for this many minutes of wall time in total (across resumes), then checkpoint and
    /// stop; a larger value on a resumed run extends it. Without --epochs the epoch count no
    /// longer bounds the run.
    #[arg(long)]
    minutes: Option<f64>,
}

/// A count that must be at least 1 (`--n 0` would score or draw nothing).
fn at_least_one() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
}

pub fn train(a: TrainArgs) -> Result<()> {
    crate::existing(&a.data, "shard")?;
    // No --preset or --config: the recommended preset for the shard's size (a resumed run
    // keeps its own); --batch and --seed then apply to it.
    let cfg = if a.preset.is_some() || a.config.is_some() {
        Some(TrainConfig::from_args(
            a.config.as_deref(),
            a.preset.as_deref(),
            "seed",
            a.batch,
            a.seed,
        )?)
    } else {
        None
    };
    if a.resume {
        facegan_trainer::run::check_resumable(&a.run)?;
    }
    let opts = TrainOptions {
        data: a.data,
        run: a.run,
        config: cfg,
        asked_batch: a.batch,
        asked_seed: a.seed,
        // A time budget without --epochs: time, not the preset's epoch count, ends the run.
        epochs_override: a
            .epochs
            .or(a.minutes.map(|_| facegan_trainer::run::TIME_BOUND_EPOCHS)),
        minutes_override: a.minutes,
        new: a.new,
        progress: stderr_is_tty(),
        max_steps: a.max_steps,
        max_images: a.max_images,
        // Testing hook: poison the real batch of this step with NaN (see ARCHITECTURE.md).
        inject_nan_at_step: std::env::var("FACEGAN_INJECT_NAN_AT_STEP")
            .ok()
            .and_then(|s| s.parse().ok()),
        // Testing hook: device K of a --devices run fails at step S (`K:S`).
        fail_device_at: std::env::var("FACEGAN_FAIL_DEVICE_AT").ok().and_then(|s| {
            let (k, step) = s.split_once(':')?;
            Some((k.parse().ok()?, step.parse().ok()?))
        }),
    };
    let cluster = match (a.nodes, a.node_rank, a.orchestrator.as_deref()) {
        (Some(n), Some(r), Some(o)) => Some(facegan_trainer::parallel::Cluster::new(
            n,
            r,
            o,
            a.node_address.as_deref(),
        )?),
        _ => None,
    };
    let devices = match (a.devices.as_deref(), &cluster) {
        (Some(list), _) => Some(DeviceList::parse(list)?),
        (None, Some(_)) => Some(DeviceList::parse(
            match resolve(DeviceRequest::parse(&a.device)?)? {
                ResolvedDevice::Cuda => "cuda:0",
                ResolvedDevice::Cpu => "cpu:1",
            },
        )?),
        (None, None) => None,
    };
    let summary = match devices {
        None => {
            let dev = pick_device(&a.device)?;
            with_backend!(dev, train, |B, device| facegan_trainer::train::<B>(
                &opts, &device
            ))?
        }
        Some(list) => train_on_devices(
            &opts,
            &list,
            cluster.as_ref(),
            std::time::Duration::from_secs(a.peer_timeout),
        )?,
    };
    match summary.outcome {
        TrainOutcome::Completed => println!("run complete: {}", opts.run.display()),
        TrainOutcome::Stopped { step } => {
            println!("run stopped at step {step}: {}", opts.run.display())
        }
    }
    Ok(())
}

/// The backend of a `--devices` list (CUDA only when the build and the machine have it).
#[cfg(feature = "parallel")]
fn list_backend(list: &DeviceList) -> Result<ResolvedDevice> {
    match list.kind {
        DeviceRequest::Cuda => resolve(DeviceRequest::Cuda),
        _ => Ok(ResolvedDevice::Cpu),
    }
}

/// `--devices`: one peer per listed device (see `facegan_trainer::parallel`).
#[cfg(feature = "parallel")]
fn train_on_devices(
    opts: &TrainOptions,
    list: &DeviceList,
    cluster: Option<&facegan_trainer::parallel::Cluster>,
    peer_timeout: std::time::Duration,
) -> Result<TrainSummary> {
    let dev = list_backend(list)?;
    eprintln!("devices: {} x {}", list.indices.len(), dev.name());
    with_backend!(dev, train, |B, _first| {
        facegan_trainer::train_parallel::<B>(
            opts,
            &device::devices::<B>(&list.indices),
            cluster,
            peer_timeout,
        )
    })
}

/// `bench-train --devices`: data-parallel steps (see `facegan_trainer::bench::bench_parallel`).
#[cfg(feature = "parallel")]
fn bench_on_devices(
    cfg: &TrainConfig,
    list: &DeviceList,
    warmup: usize,
    steps: usize,
) -> Result<serde_json::Value> {
    let dev = list_backend(list)?;
    with_backend!(dev, train, |B, _first| {
        facegan_trainer::bench::bench_parallel::<B>(
            cfg,
            &device::devices::<B>(&list.indices),
            warmup,
            steps,
        )
    })
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

#[cfg(not(feature = "parallel"))]
fn train_on_devices(
    _: &TrainOptions,
    _: &DeviceList,
    _: Option<&facegan_trainer::parallel::Cluster>,
    _: std::time::Duration,
) -> Result<TrainSummary> {
    anyhow::bail!("this facegan was built without the `parallel` feature; --devices needs it")
}

#[derive(Args)]
pub struct EvalArgs {
    #[arg(long, default_value = "runs/default")]
    run: PathBuf,
    /// Shard (default: the one the run was trained on, from its config).
    #[arg(long)]
    data: Option<PathBuf>,
    /// `latest`, `best` (the best quality probe) or an epoch number.
    #[arg(long, default_value = "latest")]
    checkpoint: String,
    /// Images per side for SWD and D accuracy (capped by the holdout size for reals).
    #[arg(long, default_value_t = 10000, value_parser = at_least_one())]
    n: usize,
    /// Evaluate this folder of images instead of the run's generator.
    #[arg(long)]
    fake_dir: Option<PathBuf>,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    #[arg(long, default_value = "auto")]
    device: String,
}

pub fn eval(a: EvalArgs) -> Result<()> {
    let opts = facegan_eval::EvalOptions {
        run: a.run,
        data: a.data,
        checkpoint: facegan_eval::CheckpointChoice::parse(&a.checkpoint)?,
        n: a.n,
        fake_dir: a.fake_dir,
        seed: a.seed,
    };
    let dev = pick_device(&a.device)?;
    let report = with_backend!(dev, inference, |B, device| facegan_eval::evaluate::<B>(
        &opts, &device
    ))?;
    println!("{}", report.summary_line());
    println!("report: {}", report.html_path.display());
    Ok(())
}

#[derive(Args)]
pub struct SampleArgs {
    #[arg(long, default_value = "runs/default")]
    run: PathBuf,
    #[arg(long, default_value_t = 64, value_parser = at_least_one())]
    n: usize,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// `faces.png` for a grid, or a folder path ending in `/` for one PNG per face.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value = "latest")]
    checkpoint: String,
    #[arg(long, default_value = "auto")]
    device: String,
    /// Normalise with each batch's own statistics (BatchNorm train mode) instead of the running
    /// statistics: a diagnostic for runs whose eval-mode samples look washed out early on.
    #[arg(long)]
    batch_stats: bool,
}

pub fn sample(a: SampleArgs) -> Result<()> {
    let choice = facegan_eval::CheckpointChoice::parse(&a.checkpoint)?;
    let as_dir = a.out.to_string_lossy().ends_with('/') || a.out.is_dir();
    let dev = pick_device(&a.device)?;
    let written = with_backend!(dev, inference, |B, device| {
        facegan_eval::sample::write_samples::<B>(
            &a.run, choice, a.n, a.seed, &a.out, as_dir, &device,
        )
    })?;
    println!("wrote {written}");
    Ok(())
}

#[derive(Args)]
pub struct ExportArgs {
    #[arg(long, default_value = "runs/default")]
    run: PathBuf,
    /// File to write; a folder (existing, or a path ending in `/`) gets `generator.safetensors`.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value = "latest")]
    checkpoint: String,
}

pub fn export(a: ExportArgs) -> Result<()> {
    let choice = facegan_eval::CheckpointChoice::parse(&a.checkpoint)?;
    let names_a_folder = a.out.is_dir() || a.out.as_os_str().to_string_lossy().ends_with('/');
    let out = if names_a_folder {
        std::fs::create_dir_all(&a.out)
            .with_context(|| format!("{}: cannot create the folder", a.out.display()))?;
        a.out.join("generator.safetensors")
    } else {
        a.out
    };
    let info = facegan_eval::export::export_safetensors(&a.run, choice, &out)?;
    println!("{info}");
    Ok(())
}

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
        |B, device| facegan_trainer::bench::warm_up::<B>(&cfg, &device)
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
    let preset = match &a.config {
        Some(_) => "seed".to_string(),
        None => preset_or_recommended(a.preset, &a.size)?,
    };
    let cfg = TrainConfig::from_args(a.config.as_deref(), None, &preset, a.batch, None)?;
    if let Some(list) = &a.devices {
        let list = DeviceList::parse(list)?;
        let json = bench_on_devices(&cfg, &list, a.warmup, a.steps)?;
        println!("{json}");
        return Ok(());
    }
    let dev = pick_device(&a.device)?;
    let mut json = with_backend!(
        dev,
        train,
        |B, device| facegan_trainer::bench::bench_steps::<B>(&cfg, a.warmup, a.steps, &device)
    )?;
    json["backend"] = serde_json::json!(a.device);
    if a.profile {
        let rows = with_backend!(
            dev,
            train,
            |B, device| facegan_trainer::bench::profile_ops::<B>(&cfg, 3, &device)
        );
        eprintln!("{}", facegan_trainer::bench::profile_table(&rows));
        json["profile"] = serde_json::to_value(&rows)?;
    }
    println!("{json}");
    Ok(())
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

#[derive(Args)]
pub struct OrchestratorArgs {
    /// HOST:PORT to listen on (ws:// optional; it listens on every interface at PORT).
    #[arg(long)]
    listen: String,
}

/// `facegan orchestrator`: where the nodes of a several-machine run meet (Burn's collective
/// orchestrator); runs until interrupted.
pub fn orchestrator(a: OrchestratorArgs) -> Result<()> {
    #[cfg(feature = "parallel")]
    {
        let (_, port) = facegan_trainer::parallel::ws_address(&a.listen, "--listen")?;
        facegan_trainer::parallel::run_orchestrator(port)
    }
    #[cfg(not(feature = "parallel"))]
    {
        let _ = a;
        anyhow::bail!("this facegan was built without the `parallel` feature")
    }
}

/// The preset asked for, else the recommended one for an image size given as `HxW`.
fn preset_or_recommended(preset: Option<String>, size: &str) -> Result<String> {
    if let Some(p) = preset {
        return Ok(p);
    }
    let (h, w) = parse_size(size)?;
    Ok(TrainConfig::recommended_preset(h as usize, w as usize)?.to_string())
}
