//! Batches from a memory-mapped shard: the train split, reshuffled every epoch with a seeded RNG,
//! full batches only (the last partial batch of each epoch is dropped), converted from HWC to
//! CHW u8 on a background thread that stays two batches ahead of the device.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use facegan_shard::{Shard, Split};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The order in which the train images of `epoch` are visited: a pure function of (seed, epoch),
/// so a resumed run sees exactly the batches it would have seen.
pub fn epoch_order(train: &[usize], seed: u64, epoch: usize) -> Vec<usize> {
    let mut order = train.to_vec();
    let mut rng = ChaCha8Rng::seed_from_u64(
        seed ^ 0xDA7A_0000_0000 ^ (epoch as u64).wrapping_mul(0x9E37_79B9),
    );
    order.shuffle(&mut rng);
    order
}

/// Number of full batches per epoch.
pub fn batches_per_epoch(train_len: usize, batch: usize) -> usize {
    train_len / batch
}

/// Copies images `ids` from the shard into one `[N, C, H, W]` u8 buffer.
pub fn gather_chw(shard: &Shard, ids: &[usize]) -> Vec<u8> {
    let (h, w) = (shard.height(), shard.width());
    let plane = h * w;
    let mut out = vec![0u8; ids.len() * 3 * plane];
    for (dst, &id) in out.chunks_exact_mut(3 * plane).zip(ids) {
        let src = shard.image(id);
        let (r, rest) = dst.split_at_mut(plane);
        let (g, b) = rest.split_at_mut(plane);
        for (i, px) in src.chunks_exact(3).enumerate() {
            r[i] = px[0];
            g[i] = px[1];
            b[i] = px[2];
        }
    }
    out
}

/// One batch ready for upload.
pub struct HostBatch {
    /// Index of the batch within its epoch.
    pub index: usize,
    /// `[N, 3, H, W]` u8.
    pub pixels: Vec<u8>,
}

/// Streams the batches `start..` of one epoch from a background thread.
pub struct Prefetcher {
    rx: Receiver<HostBatch>,
    handle: Option<JoinHandle<()>>,
}

impl Prefetcher {
    pub fn start(shard: Arc<Shard>, order: Vec<usize>, batch: usize, start: usize) -> Self {
        let (tx, rx) = sync_channel(2);
        let handle = std::thread::Builder::new()
            .name("facegan-prefetch".into())
            .spawn(move || {
                for (index, ids) in order.chunks_exact(batch).enumerate().skip(start) {
                    let pixels = gather_chw(&shard, ids);
                    if tx.send(HostBatch { index, pixels }).is_err() {
                        return; // the trainer stopped early
                    }
                }
            })
            .expect("spawn prefetch thread");
        Prefetcher {
            rx,
            handle: Some(handle),
        }
    }
}

impl Iterator for Prefetcher {
    type Item = HostBatch;
    fn next(&mut self) -> Option<HostBatch> {
        self.rx.recv().ok()
    }
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        // Dropping the receiver ends the thread at its next send.
        let (_tx, rx) = sync_channel(0);
        drop(std::mem::replace(&mut self.rx, rx));
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Train-split indices of a shard.
pub fn train_indices(shard: &Shard) -> Vec<usize> {
    shard.indices(Split::Train)
}

/// A `[N, 3, H, W]` u8 batch as floats in [0, 1] at `factor` times smaller in each dimension
/// (the mean of each `factor x factor` block): progressive growing's real images at a smaller
/// size. Also returns the smaller height and width.
pub fn shrink_chw(
    pixels: &[u8],
    n: usize,
    h: usize,
    w: usize,
    factor: usize,
) -> (Vec<f32>, usize, usize) {
    let (sh, sw) = (h / factor, w / factor);
    let scale = 1.0 / (255.0 * (factor * factor) as f32);
    let mut out = vec![0f32; n * 3 * sh * sw];
    for (dst, src) in out
        .chunks_exact_mut(sh * sw)
        .zip(pixels.chunks_exact(h * w))
    {
        for (y, row) in dst.chunks_exact_mut(sw).enumerate() {
            for (x, v) in row.iter_mut().enumerate() {
                let mut sum = 0u32;
                for dy in 0..factor {
                    let line = &src[(y * factor + dy) * w + x * factor..][..factor];
                    sum += line.iter().map(|&p| u32::from(p)).sum::<u32>();
                }
                *v = sum as f32 * scale;
            }
        }
    }
    (out, sh, sw)
}

/// The real images progressive growing trains on at one level: the batch shrunk to the level's
/// size and, while that size fades in, blended with the next smaller size upsampled (nearest),
/// `alpha x sharp + (1 - alpha) x coarse`, as G's images are blended. `factor` is the level's
/// shrink factor (1: the full size). Returns `[N, 3, h, w]` floats and `h`, `w`.
pub fn real_images_at(
    pixels: &[u8],
    n: usize,
    [h, w]: [usize; 2],
    factor: usize,
    alpha: f32,
) -> (Vec<f32>, usize, usize) {
    let (mut sharp, sh, sw) = shrink_chw(pixels, n, h, w, factor);
    if alpha < 1.0 {
        let (coarse, _, cw) = shrink_chw(pixels, n, h, w, 2 * factor);
        for (plane, coarse) in sharp
            .chunks_exact_mut(sh * sw)
            .zip(coarse.chunks_exact(sh * sw / 4))
        {
            for (i, v) in plane.iter_mut().enumerate() {
                let c = coarse[(i / sw / 2) * cw + (i % sw) / 2];
                *v = alpha * *v + (1.0 - alpha) * c;
            }
        }
    }
    (sharp, sh, sw)
}
