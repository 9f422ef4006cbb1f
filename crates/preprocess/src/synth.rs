//! Procedurally drawn face-like images (178x218 JPEG, CelebA's aligned size) for tests and the
//! demo. They vary in skin tone, face shape and position, hair, eyes, mouth and background, and
//! are a pure function of (seed, index), so any thread count produces the same files.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

pub const SYNTH_WIDTH: u32 = 178;
pub const SYNTH_HEIGHT: u32 = 218;

type Rgb = [f32; 3];

/// A filled ellipse with a soft edge, optionally clipped above/below a horizontal line.
struct Ellipse {
    cx: f32,
    cy: f32,
    rx: f32,
    ry: f32,
    color: Rgb,
    /// Only draw where `y <= clip_below`.
    clip_below: f32,
}

impl Ellipse {
    fn new(cx: f32, cy: f32, rx: f32, ry: f32, color: Rgb) -> Self {
        Ellipse {
            cx,
            cy,
            rx,
            ry,
            color,
            clip_below: f32::INFINITY,
        }
    }
}

struct Canvas {
    w: usize,
    h: usize,
    px: Vec<Rgb>,
}

impl Canvas {
    fn paint(&mut self, e: &Ellipse) {
        let x0 = ((e.cx - e.rx - 2.0).floor().max(0.0)) as usize;
        let x1 = ((e.cx + e.rx + 2.0).ceil().min(self.w as f32)) as usize;
        let y0 = ((e.cy - e.ry - 2.0).floor().max(0.0)) as usize;
        let y1 = ((e.cy + e.ry + 2.0)
            .ceil()
            .min(self.h as f32)
            .min(e.clip_below + 1.0))
        .max(0.0) as usize;
        let rmin = e.rx.min(e.ry);
        for y in y0..y1 {
            let dy = (y as f32 + 0.5 - e.cy) / e.ry;
            for x in x0..x1 {
                let dx = (x as f32 + 0.5 - e.cx) / e.rx;
                let dist = ((dx * dx + dy * dy).sqrt() - 1.0) * rmin;
                let mut a = (0.5 - dist).clamp(0.0, 1.0);
                a *= (e.clip_below - y as f32 + 0.5).clamp(0.0, 1.0);
                if a > 0.0 {
                    let p = &mut self.px[y * self.w + x];
                    for (v, target) in p.iter_mut().zip(e.color) {
                        *v += (target - *v) * a;
                    }
                }
            }
        }
    }
}

