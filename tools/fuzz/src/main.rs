//! `make fuzz`: a coverage-guided fuzzer on stable Rust for everything facegan parses from disk
//! (`shard`, `state`, `config`, `image`; see [`targets`]). For each target it makes fresh seeds
//! ([`seeds`]), loads earlier finds from `CORPUS/TARGET/`, then for `--seconds` mutates corpus
//! entries ([`mutate`]) and runs them, keeping any input that reaches new edges ([`coverage`]).
//!
//! What counts as a bug, and where its input is kept (`CRASHES/TARGET/`):
//! - a panic: caught, the input saved as `panic-HASH.bin`, fuzzing goes on;
//! - an abort or a fatal signal (e.g. a failed multi-gigabyte allocation; the address space is
//!   capped at `--max-memory-mb`): the signal handler writes the input to `signal.bin`, exit 3;
//! - a hang (one input running over `--hang-seconds`): the watchdog saves it as `hang.bin`,
//!   exit 2.
//!
//! Prints one JSON line per target: executions, executions per second, corpus size, edges
//! covered of those instrumented (0 without `make fuzz`'s RUSTFLAGS), and the bugs found.

// CI fails on a dependency the crate no longer uses (unit-test builds also see dev-dependencies).
#![cfg_attr(not(test), deny(unused_crate_dependencies))]

mod coverage;
mod mutate;
mod seeds;
mod targets;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Parser)]
#[command(about = "Fuzz facegan's parsers (shard, state, config, image) on stable Rust")]
struct Args {
    /// Targets to run (default: all), one after another.
    targets: Vec<String>,
    /// Seconds of fuzzing per target.
    #[arg(long, default_value_t = 600)]
    seconds: u64,
    /// Where inputs that found new coverage are kept (and read back next time).
    #[arg(long, default_value = "data/fuzz/corpus")]
    corpus: PathBuf,
    /// Where crashing, aborting and hanging inputs are kept.
    #[arg(long, default_value = "data/fuzz/crashes")]
    crashes: PathBuf,
    /// One input running longer than this is a hang.
    #[arg(long, default_value_t = 10)]
    hang_seconds: u64,
    /// Address-space cap of the process, so a runaway allocation fails (and is caught) early.
    #[arg(long, default_value_t = 4096)]
    max_memory_mb: u64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// The input being run, for the signal handler and the watchdog.
static CURRENT: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static CURRENT_LEN: AtomicUsize = AtomicUsize::new(0);
/// File descriptor the signal handler writes the current input to.
static SIGNAL_FD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

extern "C" fn on_fatal_signal(sig: libc::c_int) {
    // Async-signal-safe only: write the current input, then leave.
    let fd = SIGNAL_FD.load(Ordering::SeqCst);
    let (p, n) = (
        CURRENT.load(Ordering::SeqCst),
        CURRENT_LEN.load(Ordering::SeqCst),
    );
    if fd >= 0 && !p.is_null() {
        // SAFETY: `p..p+n` is the live input buffer (see `run_one`); write(2) is signal-safe.
        unsafe {
            libc::write(fd, p as *const libc::c_void, n);
        }
    }
    let msg = b"facegan-fuzz: fatal signal; the input is saved as signal.bin\n";
    // SAFETY: write(2) and _exit(2) are async-signal-safe.
    unsafe {
        libc::write(2, msg.as_ptr() as *const libc::c_void, msg.len());
        libc::_exit(if sig == libc::SIGABRT { 3 } else { 4 });
    }
}

fn install_signal_handlers(crash_dir: &Path) -> Result<()> {
    let path = crash_dir.join("signal.bin");
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())?;
    // SAFETY: plain open(2) of a path we own; the descriptor lives for the process.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
            0o644,
        )
    };
    if fd < 0 {
        bail!("{}: cannot open", path.display());
    }
    SIGNAL_FD.store(fd, Ordering::SeqCst);
    for sig in [
        libc::SIGABRT,
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGILL,
        libc::SIGFPE,
    ] {
        // SAFETY: installing a handler that only makes async-signal-safe calls.
        unsafe {
            libc::signal(
                sig,
                on_fatal_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
            );
        }
    }
    Ok(())
}

fn cap_memory(mb: u64) {
    let lim = libc::rlimit {
        rlim_cur: mb << 20,
        rlim_max: mb << 20,
    };
    // SAFETY: setrlimit on our own process.
    unsafe {
        libc::setrlimit(libc::RLIMIT_AS, &lim);
    }
}

/// Runs one input with the panic caught; `Err(message)` on a panic.
fn run_one(target: &str, input: &[u8], scratch: &Path) -> std::result::Result<(), String> {
    CURRENT.store(input.as_ptr() as *mut u8, Ordering::SeqCst);
    CURRENT_LEN.store(input.len(), Ordering::SeqCst);
    let r = std::panic::catch_unwind(|| targets::run(target, input, scratch));
    CURRENT.store(std::ptr::null_mut(), Ordering::SeqCst);
    r.map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic".into())
    })
}

fn save(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let p = dir.join(name);
    facegan_common::write_atomic(&p, bytes)?;
    Ok(p)
}

/// The inputs kept in a corpus folder by earlier runs (unreadable files are skipped).
fn read_corpus(dir: &Path) -> Vec<Vec<u8>> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read(e.path()).ok())
        .collect()
}

