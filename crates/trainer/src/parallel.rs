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

    use super::Peer;

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

    /// Joins the collective of `peer.count` local peers (blocks until all have joined).
    pub fn join<B: Backend>(peer: Peer, device: &B::Device) -> Result<()> {
        let config = CollectiveConfig::default()
            .with_num_devices(peer.count)
            .with_local_all_reduce_strategy(AllReduceStrategy::Tree(2));
        register::<B>(id(peer), device.clone(), config)
            .map_err(|e| anyhow!("device {} could not join the others: {e:?}", peer.index))
    }

    /// Leaves the collective at the end of training.
    pub fn leave<B: Backend>(peer: Peer) {
        let _ = finish_collective::<B>(id(peer));
    }

    /// Clears the collective: peers blocked in an all-reduce return with an error. Called
    /// before a parallel run, and when a peer fails so the others do not wait for it forever.
    pub fn reset<B: Backend>() {
        reset_collective::<B>();
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
        .unwrap_or_else(|e| panic!("{}", lost(peer, e)));
        Tensor::from_primitive(TensorPrimitive::Float(out))
    }

    fn lost(peer: Peer, e: impl std::fmt::Debug) -> String {
        format!(
            "device {}: the all-reduce with the other devices failed ({e:?}): another device stopped",
            peer.index
        )
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
                .enumerate()
                .map(|(i, h)| {
                    h.join().unwrap_or_else(|p| {
                        let msg = p
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_else(|| "panicked".into());
                        Err(anyhow!("device {i}: {msg}"))
                    })
                })
                .collect();
            if let Some(i) = first_failure {
                let mut results = results;
                let err = results
                    .swap_remove(i)
                    .err()
                    .unwrap_or_else(|| anyhow!("device {i} stopped"));
                return Err(err.context(format!(
                    "device {i} of {n} failed, so the others were stopped"
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