fn lerp(a: Rgb, b: Rgb, t: f32) -> Rgb {
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

fn scale(c: Rgb, s: f32) -> Rgb {
    [c[0] * s, c[1] * s, c[2] * s]
}

fn random_color(rng: &mut ChaCha8Rng) -> Rgb {
    [
        rng.random_range(20.0..235.0),
        rng.random_range(20.0..235.0),
        rng.random_range(20.0..235.0),
    ]
}

/// Draws face `index` of the set made with `seed`, as 178x218 RGB.
pub fn draw_face(seed: u64, index: u64) -> image::RgbImage {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    // Each step draws its random numbers in turn: the order is part of the images.
    let mut canvas = background(&mut rng);
    let face = Face::random(&mut rng);
    face.paint_head(&mut canvas, &mut rng);
    face.paint_eyes(&mut canvas, &mut rng);
    face.paint_nose_and_mouth(&mut canvas, &mut rng);
    with_noise(&canvas, &mut rng)
}

/// A vertical gradient with a few background shapes (out-of-focus objects), so backgrounds
/// differ in structure, not only hue.
fn background(rng: &mut ChaCha8Rng) -> Canvas {
    let (w, h) = (SYNTH_WIDTH as usize, SYNTH_HEIGHT as usize);
    let top = random_color(rng);
    let bottom = lerp(top, random_color(rng), 0.6);
    let mut canvas = Canvas {
        w,
        h,
        px: (0..w * h)
            .map(|i| lerp(top, bottom, (i / w) as f32 / h as f32))
            .collect(),
    };
    for _ in 0..rng.random_range(1..4) {
        let c = lerp(top, random_color(rng), 0.7);
        let (bx, by) = (
            rng.random_range(0.0..178.0f32),
            rng.random_range(0.0..160.0f32),
        );
        let (brx, bry) = (
            rng.random_range(15.0..70.0f32),
            rng.random_range(15.0..90.0f32),
        );
        canvas.paint(&Ellipse::new(bx, by, brx, bry, c));
    }
    canvas
}

/// A face's colours, centre `(cx, cy)` and radii `(rx, ry)`.
struct Face {
    skin: Rgb,
    hair: Rgb,
    cloth: Rgb,
    centre: (f32, f32),
    radii: (f32, f32),
    long_hair: bool,
}

impl Face {
    fn random(rng: &mut ChaCha8Rng) -> Face {
        // The fields are evaluated in the order written, so the random numbers are drawn in it.
        Face {
            skin: lerp(
                [255.0, 224.0, 196.0],
                [92.0, 56.0, 38.0],
                rng.random_range(0.0..1.0f32),
            ),
            hair: lerp(
                [20.0, 15.0, 10.0],
                [230.0, 190.0, 120.0],
                rng.random_range(0.0..1.0f32).powi(2),
            ),
            cloth: random_color(rng),
            centre: (
                89.0 + rng.random_range(-14.0..14.0f32),
                112.0 + rng.random_range(-10.0..10.0f32),
            ),
            radii: (
                rng.random_range(32.0..48.0f32),
                rng.random_range(44.0..60.0f32),
            ),
            long_hair: rng.random_bool(0.5),
        }
    }

    /// Shoulders, neck, hair behind the head, ears, the face and the fringe.
    fn paint_head(&self, canvas: &mut Canvas, rng: &mut ChaCha8Rng) {
        let ((cx, cy), (rx, ry)) = (self.centre, self.radii);
        let (skin, hair, long_hair) = (self.skin, self.hair, self.long_hair);
        canvas.paint(&Ellipse::new(cx, 230.0, 85.0, 50.0, self.cloth));
        canvas.paint(&Ellipse::new(
            cx,
            cy + ry,
            rx * 0.45,
            30.0,
            scale(skin, 0.85),
        ));
        let back_ry = if long_hair { ry * 1.5 } else { ry * 1.08 };
        canvas.paint(&Ellipse::new(
            cx,
            cy - ry * 0.1 + if long_hair { ry * 0.3 } else { 0.0 },
            rx * 1.2,
            back_ry,
            hair,
        ));
        // Face and ears.
        canvas.paint(&Ellipse::new(
            cx - rx * 0.98,
            cy,
            rx * 0.14,
            ry * 0.2,
            scale(skin, 0.92),
        ));
        canvas.paint(&Ellipse::new(
            cx + rx * 0.98,
            cy,
            rx * 0.14,
            ry * 0.2,
            scale(skin, 0.92),
        ));
        canvas.paint(&Ellipse::new(cx, cy, rx, ry, skin));
        // Fringe: the top of a hair ellipse, cut at the forehead.
        let mut fringe = Ellipse::new(cx, cy - ry * 0.55, rx * 1.08, ry * 0.62, hair);
        fringe.clip_below = cy - ry * rng.random_range(0.35..0.6f32);
        canvas.paint(&fringe);
    }

    /// The eyes (whites, irises, pupils) and brows.
    fn paint_eyes(&self, canvas: &mut Canvas, rng: &mut ChaCha8Rng) {
        let ((cx, cy), (rx, ry)) = (self.centre, self.radii);
        let hair = self.hair;
        let ex = rx * rng.random_range(0.36..0.46f32);
        let ey = cy - ry * rng.random_range(0.05..0.2f32);
        let eye_r = rng.random_range(6.0..8.5f32);
        let iris = lerp(
            [40.0, 25.0, 10.0],
            [70.0, 120.0, 170.0],
            rng.random_range(0.0..1.0f32),
        );
        let brow_color = scale(hair, 0.8);
        for side in [-1.0f32, 1.0] {
            let x = cx + side * ex;
            canvas.paint(&Ellipse::new(
                x,
                ey,
                eye_r * 1.4,
                eye_r * 0.8,
                [245.0, 245.0, 240.0],
            ));
            canvas.paint(&Ellipse::new(x, ey, eye_r * 0.6, eye_r * 0.6, iris));
            canvas.paint(&Ellipse::new(
                x,
                ey,
                eye_r * 0.28,
                eye_r * 0.28,
                [10.0, 10.0, 10.0],
            ));
            canvas.paint(&Ellipse::new(
                x,
                ey - eye_r * 1.6,
                eye_r * 1.7,
                eye_r * 0.35,
                brow_color,
            ));
        }
    }

    fn paint_nose_and_mouth(&self, canvas: &mut Canvas, rng: &mut ChaCha8Rng) {
        let ((cx, cy), (rx, ry)) = (self.centre, self.radii);
        let skin = self.skin;
        canvas.paint(&Ellipse::new(
            cx,
            cy + ry * 0.18,
            rx * 0.12,
            ry * 0.14,
            scale(skin, 0.85),
        ));
        let lips = lerp(
            scale(skin, 0.7),
            [190.0, 60.0, 70.0],
            rng.random_range(0.3..1.0f32),
        );
        let mouth_w = rx * rng.random_range(0.28..0.5f32);
        let mouth_y = cy + ry * rng.random_range(0.45..0.58f32);
        let open = rng.random_range(0.15..0.45f32);
        canvas.paint(&Ellipse::new(cx, mouth_y, mouth_w, mouth_w * open, lips));
        if open > 0.3 {
            canvas.paint(&Ellipse::new(
                cx,
                mouth_y,
                mouth_w * 0.7,
                mouth_w * open * 0.35,
                [250.0, 250.0, 250.0],
            ));
        }
    }
}

/// The canvas as 8-bit RGB, with a little noise (the same for the three channels of a pixel).
fn with_noise(canvas: &Canvas, rng: &mut ChaCha8Rng) -> image::RgbImage {
    let mut img = image::RgbImage::new(SYNTH_WIDTH, SYNTH_HEIGHT);
    for (p, out) in canvas.px.iter().zip(img.pixels_mut()) {
        let n: f32 = rng.random_range(-4.0..4.0);
        *out = image::Rgb([
            (p[0] + n).round().clamp(0.0, 255.0) as u8,
            (p[1] + n).round().clamp(0.0, 255.0) as u8,
            (p[2] + n).round().clamp(0.0, 255.0) as u8,
        ]);
    }
    img
}

/// Encodes an RGB image as JPEG at quality 92.
pub fn encode_jpeg(img: &image::RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 92)
        .encode_image(img)
        .expect("encoding to memory cannot fail");
    out
}

