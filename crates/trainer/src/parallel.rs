//! Data-parallel training on several devices of one machine, on Burn's collective engine
//! (`burn-collective`, feature `parallel`): one peer, a thread, per device.
//!
//! - Every peer holds the same networks (cloned from one, so their parameter ids agree) and
//!   takes its rows of every global batch: the same batches, in the same epoch order, as one
//!   device would train. Its latent noise is its rows of the global batch's noise.
//! - Before each optimizer step the gradients of D and of G are all-reduced (mean over peers),
//!   so the weights stay identical. BatchNorm normalises with each peer's own batch statistics
//!   (as PyTorch DDP without SyncBN), so the running statistics differ between peers: the
//!   leader's are the ones saved.
//! - Each step's statistics and the decision to stop (Ctrl-C, `--max-steps`, `--minutes`) are
//!   all-reduced too, so every peer stops at the same step; only the leader (peer 0) writes
//!   checkpoints, samples, metrics and probes.
//! - A peer that fails ends the others: [`run_peers`] resets the collective, which wakes every
//!   peer waiting in an all-reduce with an error, and reports the first failure by name.

use std::ops::Range;

use anyhow::{anyhow, Result};

/// One peer of a data-parallel run: its place among `count` peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub index: usize,
    pub count: usize,
}

impl Peer {
    /// Training on one device.
    pub const SOLO: Peer = Peer { index: 0, count: 1 };

    /// Peer 0 writes the run directory.
    pub fn is_leader(&self) -> bool {
        self.index == 0
    }

    pub fn is_solo(&self) -> bool {
        self.count == 1
    }

    /// This peer's rows of a global batch of `global_batch` (which the peer count divides).
    pub fn rows(&self, global_batch: usize) -> Range<usize> {
        let n = global_batch / self.count;
        self.index * n..(self.index + 1) * n
    }
}

/// Refuses a global batch the peer count does not divide (before anything is touched).
pub fn check_batch_divides(batch: usize, peers: usize) -> Result<()> {
    if peers == 0 || !batch.is_multiple_of(peers) {
        return Err(anyhow!(
            "a global batch of {batch} does not split evenly over {peers} devices; pick --batch \
             as a multiple of {peers} (each device takes batch / devices images of every batch)"
        ));
    }
    Ok(())
}

/// Where this process sits in a run over several machines (`--nodes`, `--node-rank`,
/// `--orchestrator`, `--node-address`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    pub nodes: usize,
    pub rank: usize,
    /// `ws://HOST:PORT` of `facegan orchestrator`.
    pub orchestrator: String,
    /// `ws://HOST:PORT` where the other nodes reach this one.
    pub node_address: String,
    /// The port this node's data service listens on, at the host of `node_address`.
    pub data_port: u16,
}

impl Cluster {
    /// Checks the flags. Addresses are `HOST:PORT`, with or without `ws://`; this node's
    /// address defaults to `127.0.0.1` at the orchestrator's port + 1 + rank.
    pub fn new(
        nodes: usize,
        rank: usize,
        orchestrator: &str,
        node_address: Option<&str>,
    ) -> Result<Self> {
        if nodes == 0 || rank >= nodes {
            return Err(anyhow!(
                "--node-rank {rank} with --nodes {nodes}: ranks run from 0 to {}",
                nodes.saturating_sub(1)
            ));
        }
        let (orchestrator, orch_port) = ws_address(orchestrator, "--orchestrator")?;
        let default_node = format!("127.0.0.1:{}", orch_port as usize + 1 + rank);
        let (node_address, data_port) =
            ws_address(node_address.unwrap_or(&default_node), "--node-address")?;
        Ok(Cluster {
            nodes,
            rank,
            orchestrator,
            node_address,
            data_port,
        })
    }
}

