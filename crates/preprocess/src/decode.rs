//! Decoding one source file to 8-bit RGB ([`decode_rgb`]), why a file is skipped
//! ([`SkipReason`]), and the resize options ([`Filter`], [`Crop`]).
//!
//! The resizer and the perceptual hash, once in this file, live in [`crate::resize`] and
//! [`crate::phash`]; they are re-exported here so that `decode::resize_rgb` and the others keep
//! their paths.

use std::fmt;

use fast_image_resize::{FilterType, ResizeAlg};
use image::DynamicImage;

pub use crate::phash::{hash_distance, perceptual_hash};
pub use crate::resize::{resize_rgb, resize_rgb_into, BatchResizer, ResizeScratch};

/// Why a file was not kept. The `&'static str` names are the keys in the JSON report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    Unreadable(String),
    Empty,
    NotAnImage(String),
    Truncated(String),
    /// The header declares more pixels than the decoder's memory limit allows.
    TooLarge(String),
    TooSmall {
        width: u32,
        height: u32,
    },
    ExactDuplicate {
        of: String,
    },
    NearDuplicate {
        of: String,
        distance: u32,
    },
}

impl SkipReason {
    pub fn key(&self) -> &'static str {
        match self {
            SkipReason::Unreadable(_) => "unreadable",
            SkipReason::Empty => "empty",
            SkipReason::NotAnImage(_) => "not_an_image",
            SkipReason::Truncated(_) => "truncated",
            SkipReason::TooLarge(_) => "too_large",
            SkipReason::TooSmall { .. } => "too_small",
            SkipReason::ExactDuplicate { .. } => "exact_duplicate",
            SkipReason::NearDuplicate { .. } => "near_duplicate",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::Unreadable(e) => write!(f, "cannot read the file: {e}"),
            SkipReason::Empty => write!(f, "zero-byte file"),
            SkipReason::NotAnImage(e) => write!(f, "not a decodable image: {e}"),
            SkipReason::Truncated(e) => write!(f, "truncated or corrupt image data: {e}"),
            SkipReason::TooLarge(e) => write!(
                f,
                "declares a size too large to decode (a decompression bomb?): {e}"
            ),
            SkipReason::TooSmall { width, height } => {
                write!(f, "image is {width}x{height}, below the minimum size")
            }
            SkipReason::ExactDuplicate { of } => write!(f, "same bytes as {of}"),
            SkipReason::NearDuplicate { of, distance } => {
                write!(f, "looks like {of} (perceptual-hash distance {distance})")
            }
        }
    }
}

/// The resize filter (all are antialiased when downscaling).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    Nearest,
    Box,
    Bilinear,
    Hamming,
    CatmullRom,
    Mitchell,
    Lanczos3,
}

impl Filter {
    pub const NAMES: &'static str =
        "nearest, box, bilinear, hamming, catmullrom, mitchell, lanczos3";

    pub fn parse(s: &str) -> Option<Filter> {
        Some(match s.to_ascii_lowercase().as_str() {
            "nearest" => Filter::Nearest,
            "box" => Filter::Box,
            "bilinear" => Filter::Bilinear,
            "hamming" => Filter::Hamming,
            "catmullrom" | "bicubic" => Filter::CatmullRom,
            "mitchell" => Filter::Mitchell,
            "lanczos3" | "lanczos" => Filter::Lanczos3,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            Filter::Nearest => "nearest",
            Filter::Box => "box",
            Filter::Bilinear => "bilinear",
            Filter::Hamming => "hamming",
            Filter::CatmullRom => "catmullrom",
            Filter::Mitchell => "mitchell",
            Filter::Lanczos3 => "lanczos3",
        }
    }
    pub(crate) fn alg(self) -> ResizeAlg {
        match self {
            Filter::Nearest => ResizeAlg::Nearest,
            Filter::Box => ResizeAlg::Convolution(FilterType::Box),
            Filter::Bilinear => ResizeAlg::Convolution(FilterType::Bilinear),
            Filter::Hamming => ResizeAlg::Convolution(FilterType::Hamming),
            Filter::CatmullRom => ResizeAlg::Convolution(FilterType::CatmullRom),
            Filter::Mitchell => ResizeAlg::Convolution(FilterType::Mitchell),
            Filter::Lanczos3 => ResizeAlg::Convolution(FilterType::Lanczos3),
        }
    }
}

/// Which part of the source frame is kept before resizing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crop {
    /// Squeeze the whole frame to the target size (the seed's behaviour).
    None,
    /// A centred box `N` pixels wide whose height follows the target's aspect ratio
    /// (for a square target, the common CelebA `148x148` face crop). Clamped to the frame.
    Center(u32),
}

