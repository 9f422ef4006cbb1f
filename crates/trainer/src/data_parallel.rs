//! Data-parallel training: one [`Session`] per device (threads of this process), and with a
//! [`Cluster`] one process per machine, the gradients all-reduced before every optimizer step
//! on Burn's collective engine (see [`crate::parallel`]).

use std::sync::Arc;

use anyhow::Result;
use burn::tensor::backend::AutodiffBackend;
use facegan_shard::Shard;

use crate::options::{TrainOptions, TrainOutcome, TrainSummary};
use crate::parallel::{self, Cluster, Peer, Watchdog};
use crate::plan::{plan_run, RunPlan};
use crate::run::{lock_existing, lock_new, train};
use crate::session::Session;

/// Trains on several devices of backend `B` at once, one peer (thread) per device, with the
/// gradients all-reduced before every optimizer step (see [`crate::parallel`]); with a
/// [`Cluster`], on several machines, each running this with its own devices. One device on
/// one machine is [`train`]. The global batch is the config's; each device of each node takes
/// `batch / (devices x nodes)` of it. Only node 0 touches the run directory; the other nodes
/// read the checkpoint they resume from from theirs (a shared or copied folder).
pub fn train_parallel<B: AutodiffBackend>(
    opts: &TrainOptions,
    devices: &[B::Device],
    cluster: Option<&Cluster>,
    peer_timeout: std::time::Duration,
) -> Result<TrainSummary> {
    let (nodes, rank) = cluster.map_or((1, 0), |c| (c.nodes, c.rank));
    let local = devices.len().max(1);
    if local == 1 && nodes == 1 {
        let device = devices.first().cloned().unwrap_or_default();
        return train::<B>(opts, &device);
    }
    let total = local * nodes;
    let shard = Arc::new(Shard::open(&opts.data)?);
    shard.verify()?;
    let lock = if rank == 0 {
        lock_existing(&opts.run)?
    } else {
        None
    };
    let plan = plan_run(opts, &shard)?;
    parallel::check_batch_divides(plan.cfg.batch, total)?;
    let fingerprint = run_fingerprint(&plan, &shard, local, opts);
    let _lock = if rank == 0 {
        Some(lock_new(lock, &opts.run)?)
    } else {
        None
    };
    let first = match first_session::<B>(opts, shard, plan, &devices[0], rank, local, total)? {
        Begin::Train(session) => *session,
        Begin::NothingToDo(summary) => return Ok(*summary),
    };
    let others: Vec<Session<B>> = (1..local)
        .map(|i| first.follower(rank * local + i, &devices[i]))
        .collect();
    // Burn's collective has no timeouts: a watchdog ends this process when joining or a step
    // takes longer than the timeout (an absent orchestrator, a node that died).
    let watchdog = cluster.map(|c| Arc::new(start_watchdog(c, peer_timeout)));
    let others_ranks: Vec<String> = (0..nodes)
        .filter(|&r| r != rank)
        .map(|r| r.to_string())
        .collect();
    let sessions = std::iter::once(first).chain(others).collect();
    let done = run_sessions::<B>(
        sessions,
        devices,
        cluster,
        fingerprint,
        watchdog.clone(),
        &others_ranks.join(", "),
    );
    if let Some(w) = &watchdog {
        w.disarm();
    }
    let mut done = done.map_err(|e| match cluster {
        Some(_) if format!("{e:#}").contains("all-reduce") => e.context(format!(
            "node {rank}: lost node(s) {} (stopped, or the network between us failed); \
             stopping too, node 0's last checkpoint is kept",
            others_ranks.join(", ")
        )),
        _ => e,
    })?;
    let (first, outcome) = done.swap_remove(0);
    if rank == 0 {
        first.finish(outcome)
    } else {
        Ok(first.into_summary(outcome))
    }
}

/// How the first peer of a node begins: a session to train, or the summary of a run that has
/// nothing left to train (its budget or count already reached).
enum Begin<'a, B: AutodiffBackend> {
    Train(Box<Session<'a, B>>),
    NothingToDo(Box<TrainSummary>),
}

