//! `train` (one device, several, or several machines) and `orchestrator`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use facegan_trainer::device::{self, resolve, DeviceList, DeviceRequest, ResolvedDevice};
use facegan_trainer::{TrainConfig, TrainOptions, TrainOutcome, TrainSummary};

#[cfg(feature = "parallel")]
use super::list_backend;
use super::{pick_device, stderr_is_tty};

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
    /// Several machines: a file whose first line is the run's shared secret (the same on
    /// every node and the orchestrator; or set FACEGAN_CLUSTER_TOKEN). Every connection must
    /// carry it. Needed unless every address is loopback.
    #[arg(long, requires = "nodes")]
    token_file: Option<PathBuf>,
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
    /// Keep a checkpoint for good at each of these image counts (comma-separated): the first
    /// step at or past a count writes checkpoints/images_<count>/, which rotation never removes
    /// (`facegan eval --checkpoint images:<count>` scores it). Give it again when resuming.
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u64).range(1..))]
    keep_at: Vec<u64>,
    /// Fine-tune: start a new run from another run's checkpoint, RUN or RUN:CHECKPOINT
    /// (`latest`, the default; `best`; an epoch number; `images:COUNT`). G, its EMA and D start
    /// from there with fresh optimizers; the training settings (learning rates, augmentation,
    /// epochs) are this run's, the model must be the source's. The run's config records it.
    #[arg(long, value_name = "RUN[:CHECKPOINT]")]
    init_from: Option<String>,
    /// Train for this many minutes of wall time in total (across resumes), then checkpoint and
    /// stop; a larger value on a resumed run extends it. Without --epochs the epoch count no
    /// longer bounds the run.
    #[arg(long)]
    minutes: Option<f64>,
}

/// `RUN` or `RUN:CHECKPOINT`: the run is the longest prefix before a `:` that is a directory
/// (so `runs/a:images:43600` reads as run `runs/a`, checkpoint `images:43600`).
fn parse_init_from(s: &str) -> Result<(PathBuf, facegan_trainer::CheckpointChoice)> {
    if Path::new(s).is_dir() {
        return Ok((PathBuf::from(s), facegan_trainer::CheckpointChoice::Latest));
    }
    for (i, _) in s.match_indices(':') {
        let (run, choice) = (&s[..i], &s[i + 1..]);
        if Path::new(run).is_dir() {
            let choice = facegan_trainer::CheckpointChoice::parse(choice)
                .with_context(|| format!("--init-from {s}"))?;
            return Ok((PathBuf::from(run), choice));
        }
    }
    anyhow::bail!("--init-from {s}: no such run directory (RUN or RUN:CHECKPOINT)")
}

pub fn train(a: TrainArgs) -> Result<()> {
    crate::existing(&a.data, "shard")?;
    // No --preset or --config: the recommended preset for the shard's size (a resumed run
    // keeps its own); --batch and --seed then apply to it.
    let cfg = TrainConfig::from_args(a.config.as_deref(), a.preset.as_deref(), a.batch, a.seed)?;
    if a.resume {
        facegan_trainer::check_resumable(&a.run)?;
    }
    let (cluster, devices) = cluster_and_devices(&a)?;
    let opts = TrainOptions {
        data: a.data,
        run: a.run,
        config: cfg,
        config_from_file: a.config.is_some(),
        asked_batch: a.batch,
        asked_seed: a.seed,
        // A time budget without --epochs: time, not the preset's epoch count, ends the run.
        epochs_override: a
            .epochs
            .or(a.minutes.map(|_| facegan_trainer::TIME_BOUND_EPOCHS)),
        minutes_override: a.minutes,
        new: a.new,
        progress: stderr_is_tty(),
        max_steps: a.max_steps,
        max_images: a.max_images,
        keep_at_images: a.keep_at,
        init_from: a.init_from.as_deref().map(parse_init_from).transpose()?,
        // A test seam: faults the environment asks to inject (see ARCHITECTURE.md).
        faults: facegan_trainer::Faults::from_env(),
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

/// Several machines (`--nodes`, `--node-rank`, `--orchestrator`) and the devices this process
/// trains on (`--devices`, or the one `--device` picks when there are several machines); both
/// `None` for one device on one machine.
fn cluster_and_devices(
    a: &TrainArgs,
) -> Result<(
    Option<facegan_trainer::parallel::Cluster>,
    Option<DeviceList>,
)> {
    let cluster = match (a.nodes, a.node_rank, a.orchestrator.as_deref()) {
        (Some(n), Some(r), Some(o)) => {
            let c = facegan_trainer::parallel::Cluster::new(n, r, o, a.node_address.as_deref())?;
            secure_cluster(
                &c.node_address,
                "--node-address",
                a.token_file.as_deref(),
                a.peer_timeout,
            )?;
            Some(c)
        }
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
    Ok((cluster, devices))
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

/// Reads the run's shared token (`--token-file` or FACEGAN_CLUSTER_TOKEN), refuses to listen
/// on `address` beyond loopback without one, and sets it, with an idle limit of twice
/// `--peer-timeout` seconds, for every connection this process makes or takes.
fn secure_cluster(
    address: &str,
    flag: &str,
    token_file: Option<&std::path::Path>,
    peer_timeout: u64,
) -> Result<()> {
    #[cfg(feature = "parallel")]
    {
        use facegan_trainer::parallel;
        let token = parallel::read_token(token_file)?;
        parallel::check_listen_access(address, flag, token.as_deref())?;
        parallel::set_access(
            token,
            std::time::Duration::from_secs(2 * peer_timeout.max(1)),
        );
    }
    #[cfg(not(feature = "parallel"))]
    let _ = (address, flag, token_file, peer_timeout);
    Ok(())
}

#[derive(Args)]
pub struct OrchestratorArgs {
    /// HOST:PORT to listen on (ws:// optional): that address only, e.g. 127.0.0.1:PORT for one
    /// machine, or this machine's address on the run's trusted network (0.0.0.0:PORT for all).
    #[arg(long)]
    listen: String,
    /// A file whose first line is the run's shared secret (or set FACEGAN_CLUSTER_TOKEN); the
    /// nodes must give the same. Needed unless --listen is a loopback address.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Seconds: a connection that has not said who it is within twice this is closed (the
    /// nodes' --peer-timeout).
    #[arg(long, default_value_t = 300)]
    peer_timeout: u64,
}

/// `facegan orchestrator`: where the nodes of a several-machine run meet (Burn's collective
/// orchestrator); runs until interrupted.
pub fn orchestrator(a: OrchestratorArgs) -> Result<()> {
    #[cfg(feature = "parallel")]
    {
        let (url, _) = facegan_trainer::parallel::ws_address(&a.listen, "--listen")?;
        secure_cluster(&url, "--listen", a.token_file.as_deref(), a.peer_timeout)?;
        facegan_trainer::parallel::run_orchestrator(url.trim_start_matches("ws://"))
    }
    #[cfg(not(feature = "parallel"))]
    {
        let _ = a;
        anyhow::bail!("this facegan was built without the `parallel` feature")
    }
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