impl Crop {
    pub fn parse(s: &str) -> Option<Crop> {
        if s == "none" {
            return Some(Crop::None);
        }
        let n: u32 = s.strip_prefix("center:")?.parse().ok()?;
        (n > 0).then_some(Crop::Center(n))
    }
    pub fn name(self) -> String {
        match self {
            Crop::None => "none".into(),
            Crop::Center(n) => format!("center:{n}"),
        }
    }
    /// The (left, top, width, height) box in a `w x h` source for a `th x tw` target.
    pub fn region(self, w: u32, h: u32, th: u32, tw: u32) -> (f64, f64, f64, f64) {
        match self {
            Crop::None => (0.0, 0.0, w as f64, h as f64),
            Crop::Center(n) => {
                let cw = (n as f64).min(w as f64);
                let ch = (cw * th as f64 / tw as f64).min(h as f64);
                let cw = cw.min(ch * tw as f64 / th as f64);
                ((w as f64 - cw) / 2.0, (h as f64 - ch) / 2.0, cw, ch)
            }
        }
    }
}

/// The most pixels an input image may declare (50 megapixels, beyond any face photo): a larger
/// header is refused before anything is decoded, so a small file that expands to gigabytes
/// (a decompression bomb) costs neither the memory nor the seconds.
pub const MAX_DECODED_PIXELS: u64 = 50_000_000;

/// Decodes an encoded image (JPEG or PNG) to 8-bit RGB, converting grayscale, CMYK, 16-bit and
/// alpha images. Returns a skip reason rather than an error for bad data.
pub fn decode_rgb(bytes: &[u8]) -> Result<image::RgbImage, SkipReason> {
    if bytes.is_empty() {
        return Err(SkipReason::Empty);
    }
    let format = image::guess_format(bytes).map_err(|e| SkipReason::NotAnImage(e.to_string()))?;
    if format == image::ImageFormat::Jpeg && !has_jpeg_end_marker(bytes) {
        return Err(SkipReason::Truncated(
            "JPEG has no end-of-image marker".into(),
        ));
    }
    check_declared_size(bytes, format)?;
    let img: DynamicImage =
        image::load_from_memory_with_format(bytes, format).map_err(|e| match e {
            image::ImageError::Unsupported(u) => SkipReason::NotAnImage(u.to_string()),
            image::ImageError::Limits(l) => SkipReason::TooLarge(l.to_string()),
            other => SkipReason::Truncated(other.to_string()),
        })?;
    Ok(match img {
        DynamicImage::ImageRgb8(rgb) => rgb,
        other => other.to_rgb8(),
    })
}

/// Refuses an image whose header declares more than [`MAX_DECODED_PIXELS`] (reading the header
/// only). A header that cannot be read is left for the decoder to report.
fn check_declared_size(bytes: &[u8], format: image::ImageFormat) -> Result<(), SkipReason> {
    let reader = image::ImageReader::with_format(std::io::Cursor::new(bytes), format);
    if let Ok((w, h)) = reader.into_dimensions() {
        let pixels = w as u64 * h as u64;
        if pixels > MAX_DECODED_PIXELS {
            return Err(SkipReason::TooLarge(format!(
                "{w}x{h} = {pixels} pixels, over the limit of {MAX_DECODED_PIXELS}"
            )));
        }
    }
    Ok(())
}

/// JPEG decoders fill a cut-off file with grey rather than fail, so look for the EOI marker
/// (`FF D9`) near the end (some writers append a few padding bytes after it).
fn has_jpeg_end_marker(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(4096)..];
    tail.windows(2).any(|w| w == [0xFF, 0xD9])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PNG whose header declares 60,000 x 60,000 pixels (10.8 GB of RGB)
    /// is skipped as too large, not reported as truncated.
    #[test]
    fn a_decompression_bomb_is_reported_as_too_large() {
        let png = crate::synth::png_declaring(60_000, 60_000);
        match decode_rgb(&png) {
            Err(e @ SkipReason::TooLarge(_)) => {
                assert_eq!(e.key(), "too_large");
                assert!(e.to_string().contains("too large"), "{e}");
            }
            other => panic!("expected too_large, got {other:?}"),
        }
    }

    /// A PNG declaring 20,000 x 20,000 pixels (400 megapixels, a few hundred bytes on disk) is
    /// refused from its header, before any pixel is decoded; one just under the limit is not
    /// refused for its size.
    #[test]
    fn an_image_over_the_pixel_limit_is_refused_before_decoding() {
        let png = crate::synth::png_declaring(20_000, 20_000);
        match decode_rgb(&png) {
            Err(SkipReason::TooLarge(e)) => {
                assert!(e.contains("20000x20000 = 400000000 pixels"), "{e}")
            }
            other => panic!("expected too_large, got {other:?}"),
        }
        let side = (MAX_DECODED_PIXELS as f64).sqrt() as u32 - 1;
        let under = crate::synth::png_declaring(side, side);
        assert!(
            check_declared_size(&under, image::ImageFormat::Png).is_ok(),
            "{side}x{side} is within the limit"
        );
    }
}
