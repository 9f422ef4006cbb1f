//! facegan-bench: measuring the trainer, kept out of its core.
//!
//! - [`throughput`]: training-step throughput measured like the PyTorch twin
//!   (`tools/torch_dcgan.py`), on one device or several (`bench-train`), the GPU kernel warm-up
//!   (`warmup`) and the per-op forward/backward profile (`bench-train --profile`).
//! - [`seed_check`]: the `seed` preset's step dumped for the tutorial's Keras code
//!   (`make check-seed`, `tools/keras_seed_oracle.py`); `tests/seed_step.rs` pins the first
//!   step to Keras' own numbers without Python.

// CI fails on a dependency the crate no longer uses (unit-test builds also see dev-dependencies).
#![cfg_attr(not(test), deny(unused_crate_dependencies))]

pub mod seed_check;
pub mod throughput;
