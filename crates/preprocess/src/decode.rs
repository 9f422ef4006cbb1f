//! Decoding one source file to RGB and resizing it to the shard's size.

use std::fmt;

use fast_image_resize::{
    images::{Image, ImageRef},
    FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer,
};
use image::DynamicImage;

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
            image::ImageError::Limits(l) => SkipReason::TooLarge(l.to_string()),
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

/// Per-thread scratch space for [`resize_rgb_into`]: the fast_image_resize [`Resizer`] and the
/// buffers of the 2x2 box reduction, reused from one image to the next.
#[derive(Default)]
pub struct ResizeScratch {
    resizer: Resizer,
    halves: [Vec<u8>; 2],
    row_sum: Vec<u16>,
    row_avg: Vec<u8>,
}

impl ResizeScratch {
    pub fn new() -> Self {
        Self::default()
    }
}

/// Halves a `sw x sh` RGB image into `out` (resized to fit) by averaging 2x2 blocks, rounding half
/// up, `(a + b + c + d + 2) / 4` (odd last row/column dropped). Returns the new size.
///
/// Each output row is made in three passes written for the auto-vectoriser: the two source rows
/// summed as u16, then every byte averaged with the byte one pixel (3 bytes) to its right, then the
/// even pixels picked out.
///
/// On x86-64 CPUs with AVX2 a hand-vectorised version (`box_halve_avx2`) is picked at run time;
/// the result is the same.
fn box_halve_into(
    src: &[u8],
    sw: usize,
    sh: usize,
    out: &mut Vec<u8>,
    row_sum: &mut Vec<u16>,
    row_avg: &mut Vec<u8>,
) -> (usize, usize) {
    let (w, h) = (sw / 2, sh / 2);
    // Every byte is overwritten, so the buffer is only resized (no clearing).
    out.resize(w * h * 3, 0);
    box_halve_strided(src, sw, sh, out, w * 3, row_sum, row_avg);
    (w, h)
}

/// [`box_halve_into`] writing output row `y` at `dst[y * dst_stride..]` (`w * 3` bytes).
fn box_halve_strided(
    src: &[u8],
    sw: usize,
    sh: usize,
    dst: &mut [u8],
    dst_stride: usize,
    row_sum: &mut Vec<u16>,
    row_avg: &mut Vec<u8>,
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above); the function checks its bounds.
        return unsafe { box_halve_avx2(src, sw, sh, dst, dst_stride) };
    }
    box_halve_portable(src, sw, sh, dst, dst_stride, row_sum, row_avg)
}

/// [`box_halve_strided`] with AVX2: four output pixels per step, each made from 24 bytes of both
/// source rows. Within each 128-bit lane (12 source bytes = 4 pixels; the second lane starts 12
/// bytes after the first) a byte shuffle puts the even pixels' bytes in the low half and the odd
/// pixels' bytes in the high half; widened to u16, the two halves of both rows add up to the 2x2
/// sums, which are rounded, narrowed and stored as 6 bytes per lane. The same arithmetic as the
/// portable version, so the same bytes (a test checks it); the rest of each row is done plainly.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn box_halve_avx2(src: &[u8], sw: usize, sh: usize, dst: &mut [u8], dst_stride: usize) {
    use std::arch::x86_64::*;
    let (w, h) = (sw / 2, sh / 2);
    if w == 0 {
        return;
    }
    let stride = sw * 3;
    // Vector steps per row: each reads 28 bytes from byte 24k of both source rows and writes
    // 14 bytes from byte 12k of the output row (the last 2 are the next pixel's, rewritten
    // later), so it stops while at least one pixel is left after it.
    let steps = ((w - 1) / 4).min(stride.saturating_sub(4) / 24);
    let mask = _mm256_setr_epi8(
        0, 1, 2, 6, 7, 8, -128, -128, 3, 4, 5, 9, 10, 11, -128, -128, //
        0, 1, 2, 6, 7, 8, -128, -128, 3, 4, 5, 9, 10, 11, -128, -128,
    );
    let zero = _mm256_setzero_si256();
    let two = _mm256_set1_epi16(2);
    for y in 0..h {
        let a = &src[2 * y * stride..][..stride];
        let b = &src[(2 * y + 1) * stride..][..stride];
        let out = &mut dst[y * dst_stride..][..w * 3];
        for k in 0..steps {
            // SAFETY: AVX2 is enabled here; the loads read a[24k..24k + 28] and b[..] (checked
            // by the slicing below: 24k + 28 <= stride by `steps`), the stores write
            // out[12k..12k + 14] (checked likewise: 4k + 4 < w by `steps`).
            let load = |row: &[u8]| {
                let p = row[24 * k..24 * k + 28].as_ptr();
                let v = _mm256_castsi128_si256(_mm_loadu_si128(p as *const __m128i));
                let v = _mm256_inserti128_si256(v, _mm_loadu_si128(p.add(12) as *const __m128i), 1);
                let v = _mm256_shuffle_epi8(v, mask);
                _mm256_add_epi16(_mm256_unpacklo_epi8(v, zero), _mm256_unpackhi_epi8(v, zero))
            };
            let sum = _mm256_add_epi16(_mm256_add_epi16(load(a), load(b)), two);
            let bytes = _mm256_packus_epi16(_mm256_srli_epi16(sum, 2), zero);
            let o = out[12 * k..12 * k + 14].as_mut_ptr();
            _mm_storel_epi64(o as *mut __m128i, _mm256_castsi256_si128(bytes));
            _mm_storel_epi64(o.add(6) as *mut __m128i, _mm256_extracti128_si256(bytes, 1));
        }
        for x in steps * 4..w {
            for c in 0..3 {
                let at = |row: &[u8], i: usize| row[6 * x + i + c] as u16;
                let sum = at(a, 0) + at(a, 3) + at(b, 0) + at(b, 3);
                out[3 * x + c] = ((sum + 2) >> 2) as u8;
            }
        }
    }
}