/// Writes `count` synthetic faces as `DIR/synth_NNNNNN.jpg`. Files already present with the
/// right content are left alone, so a rerun is cheap. Returns the paths.
pub fn write_synth_set(out: &Path, count: usize, seed: u64) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out)
        .with_context(|| format!("{}: cannot create folder", out.display()))?;
    (0..count)
        .into_par_iter()
        .map(|i| {
            let path = out.join(format!("synth_{i:06}.jpg"));
            let bytes = encode_jpeg(&draw_face(seed, i as u64));
            if std::fs::read(&path).ok().as_deref() != Some(&bytes[..]) {
                facegan_common::write_atomic(&path, &bytes)?;
            }
            Ok(path)
        })
        .collect()
}

/// A tiny PNG whose header declares `width x height` RGB pixels while its data holds almost
/// nothing: a decompression bomb for tests and the fuzzer's seeds (the decoder must refuse it
/// by its declared size, not try to allocate it).
pub fn png_declaring(width: u32, height: u32) -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut c = 0xFFFF_FFFFu32;
        for &b in data {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }
    fn chunk(kind: &[u8], data: &[u8]) -> Vec<u8> {
        let mut v = (data.len() as u32).to_be_bytes().to_vec();
        let body = [kind, data].concat();
        v.extend_from_slice(&body);
        v.extend_from_slice(&crc32(&body).to_be_bytes());
        v
    }
    let ihdr = [
        &width.to_be_bytes()[..],
        &height.to_be_bytes(),
        &[8, 2, 0, 0, 0], // 8-bit RGB, no interlace
    ]
    .concat();
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    ));
    png.extend(chunk(b"IEND", &[]));
    png
}

/// Random bytes for the kernels' tests; with `smooth`, runs of equal values like flat image
/// regions (ties in the sums and the median).
#[cfg(test)]
pub(crate) fn noise(rng: &mut ChaCha8Rng, len: usize, smooth: bool) -> Vec<u8> {
    let mut v: Vec<u8> = (0..len).map(|_| rng.random()).collect();
    if smooth {
        for i in 3..len {
            if rng.random_bool(0.8) {
                v[i] = v[i - 3];
            }
        }
    }
    v
}
