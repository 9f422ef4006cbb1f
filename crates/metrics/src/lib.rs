//! Image-quality metrics, below every stage that scores images: the trainer's live quality curve
//! and the eval stage both use [`swd`] with the same seed, holdout sample and latents, so when
//! they score the same number of images (eval's `--n` and the trainer's `eval_images` both cap
//! at the holdout's size) the number a run prints while training is the number `facegan eval`
//! reports for the same weights.
//!
//! - [`swd`]: sliced Wasserstein distance between Laplacian-pyramid patch sets (ProGAN's).
//! - [`fid`]: FID, KID and precision/recall on Inception features, as pytorch-fid and
//!   clean-fid compute them.
//! - [`bench`]: `facegan bench-swd`: the SWD timed on synthetic image sets.

// CI fails on a dependency the crate no longer uses (unit-test builds also see dev-dependencies).
#![cfg_attr(not(test), deny(unused_crate_dependencies))]

pub mod bench;
pub mod fid;
pub mod swd;