#[inline(always)]
fn box_halve_portable(
    src: &[u8],
    sw: usize,
    sh: usize,
    dst: &mut [u8],
    dst_stride: usize,
    row_sum: &mut Vec<u16>,
    row_avg: &mut Vec<u8>,
) {
    let (w, h) = (sw / 2, sh / 2);
    let n = w * 6; // source bytes of one row that are used
    row_sum.resize(n + 3, 0);
    row_sum[n..].fill(0);
    row_avg.resize(n, 0);
    if w == 0 {
        return;
    }
    let stride = sw * 3;
    for y in 0..h {
        let out_row = &mut dst[y * dst_stride..][..w * 3];
        let a = &src[2 * y * stride..][..n];
        let b = &src[(2 * y + 1) * stride..][..n];
        for ((s, &a), &b) in row_sum[..n].iter_mut().zip(a).zip(b) {
            *s = a as u16 + b as u16;
        }
        // row_avg[i] = average of the 2x2 block whose top-left byte is i; only the bytes of even
        // pixels are used (the last 3 read the zero padding and are never used).
        for ((r, &s0), &s1) in row_avg.iter_mut().zip(&row_sum[..n]).zip(&row_sum[3..]) {
            *r = ((s0 + s1 + 2) >> 2) as u8;
        }
        // Pick the even pixels: 4-byte copies, each 4th byte overwritten by the next copy (all
        // within the row), then the last pixel's 3 bytes.
        for x in 0..w - 1 {
            let v: [u8; 4] = row_avg[6 * x..6 * x + 4].try_into().expect("4 bytes");
            out_row[3 * x..3 * x + 4].copy_from_slice(&v);
        }
        let x = w - 1;
        out_row[3 * x..3 * x + 3].copy_from_slice(&row_avg[6 * x..6 * x + 3]);
    }
}

/// Resizes (after cropping) an RGB image to `height x width`, returning HWC bytes.
/// See [`resize_rgb_into`], which this wraps.
pub fn resize_rgb(
    resizer: &mut Resizer,
    src: image::RgbImage,
    height: u32,
    width: u32,
    crop: Crop,
    filter: Filter,
) -> Vec<u8> {
    let mut scratch = ResizeScratch {
        resizer: std::mem::take(resizer),
        ..Default::default()
    };
    let mut out = vec![0u8; height as usize * width as usize * 3];
    let (w, h) = src.dimensions();
    resize_rgb_into(
        &mut scratch,
        src.as_raw(),
        w,
        h,
        height,
        width,
        crop,
        filter,
        &mut out,
    );
    *resizer = scratch.resizer;
    out
}

/// Resizes (after cropping) the `w x h` RGB image `src` to `height x width` HWC bytes in `out`.
///
/// Large reductions first halve the image with a 2x2 box average while it is still at least twice
/// the target size (as Pillow's `reducing_gap` does), then apply the filter: an antialiased
/// result at a fraction of the cost of a wide filter kernel.
#[allow(clippy::too_many_arguments)]
pub fn resize_rgb_into(
    scratch: &mut ResizeScratch,
    src: &[u8],
    w: u32,
    h: u32,
    height: u32,
    width: u32,
    crop: Crop,
    filter: Filter,
    out: &mut [u8],
) {
    assert_eq!(src.len(), w as usize * h as usize * 3, "RGB buffer size");
    let ResizeScratch {
        resizer,
        halves,
        row_sum,
        row_avg,
    } = scratch;
    let (mut w, mut h) = (w as usize, h as usize);
    let (mut left, mut top, mut cw, mut ch) = crop.region(w as u32, h as u32, height, width);
    // Which of `halves` holds the current image (none: still `src`).
    let mut current: Option<usize> = None;
    while filter != Filter::Nearest && cw / width as f64 >= 2.0 && ch / height as f64 >= 2.0 {
        let [a, b] = &mut *halves;
        (w, h) = match current {
            None => box_halve_into(src, w, h, a, row_sum, row_avg),
            Some(0) => box_halve_into(a, w, h, b, row_sum, row_avg),
            Some(_) => box_halve_into(b, w, h, a, row_sum, row_avg),
        };
        current = Some(current.map_or(0, |c| 1 - c));
        (left, top, cw, ch) = (left / 2.0, top / 2.0, cw / 2.0, ch / 2.0);
    }
    let src = current.map_or(src, |c| &halves[c][..]);
    let (cw, ch) = (cw.min(w as f64 - left), ch.min(h as f64 - top));
    let src = ImageRef::new(w as u32, h as u32, src, PixelType::U8x3).expect("RGB buffer size");
    let mut dst =
        Image::from_slice_u8(width, height, out, PixelType::U8x3).expect("output buffer size");
    let opts = ResizeOptions::new()
        .resize_alg(filter.alg())
        .crop(left, top, cw, ch);
    resizer
        .resize(&src, &mut dst, &opts)
        .expect("same pixel types always resize");
}

