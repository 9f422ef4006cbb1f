//! What a worker does with a batch of consecutive files: read and hash each file, decode it,
//! check its size, resize it (the batch's same-size images as one run) and take the perceptual
//! hash of the result.

use crate::decode::{decode_rgb, SkipReason};
use crate::phash::perceptual_hash;
use crate::resize::BatchResizer;
use crate::{PreprocessConfig, SourceFile};

/// The result of decoding one file.
pub(crate) struct Decoded {
    pub content_hash: u64,
    pub orig_width: u32,
    pub orig_height: u32,
    /// `height x width` HWC bytes.
    pub pixels: Vec<u8>,
    pub phash: u64,
}

/// Reads, hashes and decodes one file, checking its size.
fn read_and_decode(
    file: &SourceFile,
    cfg: &PreprocessConfig,
) -> Result<(u64, image::RgbImage), SkipReason> {
    let bytes = std::fs::read(&file.path).map_err(|e| SkipReason::Unreadable(e.to_string()))?;
    let content_hash = xxhash_rust::xxh3::xxh3_64(&bytes);
    let rgb = decode_rgb(&bytes)?;
    drop(bytes);
    let (w, h) = rgb.dimensions();
    if w < cfg.min_size || h < cfg.min_size {
        return Err(SkipReason::TooSmall {
            width: w,
            height: h,
        });
    }
    Ok((content_hash, rgb))
}

/// Decodes a few consecutive files and resizes them as one run where their sizes agree (see
/// [`BatchResizer`]; the pixels are the same as one at a time).
pub(crate) fn process_batch(
    batch: &mut BatchResizer,
    files: &[SourceFile],
    cfg: &PreprocessConfig,
) -> Vec<Result<Decoded, SkipReason>> {
    let image_len = cfg.height as usize * cfg.width as usize * 3;
    let mut results: Vec<Result<Decoded, SkipReason>> = Vec::with_capacity(files.len());
    // Results whose pixels the batch's current run will deliver, in order.
    let mut waiting: Vec<usize> = Vec::new();
    let flush = |batch: &mut BatchResizer,
                 results: &mut Vec<Result<Decoded, SkipReason>>,
                 waiting: &mut Vec<usize>| {
        let mut to = waiting.drain(..);
        batch.flush(|px| {
            if let Some(Ok(d)) = to.next().map(|k| &mut results[k]) {
                d.pixels = px;
            }
        });
    };
    for file in files {
        let (content_hash, rgb) = match read_and_decode(file, cfg) {
            Ok(x) => x,
            Err(reason) => {
                results.push(Err(reason));
                continue;
            }
        };
        let (w, h) = rgb.dimensions();
        let mut d = Decoded {
            content_hash,
            orig_width: w,
            orig_height: h,
            pixels: Vec::new(),
            phash: 0,
        };
        if !batch.fits(w, h) && !batch.is_empty() {
            flush(batch, &mut results, &mut waiting);
        }
        if batch.fits(w, h) {
            batch.push(rgb.as_raw(), w, h);
            waiting.push(results.len());
        } else {
            d.pixels = vec![0u8; image_len];
            batch.resize_one(rgb.as_raw(), w, h, &mut d.pixels);
        }
        results.push(Ok(d));
    }
    flush(batch, &mut results, &mut waiting);
    for d in results.iter_mut().flatten() {
        d.phash = perceptual_hash(&d.pixels, cfg.height as usize, cfg.width as usize);
    }
    results
}
