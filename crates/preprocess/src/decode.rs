//! Decoding one source file to RGB and resizing it to the shard's size.

use std::fmt;

use fast_image_resize::{images::Image, FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::DynamicImage;

/// Why a file was not kept. The `&'static str` names are the keys in the JSON report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    Unreadable(String),
    Empty,
    NotAnImage(String),
    Truncated(String),
    TooSmall { width: u32, height: u32 },
    ExactDuplicate { of: String },
    NearDuplicate { of: String, distance: u32 },
}

impl SkipReason {
    pub fn key(&self) -> &'static str {
        match self {
            SkipReason::Unreadable(_) => "unreadable",
            SkipReason::Empty => "empty",
            SkipReason::NotAnImage(_) => "not_an_image",
            SkipReason::Truncated(_) => "truncated",
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
    fn alg(self) -> ResizeAlg {
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
    let img: DynamicImage =
        image::load_from_memory_with_format(bytes, format).map_err(|e| match e {
            image::ImageError::Unsupported(u) => SkipReason::NotAnImage(u.to_string()),
            other => SkipReason::Truncated(other.to_string()),
        })?;
    Ok(match img {
        DynamicImage::ImageRgb8(rgb) => rgb,
        other => other.to_rgb8(),
    })
}

/// JPEG decoders fill a cut-off file with grey rather than fail, so look for the EOI marker
/// (`FF D9`) near the end (some writers append a few padding bytes after it).
fn has_jpeg_end_marker(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(4096)..];
    tail.windows(2).any(|w| w == [0xFF, 0xD9])
}

/// Halves an RGB image by averaging 2x2 blocks (odd last row/column dropped).
fn box_halve(src: &image::RgbImage) -> image::RgbImage {
    let (w, h) = (src.width() / 2, src.height() / 2);
    let sw = src.width() as usize * 3;
    let raw = src.as_raw();
    let mut out = vec![0u8; (w * h * 3) as usize];
    for (y, row) in out.chunks_exact_mut(w as usize * 3).enumerate() {
        let a = &raw[2 * y * sw..2 * y * sw + sw];
        let b = &raw[(2 * y + 1) * sw..(2 * y + 1) * sw + sw];
        for (x, px) in row.chunks_exact_mut(3).enumerate() {
            for (c, v) in px.iter_mut().enumerate() {
                let i = 6 * x + c;
                let sum = a[i] as u16 + a[i + 3] as u16 + b[i] as u16 + b[i + 3] as u16;
                *v = ((sum + 2) / 4) as u8;
            }
        }
    }
    image::RgbImage::from_raw(w, h, out).expect("buffer size")
}

/// Resizes (after cropping) an RGB image to `height x width`, returning HWC bytes.
///
/// Large reductions first halve the image with a 2x2 box average while it is still at least twice
/// the target size (as Pillow's `reducing_gap` does), then apply the filter: an antialiased
/// result at a fraction of the cost of a wide filter kernel.
pub fn resize_rgb(
    resizer: &mut Resizer,
    mut src: image::RgbImage,
    height: u32,
    width: u32,
    crop: Crop,
    filter: Filter,
) -> Vec<u8> {
    let (w, h) = src.dimensions();
    let (mut left, mut top, mut cw, mut ch) = crop.region(w, h, height, width);
    while filter != Filter::Nearest && cw / width as f64 >= 2.0 && ch / height as f64 >= 2.0 {
        src = box_halve(&src);
        (left, top, cw, ch) = (left / 2.0, top / 2.0, cw / 2.0, ch / 2.0);
    }
    let (w, h) = src.dimensions();
    let (cw, ch) = (cw.min(w as f64 - left), ch.min(h as f64 - top));
    let src = Image::from_vec_u8(w, h, src.into_raw(), PixelType::U8x3).expect("RGB buffer size");
    let mut dst = Image::new(width, height, PixelType::U8x3);
    let opts = ResizeOptions::new()
        .resize_alg(filter.alg())
        .crop(left, top, cw, ch);
    resizer
        .resize(&src, &mut dst, &opts)
        .expect("same pixel types always resize");
    dst.into_vec()
}

/// A 64-bit DCT perceptual hash (pHash) of an HWC RGB image: 32x32 grayscale by area
/// averaging, the 8x8 lowest DCT frequencies, one bit per coefficient above their median (the DC
/// term is left out). Robust to re-encoding and small resampling changes; near-duplicates have a
/// small Hamming distance.
pub fn perceptual_hash(pixels: &[u8], height: usize, width: usize) -> u64 {
    const N: usize = 32;
    let mut gray = [0f32; N * N];
    for gy in 0..N {
        let y0 = gy * height / N;
        let y1 = ((gy + 1) * height / N).max(y0 + 1);
        for gx in 0..N {
            let x0 = gx * width / N;
            let x1 = ((gx + 1) * width / N).max(x0 + 1);
            let mut sum = 0f32;
            for y in y0..y1 {
                for x in x0..x1 {
                    let p = &pixels[(y * width + x) * 3..(y * width + x) * 3 + 3];
                    sum += 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32;
                }
            }
            gray[gy * N + gx] = sum / ((y1 - y0) * (x1 - x0)) as f32;
        }
    }
    let mut cos = [[0f32; N]; 8];
    for (u, row) in cos.iter_mut().enumerate() {
        for (x, c) in row.iter_mut().enumerate() {
            *c = ((2 * x + 1) as f32 * u as f32 * std::f32::consts::PI / (2 * N) as f32).cos();
        }
    }
    // Row transform, then column transform, for the 8x8 low frequencies only.
    let mut rows = [[0f32; 8]; N];
    for y in 0..N {
        for u in 0..8 {
            rows[y][u] = (0..N).map(|x| cos[u][x] * gray[y * N + x]).sum();
        }
    }
    let mut coeffs = [0f32; 64];
    for v in 0..8 {
        for u in 0..8 {
            coeffs[v * 8 + u] = (0..N).map(|y| cos[v][y] * rows[y][u]).sum();
        }
    }
    let mut ac: Vec<f32> = coeffs[1..].to_vec();
    ac.sort_by(f32::total_cmp);
    let median = ac[ac.len() / 2];
    coeffs.iter().enumerate().skip(1).fold(
        0u64,
        |bits, (i, &c)| if c > median { bits | (1 << i) } else { bits },
    )
}

/// Hamming distance between two perceptual hashes.
pub fn hash_distance(a: u64, b: u64) -> u32 {
    (a ^ b).count_ones()
}