/// Where an image stands after the box halvings: its size and the crop box in it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Prepared {
    w: usize,
    h: usize,
    halvings: u32,
    left: f64,
    top: f64,
    cw: f64,
    ch: f64,
}

impl Prepared {
    /// The geometry [`resize_rgb_into`] works out for a `w x h` source.
    fn new(w: u32, h: u32, height: u32, width: u32, crop: Crop, filter: Filter) -> Prepared {
        let (mut w, mut h, mut halvings) = (w as usize, h as usize, 0);
        let (mut left, mut top, mut cw, mut ch) = crop.region(w as u32, h as u32, height, width);
        while filter != Filter::Nearest && cw / width as f64 >= 2.0 && ch / height as f64 >= 2.0 {
            (w, h, halvings) = (w / 2, h / 2, halvings + 1);
            (left, top, cw, ch) = (left / 2.0, top / 2.0, cw / 2.0, ch / 2.0);
        }
        let (cw, ch) = (cw.min(w as f64 - left), ch.min(h as f64 - top));
        Prepared {
            w,
            h,
            halvings,
            left,
            top,
            cw,
            ch,
        }
    }

    /// Whether fast_image_resize runs both of its passes (vertical, then horizontal) for it.
    fn two_passes(&self, height: u32, width: u32, filter: Filter) -> bool {
        filter != Filter::Nearest
            && (width as f64 != self.cw || self.left != self.left.round())
            && (height as f64 != self.ch || self.top != self.top.round())
    }
}

/// Transposes `rows` rows of `cols` RGB pixels, read from the start of `src` (rows `src_stride`
/// pixels apart), into `cols` rows of `rows` pixels written from the start of `dst` (rows
/// `dst_stride` pixels apart): pixel `(y, x)` goes to `(x, y)`.
///
/// On x86-64 CPUs with AVX2, 4x4-pixel blocks move through SIMD registers (each pixel widened to
/// 4 bytes, a 4x4 transpose of 32-bit lanes, narrowed back); the rest, and other CPUs, move
/// pixel by pixel. Both move the same bytes; a test checks it.
fn transpose_rgb(
    src: &[u8],
    src_stride: usize,
    rows: usize,
    cols: usize,
    dst: &mut [u8],
    dst_stride: usize,
) {
    if rows == 0 || cols == 0 {
        return;
    }
    assert!(src_stride >= cols && src.len() >= ((rows - 1) * src_stride + cols) * 3);
    assert!(dst_stride >= rows && dst.len() >= ((cols - 1) * dst_stride + rows) * 3);
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above), and the sizes were checked above
        // as `transpose_rgb_avx2` requires.
        let (rb, cb) = unsafe { transpose_rgb_avx2(src, src_stride, rows, cols, dst, dst_stride) };
        // What the 4x4 blocks left: the columns from `cb` on, then the rows from `rb` on.
        transpose_rgb_scalar(src, src_stride, 0..rows, cb..cols, dst, dst_stride);
        transpose_rgb_scalar(src, src_stride, rb..rows, 0..cb, dst, dst_stride);
        return;
    }
    transpose_rgb_scalar(src, src_stride, 0..rows, 0..cols, dst, dst_stride);
}

/// [`transpose_rgb`] for the source rows `ys` and columns `xs`, pixel by pixel: blocks of 8
/// columns, each source row giving 24 contiguous bytes spread over 8 output rows that are each
/// written front to back.
fn transpose_rgb_scalar(
    src: &[u8],
    src_stride: usize,
    ys: std::ops::Range<usize>,
    xs: std::ops::Range<usize>,
    dst: &mut [u8],
    dst_stride: usize,
) {
    const BLOCK: usize = 8;
    for x0 in xs.clone().step_by(BLOCK) {
        let width = BLOCK.min(xs.end - x0);
        for y in ys.clone() {
            let from = &src[(y * src_stride + x0) * 3..][..width * 3];
            for (k, px) in from.chunks_exact(3).enumerate() {
                let at = ((x0 + k) * dst_stride + y) * 3;
                dst[at..at + 3].copy_from_slice(px);
            }
        }
    }
}

