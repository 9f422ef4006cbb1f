//! Helpers shared by the model's test binaries.

/// Burn's CPU backend keeps one process-global RNG. Tests run on parallel threads of one
/// process, so a test that seeds it and then draws inputs or weights from it takes a turn:
/// otherwise another test's draws interleave and the inputs change from run to run.
static BACKEND_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Holds the backend RNG for the caller until the guard is dropped.
pub fn rng_turn() -> std::sync::MutexGuard<'static, ()> {
    BACKEND_RNG.lock().unwrap_or_else(|e| e.into_inner())
}