/// `HOST:PORT` or `ws://HOST:PORT` as `ws://HOST:PORT` (Burn needs the scheme: without it, it
/// retries the connection forever) and its port.
pub fn ws_address(s: &str, flag: &str) -> Result<(String, u16)> {
    let bare = s.strip_prefix("ws://").unwrap_or(s);
    let (host, port) = bare
        .rsplit_once(':')
        .ok_or_else(|| anyhow!("{flag} {s:?}: expected HOST:PORT"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| anyhow!("{flag} {s:?}: {port:?} is not a port number"))?;
    if host.is_empty() || port == 0 {
        return Err(anyhow!("{flag} {s:?}: expected HOST:PORT"));
    }
    Ok((format!("ws://{host}:{port}"), port))
}

/// The environment variable that may hold a several-machine run's shared token (instead of
/// `--token-file`).
pub const TOKEN_ENV: &str = "FACEGAN_CLUSTER_TOKEN";

/// The shared token of a several-machine run: the first line of `token_file`, else
/// [`TOKEN_ENV`], else none. An empty or unreadable token is an error that names its source.
pub fn read_token(token_file: Option<&std::path::Path>) -> Result<Option<String>> {
    let (token, source) = match token_file {
        Some(path) => (
            std::fs::read_to_string(path)
                .map_err(|e| anyhow!("--token-file {}: cannot read it: {e}", path.display()))?,
            format!("--token-file {}", path.display()),
        ),
        None => match std::env::var(TOKEN_ENV) {
            Ok(t) => (t, TOKEN_ENV.to_string()),
            Err(std::env::VarError::NotPresent) => return Ok(None),
            Err(e) => return Err(anyhow!("{TOKEN_ENV}: {e}")),
        },
    };
    let token = token.lines().next().unwrap_or("").trim().to_string();
    if token.len() < 16 {
        return Err(anyhow!(
            "{source}: the token must be at least 16 characters on its first line (it has {}); \
             make one with `head -c 32 /dev/urandom | base64 > cluster.token`",
            token.len()
        ));
    }
    if token.bytes().any(|b| !(0x21..0x7f).contains(&b)) {
        return Err(anyhow!(
            "{source}: the token must be printable ASCII without spaces (base64 is)"
        ));
    }
    Ok(Some(token))
}

/// Whether `ws://HOST:PORT` (or `HOST:PORT`) names a loopback host, reachable from this
/// machine only.
pub fn is_loopback(address: &str) -> bool {
    let bare = address.strip_prefix("ws://").unwrap_or(address);
    let host = bare.rsplit_once(':').map_or(bare, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Refuses to listen on `address` (given as `flag`) beyond this machine without a shared
/// token: anyone who reached the port could join, read or stall the run.
pub fn check_listen_access(address: &str, flag: &str, token: Option<&str>) -> Result<()> {
    if token.is_none() && !is_loopback(address) {
        return Err(anyhow!(
            "{flag} {address} is reachable from other machines, so every node and the \
             orchestrator need the same secret token: --token-file FILE or {TOKEN_ENV} (make one \
             with `head -c 32 /dev/urandom | base64 > cluster.token` and copy it to each \
             machine); only a loopback address (127.0.0.1) runs without one"
        ));
    }
    Ok(())
}

/// Ends the process with a message when armed and not fed in time. Burn's collective has no
/// timeouts: a node waiting for an orchestrator that is not there, or in an all-reduce with a
/// node that died, would wait forever. A blocked thread cannot be cancelled, so the watchdog
/// prints the reason and exits (status 3).
pub struct Watchdog {
    state: std::sync::Arc<std::sync::Mutex<(std::time::Instant, Option<String>)>>,
    timeout: std::time::Duration,
}

impl Watchdog {
    pub fn start(timeout: std::time::Duration) -> Self {
        let state = std::sync::Arc::new(std::sync::Mutex::new((std::time::Instant::now(), None)));
        let watched = state.clone();
        std::thread::spawn(move || loop {
            std::thread::sleep(std::time::Duration::from_millis(250));
            let guard = watched.lock().unwrap_or_else(|e| e.into_inner());
            if let (since, Some(why)) = &*guard {
                if since.elapsed() > timeout {
                    eprintln!("error: {why}");
                    std::process::exit(3);
                }
            }
        });
        Watchdog { state, timeout }
    }

    /// From now on, exit with `why` unless fed (or disarmed) within the timeout.
    pub fn arm(&self, why: String) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) =
            (std::time::Instant::now(), Some(why));
    }

    /// Progress: the timeout starts again.
    pub fn feed(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).0 = std::time::Instant::now();
    }

    pub fn disarm(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).1 = None;
    }

    pub fn timeout(&self) -> std::time::Duration {
        self.timeout
    }
}

#[cfg(feature = "parallel")]
pub use collective::*;

#[cfg(feature = "parallel")]
mod collective {
    use std::sync::mpsc;