/// The session of this node's first peer: node 0's leader, which writes the run directory,
/// or another node's silent copy of it.
fn first_session<'a, B: AutodiffBackend>(
    opts: &'a TrainOptions,
    shard: Arc<Shard>,
    plan: RunPlan,
    device: &'a B::Device,
    rank: usize,
    local: usize,
    total: usize,
) -> Result<Begin<'a, B>> {
    if rank != 0 {
        let peer = Peer {
            index: rank * local,
            count: total,
        };
        let silent = Session::<B>::start_silent(opts, shard, plan, device, peer)?;
        // Node 0 stops here too (the same checkpoint, so the same spent budget).
        if silent.limit_reached() {
            let step = silent.state.step;
            return Ok(Begin::NothingToDo(Box::new(
                silent.into_summary(TrainOutcome::Stopped { step }),
            )));
        }
        return Ok(Begin::Train(Box::new(silent)));
    }
    let mut leader = Session::<B>::start(opts, shard, plan, device)?;
    if leader.limit_reached_before_start() {
        let step = leader.state.step;
        return Ok(Begin::NothingToDo(Box::new(
            leader.into_summary(TrainOutcome::Stopped { step }),
        )));
    }
    leader.lead(total);
    let nodes = total / local;
    crate::run_dir::print_and_log(
        &opts.run,
        &format!(
            "data-parallel over {total} devices ({nodes} node(s) x {local}): {} images of each batch of {} per device, gradients averaged every step",
            leader.cfg_batch() / total,
            leader.cfg_batch()
        ),
    );
    Ok(Begin::Train(Box::new(leader)))
}

/// A watchdog armed for joining the cluster (see [`Watchdog`]).
fn start_watchdog(c: &Cluster, peer_timeout: std::time::Duration) -> Watchdog {
    let w = Watchdog::start(peer_timeout);
    w.arm(format!(
        "node {}: could not reach the orchestrator at {} and the other {} node(s) within {} s; \
         is `facegan orchestrator --listen ...` running there, with the same token as this \
         node, and did every node start (or one stop at its start with an error)?",
        c.rank,
        c.orchestrator,
        c.nodes - 1,
        peer_timeout.as_secs()
    ));
    w
}

/// Runs every local session on its own thread (joined to the collective, checked to train the
/// same run), until all finish or one fails (then all stop); returns each with its outcome.
fn run_sessions<'a, B: AutodiffBackend>(
    sessions: Vec<Session<'a, B>>,
    devices: &[B::Device],
    cluster: Option<&Cluster>,
    fingerprint: u64,
    watchdog: Option<Arc<Watchdog>>,
    others_ranks: &str,
) -> Result<Vec<(Session<'a, B>, TrainOutcome)>> {
    type Job<'s, T> = Box<dyn FnOnce() -> Result<T> + Send + 's>;
    let local = sessions.len();
    let rank = cluster.map_or(0, |c| c.rank);
    parallel::reset::<B::InnerBackend>();
    let mut jobs: Vec<Job<(Session<B>, TrainOutcome)>> = Vec::new();
    for (i, mut session) in sessions.into_iter().enumerate() {
        let device = devices[i].clone();
        let watchdog = watchdog.clone();
        let others_ranks = others_ranks.to_string();
        jobs.push(Box::new(move || {
            let peer = session.peer();
            parallel::join::<B::InnerBackend>(peer, local, cluster, &device)?;
            parallel::check_same_run::<B::InnerBackend>(peer, fingerprint, &device)?;
            if let Some(w) = &watchdog {
                if i == 0 {
                    w.arm(format!(
                        "node {rank}: no training step finished for {} s: node(s) {others_ranks} stopped or cannot be reached; stopping (the last checkpoint of node 0 is kept)",
                        w.timeout().as_secs()
                    ));
                }
                session.set_heartbeat(w.clone());
            }
            let outcome = session.train_epochs();
            parallel::leave::<B::InnerBackend>(peer);
            Ok((session, outcome?))
        }));
    }
    parallel::run_peers::<B::InnerBackend, _>(jobs)
}

/// What every node must agree on: the config, the shard (size and count), the step the run
/// starts from, and `--max-steps`/`--max-images` (each node stops at them without a vote, so
/// nodes with different counts would leave the others waiting in an all-reduce).
fn run_fingerprint(plan: &RunPlan, shard: &Shard, devices: usize, opts: &TrainOptions) -> u64 {
    let step = plan.resume.as_ref().map_or(0, |(_, s)| s.step);
    let text = format!(
        "{}|{}|{}x{}|{:016x}|{}|{}|{:?}|{:?}",
        plan.cfg.to_toml(),
        shard.len(),
        shard.height(),
        shard.width(),
        shard.meta().payload_checksum,
        step,
        devices,
        opts.max_steps,
        opts.max_images,
    );
    xxhash_rust::xxh3::xxh3_64(text.as_bytes())
}
