//! `facegan bench-swd`: times the SWD of two sets of synthetic images (pyramids, then the
//! distance) and reports the numbers the CLI prints as one JSON line.

use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::swd::{pyramids, swd, Planes};

/// One `bench-swd` run. Fields are declared in alphabetical order, the key order of the JSON
/// line the CLI printed before this struct existed.
#[derive(Debug, Clone, Serialize)]
pub struct BenchSwdReport {
    pub images_per_s_per_side: f64,
    pub images_per_side: usize,
    /// Always `"facegan-swd"` (to tell these lines from other implementations' in a log).
    #[serde(rename = "impl")]
    pub implementation: &'static str,
    pub make_inputs_s: f64,
    pub pyramid_s: f64,
    /// `"HxW"`.
    pub size: String,
    pub swd_s: f64,
    pub swd_x1e3: f64,
    pub threads: usize,
    /// `pyramid_s + swd_s` (input generation is not counted).
    pub total_s: f64,
}

/// `n` smooth random `h x w` images: per image, one random plane wave (frequency and phase
/// drawn once, shifted per channel) plus uniform noise, around mid-grey in [0, 255].
/// Deterministic: image `i` of set `seed` comes from its own ChaCha8 stream.
pub fn smooth_random_images(n: usize, h: usize, w: usize, seed: u64) -> Vec<Planes> {
    (0..n as u64)
        .map(|i| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(i);
            let fx = rng.random::<f32>() * 0.3;
            let fy = rng.random::<f32>() * 0.3;
            let phase = rng.random::<f32>() * 6.0;
            let data = (0..3 * h * w)
                .map(|k| {
                    let (c, y, x) = (k / (h * w), (k / w) % h, k % w);
                    let wave = (fx * x as f32 + fy * y as f32 + phase + c as f32).sin();
                    128.0 + 100.0 * wave + 20.0 * (rng.random::<f32>() - 0.5)
                })
                .collect();
            Planes::new(h, w, data)
        })
        .collect()
}

/// Times the SWD of `n` images per side at `h x w` (two sets of [`smooth_random_images`],
/// seeds 1 and 2, SWD seed 7) on the current rayon pool.
pub fn bench_swd(n: usize, h: usize, w: usize) -> BenchSwdReport {
    let t = Instant::now();
    let (a, b) = (
        smooth_random_images(n, h, w, 1),
        smooth_random_images(n, h, w, 2),
    );
    let make_inputs_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let (pa, pb) = (pyramids(&a), pyramids(&b));
    let pyramid_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let r = swd(&pa, &pb, 7);
    let swd_s = t.elapsed().as_secs_f64();
    let total_s = pyramid_s + swd_s;
    BenchSwdReport {
        images_per_s_per_side: n as f64 / total_s,
        images_per_side: n,
        implementation: "facegan-swd",
        make_inputs_s,
        pyramid_s,
        size: format!("{h}x{w}"),
        swd_s,
        swd_x1e3: r.average,
        threads: rayon::current_num_threads(),
        total_s,
    }
}
