//! `facegan`: the command line. It only parses arguments and calls the stage libraries
//! (preprocess -> train -> eval); see ARCHITECTURE.md for the map.

// CI fails on a dependency the crate no longer uses (unit-test builds also see dev-dependencies).
#![cfg_attr(not(test), deny(unused_crate_dependencies))]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

mod commands;

#[derive(Parser)]
#[command(
    name = "facegan",
    version,
    about = "Face-generating GAN pipeline: preprocess -> train -> eval"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Turn a folder of face photos into one memory-mapped shard.
    Preprocess(commands::PreprocessArgs),
    /// Print a shard's summary (and verify its checksum).
    Inspect(commands::InspectArgs),
    /// Write procedurally drawn face-like JPEGs (for tests and the demo).
    Synth(commands::SynthArgs),
    /// Train a GAN preset on a shard; resumes the run directory by default.
    Train(commands::TrainArgs),
    /// Evaluate a run: grids, D accuracy, SWD (and FID, KID, precision/recall with Inception
    /// weights), nearest neighbours, report page.
    Eval(commands::EvalArgs),
    /// Compare runs' quality curves: two charts with bands and a table of last and best scores.
    Compare(commands::CompareArgs),
    /// Write generated faces as a grid or one PNG per face.
    Sample(commands::SampleArgs),
    /// Morph between faces: slerp through seeds' or latent files' latents, as a grid and a GIF.
    Interp(commands::InterpArgs),
    /// Find the latent code that reproduces a real face (aligned like the training faces).
    Project(commands::ProjectArgs),
    /// Export the generator as safetensors.
    Export(commands::ExportArgs),
    /// Compile and tune every GPU kernel a preset needs, before a long run (first run only).
    Warmup(commands::WarmupArgs),
    /// Time the decode-only floor of preprocess on a folder (for `make bench-preprocess`).
    BenchDecode(commands::BenchDecodeArgs),
    /// Time training steps on random data (for `make bench-train`); prints one JSON line.
    BenchTrain(commands::BenchTrainArgs),
    /// Time the sliced Wasserstein distance on N images per side (for `make bench-swd`).
    BenchSwd(commands::BenchSwdArgs),
    /// Where the nodes of a several-machine run meet (`train --nodes`); runs until Ctrl-C.
    Orchestrator(commands::OrchestratorArgs),
}

/// Set once by Ctrl-C; stages poll it and stop cleanly.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// Whether the running command stops cleanly on Ctrl-C (preprocess, train); others just exit.
static GRACEFUL: AtomicBool = AtomicBool::new(false);

fn main() -> ExitCode {
    // Behave like other Unix tools when piped into `head`: end quietly on a closed pipe
    // instead of panicking in println!.
    #[cfg(unix)]
    // SAFETY: restoring the default SIGPIPE disposition at start-up, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // Shards and checkpoints are memory-mapped: a shard truncated or replaced in place while
    // in use turns reads into SIGBUS. Say so instead of dying silently.
    #[cfg(unix)]
    // SAFETY: installs an async-signal-safe handler (write(2) and _exit(2) only) at start-up.
    unsafe {
        libc::signal(
            libc::SIGBUS,
            on_sigbus as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
    // Training allocates and frees the same large activation buffers every step. glibc serves
    // blocks over its mmap threshold (at most 32 MiB) with fresh mmaps, so each step paid the
    // kernel's page faults and zeroing again; keeping them in the heap lets them be reused.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("FACEGAN_MALLOC_DEFAULT").is_none() {
        // SAFETY: mallopt only tunes glibc's allocator; called at start-up, before any thread.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let _ = ctrlc::set_handler(|| {
        if !GRACEFUL.load(Ordering::SeqCst) {
            eprintln!("\ninterrupted");
            std::process::exit(130);
        }
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            eprintln!("\nsecond Ctrl-C: exiting now");
            std::process::exit(130);
        }
        eprintln!("\nCtrl-C: stopping cleanly after the current step (press again to abort)");
        facegan_trainer::STOP.store(true, Ordering::SeqCst);
    });
    let cli = Cli::parse();
    GRACEFUL.store(
        matches!(cli.command, Command::Preprocess(_) | Command::Train(_)),
        Ordering::SeqCst,
    );
    let result = match cli.command {
        Command::Preprocess(a) => commands::preprocess(a, &INTERRUPTED),
        Command::Inspect(a) => commands::inspect(a),
        Command::Synth(a) => commands::synth(a),
        Command::Train(a) => commands::train(a),
        Command::Eval(a) => commands::eval(a),
        Command::Compare(a) => commands::compare(a),
        Command::Sample(a) => commands::sample(a),
        Command::Interp(a) => commands::interp(a),
        Command::Project(a) => commands::project(a),
        Command::Export(a) => commands::export(a),
        Command::Warmup(a) => commands::warmup(a),
        Command::BenchDecode(a) => commands::bench_decode(a),
        Command::BenchTrain(a) => commands::bench_train(a),
        Command::BenchSwd(a) => commands::bench_swd(a),
        Command::Orchestrator(a) => commands::orchestrator(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// SIGBUS: a memory-mapped file (the shard) shrank or changed under the process. Only
/// async-signal-safe calls: one write to stderr, then exit with status 3. The last checkpoint is
/// complete (checkpoints are renamed into place), so the run resumes from it.
#[cfg(unix)]
extern "C" fn on_sigbus(_: libc::c_int) {
    const MSG: &[u8] = b"\nerror: a memory-mapped file (the shard) was truncated or changed while in use (SIGBUS). \
Do not overwrite a shard that a run is reading: write a new file and rename it. The last \
checkpoint is intact; rerun the same command to resume.\n";
    // SAFETY: write(2) and _exit(2) are async-signal-safe.
    unsafe {
        libc::write(2, MSG.as_ptr().cast(), MSG.len());
        libc::_exit(3);
    }
}

/// Shared helper: a path argument that must exist.
pub(crate) fn existing(path: &PathBuf, what: &str) -> Result<()> {
    std::fs::metadata(path)
        .map(|_| ())
        .with_context(|| format!("{}: {what} not found", path.display()))
}