    use anyhow::{anyhow, Result};
    use burn::collective::{
        all_reduce, finish_collective, register, reset_collective, AllReduceStrategy,
        CollectiveConfig, PeerId, ReduceOperation,
    };
    use burn::module::{Module, ModuleVisitor, Param, ParamId};
    use burn::optim::GradientsParams;
    use burn::tensor::backend::{AutodiffBackend, Backend};
    use burn::tensor::{Tensor, TensorPrimitive};

    use super::{Cluster, Peer};

    fn id(peer: Peer) -> PeerId {
        PeerId::from(peer.index)
    }

    /// Nanoseconds peer 0 has spent in all-reduces (waiting for the others included), for
    /// `bench-parallel`'s overhead figure.
    static LEADER_REDUCE_NANOS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

    /// Seconds peer 0 spent in all-reduces since the last call; resets the count.
    pub fn take_leader_reduce_seconds() -> f64 {
        LEADER_REDUCE_NANOS.swap(0, std::sync::atomic::Ordering::Relaxed) as f64 * 1e-9
    }

    fn timed<T>(peer: Peer, f: impl FnOnce() -> T) -> T {
        let t = std::time::Instant::now();
        let out = f();
        if peer.is_leader() {
            let ns = t.elapsed().as_nanos() as u64;
            LEADER_REDUCE_NANOS.fetch_add(ns, std::sync::atomic::Ordering::Relaxed);
        }
        out
    }

    /// Joins the collective: `local` peers in this process, and with a [`Cluster`] the same
    /// on every node, through the orchestrator. Blocks until all have joined (Burn retries an
    /// absent orchestrator forever: callers arm a [`Watchdog`]).
    pub fn join<B: Backend>(
        peer: Peer,
        local: usize,
        cluster: Option<&Cluster>,
        device: &B::Device,
    ) -> Result<()> {
        let mut config = CollectiveConfig::default()
            .with_num_devices(local)
            .with_local_all_reduce_strategy(AllReduceStrategy::Tree(2));
        if let Some(c) = cluster {
            let address = |s: &str| -> Result<burn_communication::Address> {
                s.parse().map_err(|e| anyhow!("bad address {s}: {e}"))
            };
            config = config
                .with_num_nodes(c.nodes as u32)
                .with_global_address(address(&c.orchestrator)?)
                .with_node_address(address(&c.node_address)?)
                .with_data_service_port(c.data_port)
                // Tree, not Burn's default ring: a ring cannot reduce a tensor shorter than
                // the node count (the step's stop vote has one element).
                .with_global_all_reduce_strategy(AllReduceStrategy::Tree(2));
        }
        register::<B>(id(peer), device.clone(), config)
            .map_err(|e| anyhow!("device {} could not join the others: {e:?}", peer.index))
    }

    /// Sets who may connect and how long anything waits, for this process's orchestrator or
    /// node: every connection must carry `token` (when given), and a connection's first
    /// message, a peer's tensor or sync and a connection attempt wait at most `idle_limit`.
    pub fn set_access(token: Option<String>, idle_limit: std::time::Duration) {
        burn_communication::access::set_token(token);
        burn_communication::access::set_idle_limit(Some(idle_limit));
    }