/// The 4x4 blocks of [`transpose_rgb`]: whole blocks only, and only in row bands whose 16-byte
/// loads stay inside `src`. Returns the rows and columns they covered, `(rb, cols / 4 * 4)`,
/// where `rb <= rows / 4 * 4` is a multiple of 4; the caller moves the rest.
///
/// # Safety
/// The CPU must support AVX2, and `src`, `dst` must hold the pixels described in
/// [`transpose_rgb`] (its asserts).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn transpose_rgb_avx2(
    src: &[u8],
    src_stride: usize,
    rows: usize,
    cols: usize,
    dst: &mut [u8],
    dst_stride: usize,
) -> (usize, usize) {
    use std::arch::x86_64::*;
    let expand = _mm_setr_epi8(0, 1, 2, -1, 3, 4, 5, -1, 6, 7, 8, -1, 9, 10, 11, -1);
    let compact = _mm_setr_epi8(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1);
    let cb = cols / 4 * 4;
    if cb == 0 {
        return (0, 0);
    }
    let mut rb = rows / 4 * 4;
    // A block's loads read 16 bytes from its 12: the last row band's blocks may end past `src`.
    while rb > 0 && ((rb - 1) * src_stride + cb - 4) * 3 + 16 > src.len() {
        rb -= 4;
    }
    for x in (0..cb).step_by(4) {
        for y in (0..rb).step_by(4) {
            // SAFETY: rows y..y + 4 <= rb are inside `src` with 16 bytes from pixel x (by `rb`);
            // output rows x..x + 4 <= cols are inside `dst`. A 16-byte store from pixel y stays
            // inside its row when 3y + 16 <= 3 rows (its last 4 bytes belong to pixels y + 4
            // and y + 5, written later); otherwise exactly the block's 12 bytes are stored.
            let row = |i: usize| {
                let p = src.as_ptr().add(((y + i) * src_stride + x) * 3);
                _mm_shuffle_epi8(_mm_loadu_si128(p as *const __m128i), expand)
            };
            let (r0, r1, r2, r3) = (row(0), row(1), row(2), row(3));
            let (t0, t1) = (_mm_unpacklo_epi32(r0, r1), _mm_unpacklo_epi32(r2, r3));
            let (t2, t3) = (_mm_unpackhi_epi32(r0, r1), _mm_unpackhi_epi32(r2, r3));
            let columns = [
                _mm_unpacklo_epi64(t0, t1),
                _mm_unpackhi_epi64(t0, t1),
                _mm_unpacklo_epi64(t2, t3),
                _mm_unpackhi_epi64(t2, t3),
            ];
            for (k, column) in columns.into_iter().enumerate() {
                let v = _mm_shuffle_epi8(column, compact);
                let p = dst.as_mut_ptr().add(((x + k) * dst_stride + y) * 3);
                if 3 * y + 16 <= 3 * rows {
                    _mm_storeu_si128(p as *mut __m128i, v);
                } else {
                    _mm_storel_epi64(p as *mut __m128i, v);
                    (p.add(8) as *mut i32).write_unaligned(_mm_extract_epi32(v, 2));
                }
            }
        }
    }
    (rb, cb)
}

/// Resizes runs of same-size images together, with the same result as [`resize_rgb_into`] for
/// each, but computing fast_image_resize's filter coefficients once per run instead of once per
/// image (for 178x218 faces that was about a third of the resize time), and running both passes
/// as vertical ones.
///
/// fast_image_resize resizes 8-bit images in two passes, vertical then horizontal, each rounding
/// to u8. A run's images, box-halved as usual, are put side by side in one wide image, which one
/// vertical-only resize takes to the target height (a vertical pass never mixes columns). The
/// results are then transposed, each image's columns becoming rows, again side by side, and a
/// second vertical-only resize takes them to the target width; transposing back gives the
/// images. The coefficients and the integer arithmetic are those of the single-image call, and
/// fast_image_resize's vertical and horizontal kernels give the same bytes for them (tests check
/// both), but its vertical kernel is about three times faster per tap for 3-byte pixels (6 µs
/// against 18 µs per 96x80 image here), which is more than the two transposes cost.
pub struct BatchResizer {
    scratch: ResizeScratch,
    height: u32,
    width: u32,
    crop: Crop,
    filter: Filter,
    capacity: usize,
    run: Option<Prepared>,
    count: usize,
    /// The run's box-halved images side by side (laid out for a full run).
    wide: Vec<u8>,
    /// The vertically resized images, side by side.
    tall: Vec<u8>,
    /// `tall` transposed image by image: image `j`'s column `x` is row `x`, from column
    /// `j * height` on.
    transposed: Vec<u8>,
    /// `transposed` resized vertically (to `width` rows).
    out: Vec<u8>,
}

