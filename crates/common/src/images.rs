//! Images every stage writes: `[n, 3, h, w]` floats in [0, 1] turned into RGB images, tiled on a
//! grid, saved as PNG or as a looping GIF. Every file is written atomically.

use std::path::Path;

use crate::files::{write_atomic, FileError};

/// Encodes an RGB image as PNG in memory.
pub fn png_bytes(img: &image::RgbImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("PNG encoding to memory");
    out.into_inner()
}

/// Saves an RGB image as a PNG file, atomically.
pub fn save_png(path: &Path, img: &image::RgbImage) -> Result<(), FileError> {
    write_atomic(path, &png_bytes(img))
}

/// Lays out `n` images given as `[n, 3, h, w]` floats in [0, 1] (CHW each) on a grid with
/// `cols` columns and a 2-pixel gap.
pub fn grid_from_chw(data: &[f32], n: usize, h: usize, w: usize, cols: usize) -> image::RgbImage {
    grid(&chw_to_rgb_images(&data[..n * 3 * h * w], h, w), cols)
}

/// Splits `[n, 3, h, w]` floats in [0, 1] into RGB images (clamped, rounded to u8).
pub fn chw_to_rgb_images(data: &[f32], h: usize, w: usize) -> Vec<image::RgbImage> {
    data.chunks_exact(3 * h * w)
        .map(|img| {
            image::RgbImage::from_fn(w as u32, h as u32, |x, y| {
                let at = |c: usize| {
                    (img[c * h * w + y as usize * w + x as usize].clamp(0.0, 1.0) * 255.0).round()
                        as u8
                };
                image::Rgb([at(0), at(1), at(2)])
            })
        })
        .collect()
}

/// `img` enlarged `k` times with nearest-neighbour (each pixel a `k` x `k` block), to show
/// small faces without smoothing them.
pub fn zoom(img: &image::RgbImage, k: u32) -> image::RgbImage {
    image::imageops::resize(
        img,
        img.width() * k,
        img.height() * k,
        image::imageops::FilterType::Nearest,
    )
}

/// Tiles same-sized images on a grid with a 2-pixel gap.
pub fn grid(images: &[image::RgbImage], cols: usize) -> image::RgbImage {
    let gap = 2u32;
    let (w, h) = images.first().map(|i| i.dimensions()).unwrap_or((1, 1));
    let cols = cols.max(1).min(images.len().max(1));
    let rows = images.len().div_ceil(cols).max(1);
    let mut out = image::RgbImage::from_pixel(
        cols as u32 * (w + gap) + gap,
        rows as u32 * (h + gap) + gap,
        image::Rgb([24, 24, 24]),
    );
    for (i, img) in images.iter().enumerate() {
        let x = gap + (i % cols) as u32 * (w + gap);
        let y = gap + (i / cols) as u32 * (h + gap);
        image::imageops::overlay(&mut out, img, x as i64, y as i64);
    }
    out
}

/// Tiles `[h, w, 3]` u8 images (the shard's layout) on a grid with `cols` columns.
pub fn grid_from_hwc<'a>(
    images: impl IntoIterator<Item = &'a [u8]>,
    h: usize,
    w: usize,
    cols: usize,
) -> image::RgbImage {
    let tiles: Vec<image::RgbImage> = images
        .into_iter()
        .map(|px| image::RgbImage::from_raw(w as u32, h as u32, px.to_vec()).expect("h*w*3 bytes"))
        .collect();
    grid(&tiles, cols)
}

/// Writes an animated GIF (looping, `delay_ms` a frame), atomically.
pub fn write_gif(path: &Path, frames: &[image::RgbImage], delay_ms: u32) -> Result<(), FileError> {
    let encode = || -> image::ImageResult<Vec<u8>> {
        let mut bytes = Vec::new();
        {
            let mut enc = image::codecs::gif::GifEncoder::new_with_speed(&mut bytes, 20);
            enc.set_repeat(image::codecs::gif::Repeat::Infinite)?;
            for f in frames {
                let rgba = image::DynamicImage::ImageRgb8(f.clone()).to_rgba8();
                enc.encode_frame(image::Frame::from_parts(
                    rgba,
                    0,
                    0,
                    image::Delay::from_numer_denom_ms(delay_ms, 1),
                ))?;
            }
        }
        Ok(bytes)
    };
    let bytes = encode().map_err(|e| FileError {
        path: path.to_path_buf(),
        error: std::io::Error::other(e),
    })?;
    write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chw_floats_round_and_clamp_to_rgb_and_tile_with_a_gap() {
        // Two 1x2 images: red/green channels set, values out of range clamp.
        let (h, w) = (1, 2);
        let img0 = [1.0, 0.5, /* G */ 0.0, -1.0, /* B */ 0.0, 2.0];
        let img1 = [0.0; 6];
        let data: Vec<f32> = img0.iter().chain(img1.iter()).copied().collect();
        let imgs = chw_to_rgb_images(&data, h, w);
        assert_eq!(imgs.len(), 2);
        assert_eq!(imgs[0].get_pixel(0, 0).0, [255, 0, 0]);
        assert_eq!(imgs[0].get_pixel(1, 0).0, [128, 0, 255]);
        let g = grid_from_chw(&data, 2, h, w, 2);
        // 2 columns of width 2 with 2-pixel gaps: 2 + 2*(2+2) = 10 wide, 2 + (1+2) = 5 high.
        assert_eq!(g.dimensions(), (10, 5));
        assert_eq!(g.get_pixel(2, 2).0, [255, 0, 0]);
        assert_eq!(g.get_pixel(0, 0).0, [24, 24, 24]);
    }
}