    /// Runs Burn's collective orchestrator on `listen` (`HOST:PORT`: that address only) until
    /// the process is interrupted: the meeting point of the nodes of a several-machine run.
    pub fn run_orchestrator(listen: &str) -> Result<()> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| anyhow!("cannot start the orchestrator's runtime: {e}"))?;
        // Burn logs nothing useful here; say where it listens.
        let token = if burn_communication::access::token().is_some() {
            "every connection must carry the token"
        } else {
            "no token: loopback only"
        };
        eprintln!("orchestrator listening on {listen} (ws; {token}); stop it with Ctrl-C");
        rt.block_on(burn_collective::start_global_orchestrator_at(
            listen.to_string(),
        ))
        .map_err(|e| anyhow!("orchestrator: cannot listen on {listen}: {e}"))
    }

    /// Every peer checks that all peers train the same run: a fingerprint of the config, the
    /// shard, the step they start from, the device count and the step/image limits, identical
    /// on every peer, and as many peers as each expects. Fingerprint bytes are summed with their
    /// squares (exact in f32 for up to 256 peers): all peers agree exactly when the variance is
    /// zero.
    pub fn check_same_run<B: Backend>(
        peer: Peer,
        fingerprint: u64,
        device: &B::Device,
    ) -> Result<()> {
        let bytes: Vec<f32> = (0..8)
            .map(|i| ((fingerprint >> (8 * i)) & 0xFF) as f32)
            .collect();
        let mut values = vec![1.0f32];
        values.extend(&bytes);
        values.extend(bytes.iter().map(|b| b * b));
        let sums = reduce(
            peer,
            Tensor::<B, 1>::from_floats(values.as_slice(), device),
            false,
        )
        .into_data()
        .to_vec::<f32>()
        .expect("f32");
        let peers = sums[0] as f64;
        let same = (0..8).all(|i| {
            let (sum, squares) = (sums[1 + i] as f64, sums[9 + i] as f64);
            peers * squares == sum * sum && sum == peers * bytes[i] as f64
        });
        if peers as usize != peer.count || !same {
            return Err(anyhow!(
                "the nodes do not train the same run: {} devices joined where this node expects \
                 {}, or their config, shard, device count, checkpoint step or --max-steps/\
                 --max-images differ (this is device {}); start every node with the same \
                 --preset/--config, --batch, --seed, --data, number of --devices, limits and run \
                 directory contents",
                peers,
                peer.count,
                peer.index
            ));
        }
        Ok(())
    }

    /// Leaves the collective at the end of training.
    pub fn leave<B: Backend>(peer: Peer) {
        let _ = finish_collective::<B>(id(peer));
    }

    /// Clears the collective: peers blocked in an all-reduce return with an error. Called
    /// before a parallel run, and when a peer fails so the others do not wait for it forever.
    pub fn reset<B: Backend>() {
        // Burn's reset panics when its collective server already died (a lost node can take
        // it down): then there is nothing left to wake.
        let _ = std::panic::catch_unwind(reset_collective::<B>);
    }

    /// The mean over peers of every gradient of `module` (identical on every peer afterwards).
    /// The gradients are flattened in the module's visiting order into one vector, reduced in
    /// one all-reduce, and put back: one collective operation per step and network instead
    /// of one per tensor, and an order that does not depend on parameter ids (which are
    /// random per process). A failed all-reduce (another peer gone) panics with a message;
    /// the supervisor reports it.
    pub fn mean_gradients<B: AutodiffBackend, M: Module<B>>(
        peer: Peer,
        grads: GradientsParams,
        module: &M,
    ) -> GradientsParams {
        if peer.is_solo() {
            return grads;
        }
        let mut take = Take::<B> {
            grads,
            taken: Vec::new(),
            flat: Vec::new(),
        };
        module.visit(&mut take);
        if take.flat.is_empty() {
            return take.grads;
        }
        let sizes: Vec<usize> = take.flat.iter().map(|t| t.dims()[0]).collect();
        let reduced = reduce(peer, Tensor::cat(take.flat, 0), true);
        let mut pieces = Vec::with_capacity(sizes.len());
        let mut at = 0;
        for n in sizes {
            pieces.push(reduced.clone().narrow(0, at, n));
            at += n;
        }
        let mut put = Put::<B> {
            grads: take.grads,
            taken: take.taken.into_iter().peekable(),
            pieces: pieces.into_iter(),
        };
        module.visit(&mut put);
        put.grads
    }

    /// Takes each gradient of a module out of `grads`, flattened, in visiting order.
    struct Take<B: AutodiffBackend> {
        grads: GradientsParams,
        taken: Vec<ParamId>,
        flat: Vec<Tensor<B::InnerBackend, 1>>,
    }

    impl<B: AutodiffBackend> ModuleVisitor<B> for Take<B> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if let Some(g) = self.grads.remove::<B::InnerBackend, D>(param.id) {
                let n = g.shape().num_elements();
                self.flat.push(g.reshape([n]));
                self.taken.push(param.id);
            }
        }
    }

    /// Puts the reduced pieces back, in the same visiting order, in their tensors' shapes.
    struct Put<B: AutodiffBackend> {
        grads: GradientsParams,
        taken: std::iter::Peekable<std::vec::IntoIter<ParamId>>,
        pieces: std::vec::IntoIter<Tensor<B::InnerBackend, 1>>,
    }

    impl<B: AutodiffBackend> ModuleVisitor<B> for Put<B> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if self.taken.peek() == Some(&param.id) {
                self.taken.next();
                let piece = self.pieces.next().expect("one piece per taken gradient");
                let dims: [usize; D] = param.val().dims();
                self.grads
                    .register::<B::InnerBackend, D>(param.id, piece.reshape(dims));
            }
        }
    }

    /// The mean (or sum) over peers of a tensor.
    pub fn reduce<B: Backend, const D: usize>(
        peer: Peer,
        t: Tensor<B, D>,
        mean: bool,
    ) -> Tensor<B, D> {
        if peer.is_solo() {
            return t;
        }
        let op = if mean {
            ReduceOperation::Mean
        } else {
            ReduceOperation::Sum
        };
        let out = timed(peer, || {
            all_reduce::<B>(id(peer), t.into_primitive().tensor(), op)
        })
        .unwrap_or_else(|e| lost(peer, e));
        Tensor::from_primitive(TensorPrimitive::Float(out))
    }

    /// Unwinds out of the step (which has no error path) with the reason; the supervisor turns
    /// it into this peer's error. `resume_unwind` skips the panic hook: no backtrace noise.
    fn lost<T>(peer: Peer, e: impl std::fmt::Debug) -> T {
        std::panic::resume_unwind(Box::new(format!(
            "device {}: an all-reduce with the other devices failed ({e:?}): another device stopped",
            peer.index
        )))
    }

    /// Runs one closure per peer, each on its own thread, and waits for all. When one fails
    /// (an error or a panic), the collective of backend `B` is reset so the others stop
    /// waiting for it; the first failure is returned, naming its device. Otherwise every
    /// peer's result, in peer order.
    pub fn run_peers<B: Backend, T: Send>(
        jobs: Vec<Box<dyn FnOnce() -> Result<T> + Send + '_>>,
    ) -> Result<Vec<T>> {
        let n = jobs.len();
        std::thread::scope(|s| {
            let (tx, rx) = mpsc::channel::<(usize, bool)>();
            let handles: Vec<_> = jobs
                .into_iter()
                .enumerate()
                .map(|(i, job)| {
                    let tx = tx.clone();
                    s.spawn(move || {
                        // Reports the peer's end even when it panics.
                        struct Report(mpsc::Sender<(usize, bool)>, usize, bool);
                        impl Drop for Report {
                            fn drop(&mut self) {
                                let _ = self.0.send((self.1, self.2));
                            }
                        }
                        let mut report = Report(tx, i, false);
                        let out = job();
                        report.2 = out.is_ok();
                        out
                    })
                })
                .collect();
            drop(tx);
            let mut first_failure = None;
            for (i, ok) in rx.iter().take(n) {
                if !ok && first_failure.is_none() {
                    first_failure = Some(i);
                    reset::<B>();
                }
            }
            let results: Vec<Result<T>> = handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|p| {
                        let msg = p
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_else(|| "panicked".into());
                        Err(anyhow!("{msg}"))
                    })
                })
                .collect();
            if let Some(i) = first_failure {
                let mut results = results;
                let err = results
                    .swap_remove(i)
                    .err()
                    .unwrap_or_else(|| anyhow!("device {i} stopped"));
                if n == 1 {
                    return Err(err);
                }
                return Err(err.context(format!(
                    "peer {i} of the {n} in this process failed, so the others were stopped"
                )));
            }
            results.into_iter().collect()
        })
    }
}

/// Without the `parallel` feature there is only one peer: the reductions are the identity.
#[cfg(not(feature = "parallel"))]
pub use solo_only::*;

#[cfg(not(feature = "parallel"))]
mod solo_only {
    use burn::module::Module;
    use burn::optim::GradientsParams;
    use burn::tensor::backend::{AutodiffBackend, Backend};
    use burn::tensor::Tensor;

    use super::Peer;

    pub fn mean_gradients<B: AutodiffBackend, M: Module<B>>(
        peer: Peer,
        grads: GradientsParams,
        _module: &M,
    ) -> GradientsParams {
        assert!(peer.is_solo(), "built without the `parallel` feature");
        grads
    }

    pub fn reduce<B: Backend, const D: usize>(
        peer: Peer,
        t: Tensor<B, D>,
        _mean: bool,
    ) -> Tensor<B, D> {
        assert!(peer.is_solo(), "built without the `parallel` feature");
        t
    }
}