impl BatchResizer {
    pub fn new(height: u32, width: u32, crop: Crop, filter: Filter, capacity: usize) -> Self {
        BatchResizer {
            scratch: ResizeScratch::new(),
            height,
            width,
            crop,
            filter,
            capacity: capacity.max(1),
            run: None,
            count: 0,
            wide: Vec::new(),
            tall: Vec::new(),
            transposed: Vec::new(),
            out: Vec::new(),
        }
    }

    /// Images waiting in the current run.
    pub fn len(&self) -> usize {
        self.count
    }
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether a `w x h` image can join the current run (else [`flush`](Self::flush) first).
    /// Images that fast_image_resize would not resize in two passes always run alone.
    pub fn fits(&self, w: u32, h: u32) -> bool {
        let p = Prepared::new(w, h, self.height, self.width, self.crop, self.filter);
        self.count < self.capacity
            && p.two_passes(self.height, self.width, self.filter)
            && self.run.is_none_or(|r| r == p)
    }

    /// Adds a `w x h` RGB image to the run; call only when [`fits`](Self::fits) says so.
    pub fn push(&mut self, src: &[u8], w: u32, h: u32) {
        assert!(self.fits(w, h), "the image does not fit the run");
        assert_eq!(src.len(), w as usize * h as usize * 3, "RGB buffer size");
        let p = Prepared::new(w, h, self.height, self.width, self.crop, self.filter);
        self.run = Some(p);
        // The wide image, laid out for a full run: row y of image j at y * stride + j * p.w * 3.
        let (pw3, stride) = (p.w * 3, self.capacity * p.w * 3);
        self.wide.resize(stride * p.h, 0);
        let dst = &mut self.wide[self.count * pw3..];
        let ResizeScratch {
            halves,
            row_sum,
            row_avg,
            ..
        } = &mut self.scratch;
        let (mut cw, mut chh) = (w as usize, h as usize);
        let mut current: Option<usize> = None;
        for _ in 1..p.halvings {
            let [a, b] = &mut *halves;
            (cw, chh) = match current {
                None => box_halve_into(src, cw, chh, a, row_sum, row_avg),
                Some(0) => box_halve_into(a, cw, chh, b, row_sum, row_avg),
                Some(_) => box_halve_into(b, cw, chh, a, row_sum, row_avg),
            };
            current = Some(current.map_or(0, |c| 1 - c));
        }
        let last = current.map_or(src, |c| &halves[c][..]);
        if p.halvings == 0 {
            for (y, row) in last.chunks_exact(pw3).enumerate() {
                dst[y * stride..][..pw3].copy_from_slice(row);
            }
        } else {
            box_halve_strided(last, cw, chh, dst, stride, row_sum, row_avg);
        }
        self.count += 1;
    }

    /// Resizes the run and hands each image's `height x width` HWC bytes to `emit`, in the order
    /// they were pushed; the run is then empty.
    pub fn flush(&mut self, mut emit: impl FnMut(Vec<u8>)) {
        let Some(p) = self.run.take() else { return };
        let n = std::mem::take(&mut self.count);
        let (height, width) = (self.height as usize, self.width as usize);
        let pw3 = p.w * 3;
        // A short run: close up the rows (the first stays where it is).
        if n < self.capacity {
            let stride = self.capacity * pw3;
            for y in 1..p.h {
                self.wide
                    .copy_within(y * stride..y * stride + n * pw3, y * n * pw3);
            }
        }
        let resizer = &mut self.scratch.resizer;
        let src = ImageRef::new(
            (n * p.w) as u32,
            p.h as u32,
            &self.wide[..n * pw3 * p.h],
            PixelType::U8x3,
        )
        .expect("wide buffer size");
        self.tall.resize(n * p.w * height * 3, 0);
        let mut dst = Image::from_slice_u8(
            (n * p.w) as u32,
            height as u32,
            &mut self.tall,
            PixelType::U8x3,
        )
        .expect("vertical buffer size");
        let vertical = ResizeOptions::new().resize_alg(self.filter.alg()).crop(
            0.0,
            p.top,
            (n * p.w) as f64,
            p.ch,
        );
        resizer
            .resize(&src, &mut dst, &vertical)
            .expect("same pixel types always resize");
        // Image j's column x becomes row x, columns j * height.. of an (n * height)-wide image.
        let cols = n * height;
        self.transposed.resize(p.w * cols * 3, 0);
        for j in 0..n {
            transpose_rgb(
                &self.tall[j * pw3..],
                n * p.w,
                height,
                p.w,
                &mut self.transposed[j * height * 3..],
                cols,
            );
        }
        let src = ImageRef::new(
            cols as u32,
            p.w as u32,
            &self.transposed[..p.w * cols * 3],
            PixelType::U8x3,
        )
        .expect("transposed buffer size");
        self.out.resize(width * cols * 3, 0);
        let mut dst =
            Image::from_slice_u8(cols as u32, width as u32, &mut self.out, PixelType::U8x3)
                .expect("output buffer size");
        let across =
            ResizeOptions::new()
                .resize_alg(self.filter.alg())
                .crop(0.0, p.left, cols as f64, p.cw);
        resizer
            .resize(&src, &mut dst, &across)
            .expect("same pixel types always resize");
        // Back again: each image's `width` rows of `height` pixels become its `height` rows.
        for j in 0..n {
            let mut image = vec![0u8; height * width * 3];
            transpose_rgb(
                &self.out[j * height * 3..],
                cols,
                width,
                height,
                &mut image,
                width,
            );
            emit(image);
        }
    }

