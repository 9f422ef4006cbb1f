pub(crate) mod node;
pub(crate) mod shared;

#[cfg(feature = "orchestrator")]
pub mod orchestrator;
#[cfg(feature = "orchestrator")]
pub use orchestrator::*;
// facegan patch: entry points for a fuzzer.
#[cfg(feature = "orchestrator")]
pub mod fuzzing;

mod base;
pub use base::*;