/// A thread that watches `started` (the start time in ms of the input being run, 0 between
/// runs): an input still running after `hang` seconds is saved as `dir/hang.bin` and the process
/// exits with status 2.
fn spawn_hang_watchdog(started: Arc<AtomicU64>, hang: u64, dir: PathBuf) {
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(200));
        let t = started.load(Ordering::SeqCst);
        if t != 0 && now_ms().saturating_sub(t) > hang * 1000 {
            let (p, n) = (
                CURRENT.load(Ordering::SeqCst),
                CURRENT_LEN.load(Ordering::SeqCst),
            );
            if !p.is_null() {
                // SAFETY: the input buffer is alive while its run is in progress.
                let bytes = unsafe { std::slice::from_raw_parts(p, n) };
                let _ = save(&dir, "hang.bin", bytes);
            }
            eprintln!(
                "facegan-fuzz: one input ran over {hang} s; saved as {}/hang.bin",
                dir.display()
            );
            std::process::exit(2);
        }
    });
}

fn fuzz_target(target: &str, a: &Args) -> Result<serde_json::Value> {
    let crash_dir = a.crashes.join(target);
    let corpus_dir = a.corpus.join(target);
    std::fs::create_dir_all(&crash_dir)
        .with_context(|| format!("{}: cannot create", crash_dir.display()))?;
    install_signal_handlers(&crash_dir)?;
    let scratch = tempfile::tempdir()?;
    let mut corpus = seeds::make(target, scratch.path())
        .with_context(|| format!("making the {target} seeds"))?;
    let seeded = corpus.len();
    corpus.extend(read_corpus(&corpus_dir));
    let mut cov = coverage::CoverageMap::new();
    let mut rng = ChaCha8Rng::seed_from_u64(a.seed ^ xxhash_rust::xxh3::xxh3_64(target.as_bytes()));
    let (mut execs, mut panics, mut added) = (0u64, 0u64, 0usize);
    let mut panic_sites = std::collections::BTreeSet::new();

    // The watchdog: a run that has not finished after hang_seconds saves its input and exits.
    let started = Arc::new(AtomicU64::new(0));
    spawn_hang_watchdog(started.clone(), a.hang_seconds, crash_dir.clone());

    let deadline = Instant::now() + Duration::from_secs(a.seconds);
    let mut i = 0usize;
    while Instant::now() < deadline {
        let input = if i < corpus.len() && execs < corpus.len() as u64 {
            corpus[i].clone() // every corpus entry once as it is
        } else {
            mutated_input(target, &corpus, &mut rng)
        };
        i += 1;
        cov.reset();
        started.store(now_ms(), Ordering::SeqCst);
        let result = run_one(target, &input, scratch.path());
        started.store(0, Ordering::SeqCst);
        execs += 1;
        match result {
            Ok(()) => {
                if cov.absorb() > 0 && execs > seeded as u64 {
                    let name = format!("{:016x}.bin", xxhash_rust::xxh3::xxh3_64(&input));
                    let _ = save(&corpus_dir, &name, &input);
                    corpus.push(input);
                    added += 1;
                }
            }
            Err(msg) => {
                panics += 1;
                let site = msg.lines().next().unwrap_or("").to_string();
                let name = format!("panic-{:016x}.bin", xxhash_rust::xxh3::xxh3_64(&input));
                let p = save(&crash_dir, &name, &input)?;
                if panic_sites.insert(site.clone()) {
                    eprintln!(
                        "facegan-fuzz {target}: panic \"{site}\"; input kept as {}",
                        p.display()
                    );
                }
            }
        }
    }
    // No fatal signal happened: drop the empty signal file.
    let _ = std::fs::remove_file(crash_dir.join("signal.bin"));
    Ok(serde_json::json!({
        "target": target,
        "seconds": a.seconds,
        "execs": execs,
        "execs_per_s": (execs as f64 / a.seconds.max(1) as f64).round(),
        "seeds": seeded,
        "corpus": corpus.len(),
        "corpus_added": added,
        "edges_instrumented": coverage::edges(),
        "edges_covered": cov.covered,
        "panics": panics,
        "panic_sites": panic_sites.into_iter().collect::<Vec<_>>(),
    }))
}

/// A mutation of a random corpus entry (crossed with another).
fn mutated_input(target: &str, corpus: &[Vec<u8>], rng: &mut ChaCha8Rng) -> Vec<u8> {
    let k = rng.random_range(0..corpus.len());
    let other = &corpus[rng.random_range(0..corpus.len())];
    let mut m = mutate::mutate(&corpus[k], other, rng);
    // Most shard mutations would only ever meet the checksums: half the time, reseal them so
    // the mutation reaches the header fields, the metadata and the payload.
    if target == "shard" && rng.random() {
        seeds::reseal_shard(&mut m);
    }
    m
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(1)
}

fn main() -> Result<()> {
    let a = Args::parse();
    let names: Vec<String> = if a.targets.is_empty() || a.targets.iter().any(|t| t == "all") {
        targets::TARGETS.iter().map(|s| s.to_string()).collect()
    } else {
        a.targets.clone()
    };
    for n in &names {
        if !targets::TARGETS.contains(&n.as_str()) {
            bail!(
                "unknown target {n:?}; choose from {}",
                targets::TARGETS.join(", ")
            );
        }
    }
    // Panics are expected inputs' business here: keep the default hook quiet.
    std::panic::set_hook(Box::new(|_| {}));
    cap_memory(a.max_memory_mb);
    if coverage::edges() == 0 {
        eprintln!(
            "facegan-fuzz: no coverage instrumentation (run it via `make fuzz`); mutating blind"
        );
    }
    let mut failed = false;
    for n in &names {
        let report = fuzz_target(n, &a)?;
        failed |= report["panics"].as_u64().unwrap_or(0) > 0;
        println!("{report}");
    }
    if failed {
        bail!(
            "panics found; their inputs are under {}",
            a.crashes.display()
        );
    }
    Ok(())
}
