//! Helpers shared by the model's test binaries.

/// Burn's CPU backend keeps one process-global RNG. Tests run on parallel threads of one
/// process, so a test that seeds it and then draws inputs or weights from it takes a turn:
/// otherwise another test's draws interleave and the inputs change from run to run.
static BACKEND_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Holds the backend RNG for the caller until the guard is dropped.
pub fn rng_turn() -> std::sync::MutexGuard<'static, ()> {
    BACKEND_RNG.lock().unwrap_or_else(|e| e.into_inner())
}

/// Asserts that `got` is a reference's numbers (`want`, computed by PyTorch) within
/// `tolerance`, naming the first element that is not.
#[allow(dead_code)] // not every test binary compares against PyTorch
pub fn assert_matches_pytorch(got: &[f32], want: &[f32], tolerance: f32) {
    assert_eq!(got.len(), want.len(), "element count");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() < tolerance,
            "element {i}: {a} against PyTorch's {b}"
        );
    }
}

/// Two generators drawn from the same backend seed, one per config (the caller holds
/// [`rng_turn`]): a variant's extra layers drawn last leave the others as the plain model's.
#[allow(dead_code)] // used by the tests of G's optional layers
pub fn generators_from_one_seed<B: burn::tensor::backend::Backend>(
    seed: u64,
    [first, second]: [&facegan_model::ModelConfig; 2],
    device: &B::Device,
) -> [facegan_model::Generator<B>; 2] {
    [first, second].map(|cfg| {
        B::seed(device, seed);
        facegan_model::Generator::new(cfg, device)
    })
}

/// The CPU fast path's counters at one moment ([`facegan_model::ops::fast_path_calls`],
/// [`facegan_model::ops::fallbacks`]), to check the ops run since then.
#[allow(dead_code)] // used by the tests of networks that must train on the fast path
pub struct FastPathMark {
    fast: u64,
    fallbacks: u64,
}

#[allow(dead_code)]
impl FastPathMark {
    pub fn now() -> Self {
        FastPathMark {
            fast: facegan_model::ops::fast_path_calls(),
            fallbacks: facegan_model::ops::fallbacks(),
        }
    }

    /// Asserts that the CPU kernels ran since the mark and no op fell back to Burn's; `what`
    /// names the case in the message.
    pub fn assert_fast_since(&self, what: &str) {
        let fast = facegan_model::ops::fast_path_calls() - self.fast;
        let fallbacks = facegan_model::ops::fallbacks() - self.fallbacks;
        assert!(
            fast > 0 && fallbacks == 0,
            "{what}: {fast} fast calls, {fallbacks} fallbacks"
        );
    }
}