    /// The single-image path, for images that do not fit a run.
    pub fn resize_one(&mut self, src: &[u8], w: u32, h: u32, out: &mut [u8]) {
        resize_rgb_into(
            &mut self.scratch,
            src,
            w,
            h,
            self.height,
            self.width,
            self.crop,
            self.filter,
            out,
        );
    }
}

/// Side of the grayscale image the perceptual hash transforms.
const PHASH_N: usize = 32;

/// `cos((2x + 1) u pi / 2N)` for the 8 lowest frequencies `u`, stored `[x][u]` so that the 8
/// frequencies of one sample sit side by side (computed once).
///
/// The angle is an f32 and its cosine is taken in f64 and rounded to f32: the table the earlier
/// version of this function got (the compiler folded its f32 `cos` calls that way), so hashes,
/// and the near-duplicates found, stay what they were. A runtime f32 `cos` differs in the last
/// bit for two entries.
fn phash_cos() -> &'static [[f32; 8]; PHASH_N] {
    static COS: std::sync::OnceLock<[[f32; 8]; PHASH_N]> = std::sync::OnceLock::new();
    COS.get_or_init(|| {
        let mut cos = [[0f32; 8]; PHASH_N];
        for (x, row) in cos.iter_mut().enumerate() {
            for (u, c) in row.iter_mut().enumerate() {
                let angle =
                    (2 * x + 1) as f32 * u as f32 * std::f32::consts::PI / (2 * PHASH_N) as f32;
                *c = (angle as f64).cos() as f32;
            }
        }
        cos
    })
}

/// A 64-bit DCT perceptual hash (pHash) of an HWC RGB image: 32x32 grayscale by area
/// averaging, the 8x8 lowest DCT frequencies, one bit per coefficient above their median (the DC
/// term is left out). Robust to re-encoding and small resampling changes; near-duplicates have a
/// small Hamming distance.
///
/// A cell's gray value is the luma `0.299 R + 0.587 G + 0.114 B` of its mean colour (the mean of
/// the pixels' lumas, up to rounding): exact integer channel sums, then one f32 expression per
/// cell. Every f32 sum of the transforms adds its terms in the same order as the straightforward
/// loops (over x, then over y), so the hash does not depend on how the loops are arranged for
/// speed; a test checks it against the plain version.
pub fn perceptual_hash(pixels: &[u8], height: usize, width: usize) -> u64 {
    const N: usize = PHASH_N;
    assert!(height > 0 && width > 0 && pixels.len() >= height * width * 3);
    let row_len = width * 3;
    // Column bounds of each cell.
    let mut xs = [(0usize, 0usize); N];
    for (gx, b) in xs.iter_mut().enumerate() {
        let x0 = gx * width / N;
        *b = (x0, ((gx + 1) * width / N).max(x0 + 1));
    }
    // The rows of one band of cells summed byte by byte (vectorises), then each cell's columns.
    let mut column_sums = vec![0u32; row_len];
    let mut gray = [[0f32; N]; N];
    for (gy, cells) in gray.iter_mut().enumerate() {
        let y0 = gy * height / N;
        let y1 = ((gy + 1) * height / N).max(y0 + 1);
        column_sums.fill(0);
        for y in y0..y1 {
            add_bytes(&mut column_sums, &pixels[y * row_len..(y + 1) * row_len]);
        }
        for (cell, &(x0, x1)) in cells.iter_mut().zip(&xs) {
            let mut rgb = [0u32; 3];
            for px in column_sums[x0 * 3..x1 * 3].chunks_exact(3) {
                rgb = [rgb[0] + px[0], rgb[1] + px[1], rgb[2] + px[2]];
            }
            *cell = cell_gray(rgb, (y1 - y0) * (x1 - x0));
        }
    }
    dct_hash(&gray)
}

/// The gray value of a cell from its exact channel sums over `count` pixels.
#[inline]
fn cell_gray([r, g, b]: [u32; 3], count: usize) -> f32 {
    (0.299 * r as f32 + 0.587 * g as f32 + 0.114 * b as f32) / count as f32
}

