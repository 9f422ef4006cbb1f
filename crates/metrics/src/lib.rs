//! Image-quality metrics, below every stage that scores images: the trainer's live quality curve
//! and the eval stage both use [`swd`], so the number a run prints while training is the number
//! `facegan eval` reports (same patches, same directions, same scale).
//!
//! - [`swd`]: sliced Wasserstein distance between Laplacian-pyramid patch sets (ProGAN's).

pub mod swd;
