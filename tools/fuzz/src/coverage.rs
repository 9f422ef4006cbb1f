//! Edge coverage from LLVM's SanitizerCoverage on stable Rust. `make fuzz` builds with
//! `-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=3
//! -Cllvm-args=-sanitizer-coverage-inline-8bit-counters`: every edge of every crate built from
//! source gets an 8-bit counter in one section, and a module constructor hands the section to
//! [`__sanitizer_cov_8bit_counters_init`] below. No per-edge callback runs, so this file's own
//! (instrumented) code cannot recurse into itself.
//!
//! Built without those flags (e.g. by `make test`), the constructor never runs, [`edges`] is
//! empty and the fuzzer falls back to plain mutation.

use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

static COUNTERS: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static COUNTERS_LEN: AtomicUsize = AtomicUsize::new(0);

/// Called once per instrumented module at start-up with its counter section.
///
/// # Safety
/// Called by the compiler-inserted constructor with a valid `[start, stop)` range that lives for
/// the whole process.
#[no_mangle]
pub unsafe extern "C" fn __sanitizer_cov_8bit_counters_init(start: *mut u8, stop: *mut u8) {
    // A statically linked binary has one instrumented module (one section); keep the largest.
    let len = (stop as usize).saturating_sub(start as usize);
    if len > COUNTERS_LEN.load(Ordering::Relaxed) {
        COUNTERS.store(start, Ordering::Relaxed);
        COUNTERS_LEN.store(len, Ordering::Relaxed);
    }
}

/// The live counters (empty without instrumentation).
fn counters() -> &'static mut [u8] {
    let (p, n) = (
        COUNTERS.load(Ordering::Relaxed),
        COUNTERS_LEN.load(Ordering::Relaxed),
    );
    if p.is_null() {
        return &mut [];
    }
    // SAFETY: the range came from the constructor and lives as long as the process; the fuzzer
    // runs one input at a time on one thread.
    unsafe { std::slice::from_raw_parts_mut(p, n) }
}

/// Number of instrumented edges (0 without instrumentation).
pub fn edges() -> usize {
    counters().len()
}

/// Edges seen so far across all inputs.
pub struct CoverageMap {
    seen: Vec<bool>,
    pub covered: usize,
}

impl CoverageMap {
    pub fn new() -> Self {
        CoverageMap {
            seen: vec![false; edges()],
            covered: 0,
        }
    }

    /// Zeroes the counters before an input runs.
    pub fn reset(&self) {
        counters().fill(0);
    }

    /// Folds the counters of the input just run into the map; returns how many edges were new.
    pub fn absorb(&mut self) -> usize {
        let mut new = 0;
        let c = counters();
        // Most counters are 0: skip them eight at a time.
        for (k, word) in c.chunks(8).enumerate() {
            if word.iter().all(|&b| b == 0) {
                continue;
            }
            for (j, &hit) in word.iter().enumerate() {
                let seen = &mut self.seen[k * 8 + j];
                if hit != 0 && !*seen {
                    *seen = true;
                    new += 1;
                }
            }
        }
        self.covered += new;
        new
    }
}