/// `sums[i] += bytes[i]`; compiled a second time for AVX2 where the CPU has it.
fn add_bytes(sums: &mut [u32], bytes: &[u8]) {
    #[inline(always)]
    fn portable(sums: &mut [u32], bytes: &[u8]) {
        for (s, &b) in sums.iter_mut().zip(bytes) {
            *s += b as u32;
        }
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn avx2(sums: &mut [u32], bytes: &[u8]) {
        portable(sums, bytes)
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above); the function is safe code.
        return unsafe { avx2(sums, bytes) };
    }
    portable(sums, bytes)
}

/// The hash bits of a 32x32 gray image: the 8x8 lowest DCT-II frequencies (row transform, then
/// column transform, the 8 frequencies accumulated side by side, each over x then y in order),
/// one bit per AC coefficient above their median.
fn dct_hash(gray: &[[f32; PHASH_N]; PHASH_N]) -> u64 {
    let cos = phash_cos();
    let mut rows = [[0f32; 8]; PHASH_N];
    for (acc, g) in rows.iter_mut().zip(gray) {
        *acc = cos[0].map(|c| c * g[0]);
        for (c, &g) in cos.iter().zip(g).skip(1) {
            for (a, &c) in acc.iter_mut().zip(c) {
                *a += c * g;
            }
        }
    }
    let mut coeffs = [0f32; 64];
    for (v, out) in coeffs.chunks_exact_mut(8).enumerate() {
        let mut acc = rows[0].map(|r| cos[0][v] * r);
        for (c, r) in cos.iter().zip(&rows).skip(1) {
            for (a, &r) in acc.iter_mut().zip(r) {
                *a += c[v] * r;
            }
        }
        out.copy_from_slice(&acc);
    }
    let mut ac = [0f32; 63];
    ac.copy_from_slice(&coeffs[1..]);
    let median = *ac.select_nth_unstable_by(63 / 2, f32::total_cmp).1;
    coeffs.iter().enumerate().skip(1).fold(
        0u64,
        |bits, (i, &c)| if c > median { bits | (1 << i) } else { bits },
    )
}

