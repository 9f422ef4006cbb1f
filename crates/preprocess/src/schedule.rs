//! The in-order scheduler: files are decoded in parallel on the rayon pool, a few at a time, and
//! handed to one sink strictly in file order, within a bounded window (see [`decode_in_order`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use anyhow::Result;

use crate::batch::{process_batch, Decoded};
use crate::decode::SkipReason;
use crate::resize::BatchResizer;
use crate::{PreprocessConfig, SourceFile};

/// Files decoded ahead of the one being written, at most; bounds memory.
const WINDOW: usize = 256;

/// Consecutive files a worker takes at once: their resizes share one set of filter coefficients.
const BATCH: usize = 8;

/// What receives each file's result, in file order: `(file index, result)`.
pub(crate) type Sink<'a> = dyn FnMut(usize, Result<Decoded, SkipReason>) -> Result<()> + Send + 'a;

/// Decodes `files` on the rayon pool and hands each result to `sink` in file order. Each worker
/// takes the next [`BATCH`] files as soon as it is free (no chunk barriers) and, after decoding
/// them, files the results; if no other worker is already doing it, it then hands every result
/// that is now next in order to `sink` itself. So no extra writer thread competes for the cores,
/// a worker never waits for another one's writing, and only the last files are written after the
/// last decode ends. A worker waits only while it is [`WINDOW`] files ahead of the hand-over,
/// which bounds memory.
/// Returns `Ok(false)` when `stop` was set before every file was handed over, and the first
/// error of `sink` (after which no more files are decoded).
pub(crate) fn decode_in_order(
    files: &[SourceFile],
    cfg: &PreprocessConfig,
    stop: &AtomicBool,
    sink: &mut Sink,
) -> Result<bool> {
    let scheduler = Scheduler {
        files,
        cfg,
        stop,
        next: AtomicUsize::new(0),
        state: Mutex::new(InOrder {
            pending: HashMap::new(),
            handed: 0,
            waiting: 0,
            abandoned: false,
            error: None,
            writing: false,
        }),
        room: Condvar::new(),
        sink: Mutex::new(sink),
    };
    rayon::broadcast(|_| scheduler.work());
    let st = scheduler
        .state
        .into_inner()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(e) = st.error {
        return Err(e);
    }
    Ok(st.handed == files.len())
}

/// The in-order hand-over state shared by the decode workers.
struct InOrder {
    /// Results decoded ahead of `handed`, by file index.
    pending: HashMap<usize, Result<Decoded, SkipReason>>,
    /// Files handed to the sink so far (all those before this index).
    handed: usize,
    /// Workers waiting for room in the window.
    waiting: usize,
    /// Set on a sink error or a worker panic: everyone stops.
    abandoned: bool,
    error: Option<anyhow::Error>,
    /// A worker is handing results to the sink (one at a time, in order).
    writing: bool,
}

/// What the workers of one [`decode_in_order`] call share.
struct Scheduler<'a, 's> {
    files: &'a [SourceFile],
    cfg: &'a PreprocessConfig,
    stop: &'a AtomicBool,
    /// The first file of the next batch to take.
    next: AtomicUsize,
    state: Mutex<InOrder>,
    /// Signalled when the hand-over moves on (or is abandoned).
    room: Condvar,
    /// Only the worker that set `writing` locks it, so it is never contended.
    sink: Mutex<&'a mut Sink<'s>>,
}

/// Where a worker's decoded batch went (see [`Scheduler::file_results`]).
enum Filed {
    /// Into `pending`, and this worker is now the one handing results to the sink.
    ToHandOver,
    /// Into `pending`, for the worker already handing results over.
    ForTheWriter,
    /// Nowhere: the run was abandoned.
    Abandoned,
}

impl Scheduler<'_, '_> {
    fn lock(&self) -> MutexGuard<'_, InOrder> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One worker: takes batches until none are left, `stop` is set or the run is abandoned.
    fn work(&self) {
        // A panicking worker releases the others before unwinding.
        struct OnPanic<'a>(&'a Mutex<InOrder>, &'a Condvar);
        impl Drop for OnPanic<'_> {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    self.0.lock().unwrap_or_else(|e| e.into_inner()).abandoned = true;
                    self.1.notify_all();
                }
            }
        }
        let _guard = OnPanic(&self.state, &self.room);
        let cfg = self.cfg;
        let mut batch = BatchResizer::new(cfg.height, cfg.width, cfg.crop, cfg.filter, BATCH);
        loop {
            let first = self.next.fetch_add(BATCH, Ordering::Relaxed);
            if first >= self.files.len() || self.stop.load(Ordering::SeqCst) {
                return;
            }
            let end = (first + BATCH).min(self.files.len());
            if !self.wait_for_room(first) {
                return;
            }
            let results = process_batch(&mut batch, &self.files[first..end], cfg);
            match self.file_results(first, results) {
                Filed::Abandoned => return,
                Filed::ForTheWriter => continue,
                Filed::ToHandOver => {
                    if !self.hand_over() {
                        return;
                    }
                }
            }
        }
    }

    /// Waits while the batch starting at `first` is [`WINDOW`] files or more ahead of the
    /// hand-over. Returns false when the run was abandoned.
    fn wait_for_room(&self, first: usize) -> bool {
        let mut st = self.lock();
        while first >= st.handed + WINDOW && !st.abandoned {
            st.waiting += 1;
            st = self.room.wait(st).unwrap_or_else(|e| e.into_inner());
            st.waiting -= 1;
        }
        !st.abandoned
    }

    /// Files the results of the batch starting at `first` for the hand-over, and takes the
    /// hand-over on if no worker has it.
    fn file_results(&self, first: usize, results: Vec<Result<Decoded, SkipReason>>) -> Filed {
        let mut st = self.lock();
        if st.abandoned {
            return Filed::Abandoned;
        }
        st.pending.extend((first..).zip(results));
        if st.writing {
            return Filed::ForTheWriter;
        }
        st.writing = true;
        Filed::ToHandOver
    }

    /// Hands every result that is next in order to the sink, until the next one is not decoded
    /// yet. Returns false when the sink failed (the run is then abandoned, its error kept).
    fn hand_over(&self) -> bool {
        let mut sink = self.sink.lock().unwrap_or_else(|e| e.into_inner());
        let mut written = false;
        loop {
            let (index, result) = {
                let mut st = self.lock();
                if written {
                    st.handed += 1;
                    if st.waiting > 0 {
                        self.room.notify_all();
                    }
                }
                let index = st.handed;
                match st.pending.remove(&index) {
                    Some(result) if !st.abandoned => (index, result),
                    _ => {
                        st.writing = false;
                        return true;
                    }
                }
            };
            if let Err(e) = (*sink)(index, result) {
                let mut st = self.lock();
                st.error = Some(e);
                st.abandoned = true;
                st.writing = false;
                self.room.notify_all();
                return false;
            }
            written = true;
        }
    }
}