/// Hamming distance between two perceptual hashes.
pub fn hash_distance(a: u64, b: u64) -> u32 {
    (a ^ b).count_ones()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Issue 14, case 11: a PNG whose header declares 60,000 x 60,000 pixels (10.8 GB of RGB)
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

    /// The plain 2x2 box halving the fast one must match byte for byte.
    fn box_halve_plain(src: &[u8], sw: usize, sh: usize) -> Vec<u8> {
        let (w, h) = (sw / 2, sh / 2);
        let mut out = vec![0u8; w * h * 3];
        for y in 0..h {
            for x in 0..w {
                for c in 0..3 {
                    let at = |yy: usize, xx: usize| src[(yy * sw + xx) * 3 + c] as u16;
                    let sum = at(2 * y, 2 * x)
                        + at(2 * y, 2 * x + 1)
                        + at(2 * y + 1, 2 * x)
                        + at(2 * y + 1, 2 * x + 1);
                    out[(y * w + x) * 3 + c] = ((sum + 2) / 4) as u8;
                }
            }
        }
        out
    }

    /// The straightforward pHash the reorganised one must match bit for bit.
    fn perceptual_hash_plain(pixels: &[u8], height: usize, width: usize) -> u64 {
        const N: usize = 32;
        let mut gray = [0f32; N * N];
        for gy in 0..N {
            let y0 = gy * height / N;
            let y1 = ((gy + 1) * height / N).max(y0 + 1);
            for gx in 0..N {
                let x0 = gx * width / N;
                let x1 = ((gx + 1) * width / N).max(x0 + 1);
                let mut rgb = [0u32; 3];
                for y in y0..y1 {
                    for x in x0..x1 {
                        for (c, sum) in rgb.iter_mut().enumerate() {
                            *sum += pixels[(y * width + x) * 3 + c] as u32;
                        }
                    }
                }
                let [r, g, b] = rgb.map(|v| v as f32);
                gray[gy * N + gx] =
                    (0.299 * r + 0.587 * g + 0.114 * b) / ((y1 - y0) * (x1 - x0)) as f32;
            }
        }
        let mut cos = [[0f32; N]; 8];
        for (u, row) in cos.iter_mut().enumerate() {
            for (x, c) in row.iter_mut().enumerate() {
                let angle = (2 * x + 1) as f32 * u as f32 * std::f32::consts::PI / (2 * N) as f32;
                *c = (angle as f64).cos() as f32;
            }
        }
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
        coeffs
            .iter()
            .enumerate()
            .skip(1)
            .fold(
                0u64,
                |bits, (i, &c)| if c > median { bits | (1 << i) } else { bits },
            )
    }

    fn noise(rng: &mut rand_chacha::ChaCha8Rng, len: usize, smooth: bool) -> Vec<u8> {
        let mut v: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        if smooth {
            // Runs of equal values, like flat image regions (ties in the sums and the median).
            for i in 3..len {
                if rng.random_bool(0.8) {
                    v[i] = v[i - 3];
                }
            }
        }
        v
    }

    #[test]
    fn fast_transpose_matches_the_plain_one() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for &(rows, cols, extra_src, extra_dst) in &[
            (1, 1, 0, 0),
            (4, 4, 0, 0),
            (5, 7, 0, 0),
            (96, 89, 0, 0),
            (80, 96, 0, 0),
            (96, 89, 623, 671),
            (9, 13, 2, 0),
            (3, 17, 0, 5),
            (17, 3, 1, 1),
        ] {
            let (src_stride, dst_stride) = (cols + extra_src, rows + extra_dst);
            let src = noise(&mut rng, ((rows - 1) * src_stride + cols) * 3, false);
            let mut fast = vec![7u8; ((cols - 1) * dst_stride + rows) * 3];
            let mut plain = fast.clone();
            transpose_rgb(&src, src_stride, rows, cols, &mut fast, dst_stride);
            transpose_rgb_scalar(&src, src_stride, 0..rows, 0..cols, &mut plain, dst_stride);
            assert_eq!(fast, plain, "{rows}x{cols}");
            for y in 0..rows {
                for x in 0..cols {
                    let (s, d) = ((y * src_stride + x) * 3, (x * dst_stride + y) * 3);
                    assert_eq!(src[s..s + 3], plain[d..d + 3]);
                }
            }
        }
    }

    #[test]
    fn fast_box_halve_matches_the_plain_one() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let (mut out, mut sum, mut avg) = (Vec::new(), Vec::new(), Vec::new());
        for &(w, h) in &[
            (2, 2),
            (3, 5),
            (178, 218),
            (179, 219),
            (89, 109),
            (64, 64),
            (17, 4),
            (18, 2),
            (19, 3),
            (20, 2),
            (33, 9),
        ] {
            for smooth in [false, true] {
                let src = noise(&mut rng, w * h * 3, smooth);
                let size = box_halve_into(&src, w, h, &mut out, &mut sum, &mut avg);
                assert_eq!(size, (w / 2, h / 2));
                assert_eq!(out, box_halve_plain(&src, w, h), "{w}x{h}");
            }
        }
    }

    #[test]
    fn batch_resize_matches_one_at_a_time() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let filters = [
            Filter::CatmullRom,
            Filter::Lanczos3,
            Filter::Box,
            Filter::Bilinear,
            Filter::Mitchell,
            Filter::Hamming,
            Filter::Nearest,
        ];
        for &(w, h) in &[(178u32, 218u32), (401, 517), (90, 100), (80, 96), (33, 47)] {
            let images: Vec<Vec<u8>> = (0..5)
                .map(|i| noise(&mut rng, (w * h * 3) as usize, i % 2 == 0))
                .collect();
            for &(th, tw) in &[(96u32, 80u32), (64, 64), (24, 20)] {
                for crop in [Crop::None, Crop::Center(148), Crop::Center(31)] {
                    for filter in filters {
                        let mut single = ResizeScratch::new();
                        let want: Vec<Vec<u8>> = images
                            .iter()
                            .map(|img| {
                                let mut out = vec![0u8; (th * tw * 3) as usize];
                                resize_rgb_into(
                                    &mut single,
                                    img,
                                    w,
                                    h,
                                    th,
                                    tw,
                                    crop,
                                    filter,
                                    &mut out,
                                );
                                out
                            })
                            .collect();
                        let mut batch = BatchResizer::new(th, tw, crop, filter, 3);
                        let mut got = Vec::new();
                        for img in &images {
                            if !batch.fits(w, h) {
                                batch.flush(|px| got.push(px));
                            }
                            if batch.fits(w, h) {
                                batch.push(img, w, h);
                            } else {
                                let mut out = vec![0u8; (th * tw * 3) as usize];
                                batch.resize_one(img, w, h, &mut out);
                                got.push(out);
                            }
                        }
                        batch.flush(|px| got.push(px));
                        assert!(got == want, "{w}x{h} -> {th}x{tw} {crop:?} {filter:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn fast_perceptual_hash_matches_the_plain_one() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        for &(h, w) in &[(96, 80), (8, 8), (24, 20), (33, 31), (64, 64), (218, 178)] {
            for smooth in [false, true] {
                for _ in 0..20 {
                    let px = noise(&mut rng, h * w * 3, smooth);
                    assert_eq!(
                        perceptual_hash(&px, h, w),
                        perceptual_hash_plain(&px, h, w),
                        "{h}x{w}"
                    );
                }
            }
        }
        // Flat images: every AC coefficient near zero.
        for v in [0u8, 128, 255] {
            let px = vec![v; 96 * 80 * 3];
            assert_eq!(
                perceptual_hash(&px, 96, 80),
                perceptual_hash_plain(&px, 96, 80)
            );
        }
    }
}
