//! The memorisation check: each of the first 8 fakes beside its 3 nearest training images (L2
//! at the pyramid's low-pass level), listed in the report and drawn as `nn.png`.

use std::path::Path;

use anyhow::Result;
use facegan_common::images::{chw_to_rgb_images, grid, save_png};
use facegan_shard::{Shard, Split};
use rayon::prelude::*;
use serde::Serialize;

use crate::generate::to_planes;
use crate::swd::{self, Planes};

/// How many fakes are checked, and how many neighbours each gets.
const FAKES: usize = 8;
const NEIGHBOURS: usize = 3;

/// Nearest training images of one generated face.
#[derive(Debug, Clone, Serialize)]
pub struct Neighbours {
    pub fake_index: usize,
    pub train_paths: Vec<String>,
    pub distances: Vec<f64>,
}

/// The check's result: the neighbours of each fake and the `(h, w)` they were compared at.
pub struct Memorisation {
    pub neighbours: Vec<Neighbours>,
    pub level: (usize, usize),
}

/// Finds the nearest training images of the first (up to) 8 of `fakes` (`[3, h, w]` planes in
/// [0, 1]; at least one) and writes `nn.png`: one row per fake, then its neighbours.
pub fn check(out_dir: &Path, shard: &Shard, fakes: &[f32]) -> Result<Memorisation> {
    let (h, w) = (shard.height(), shard.width());
    let n = (fakes.len() / (3 * h * w)).min(FAKES);
    let fakes = &fakes[..n * 3 * h * w];
    let fake_low: Vec<Planes> = to_planes(fakes, h, w).iter().map(low_pass).collect();
    let train_low: Vec<(usize, Planes)> = shard
        .indices(Split::Train)
        .par_iter()
        .map(|&i| (i, low_pass(&Planes::from_hwc_u8(h, w, shard.image(i)))))
        .collect();
    let mut neighbours = Vec::new();
    let mut tiles = Vec::new();
    for ((fi, f), tile) in fake_low
        .iter()
        .enumerate()
        .zip(chw_to_rgb_images(fakes, h, w))
    {
        let nearest = nearest(f, &train_low);
        tiles.push(tile);
        for &(_, i) in &nearest {
            let hwc = shard.image(i).to_vec();
            tiles.push(
                image::RgbImage::from_raw(w as u32, h as u32, hwc).expect("shard image size"),
            );
        }
        neighbours.push(Neighbours {
            fake_index: fi,
            train_paths: nearest
                .iter()
                .map(|&(_, i)| shard.meta().images[i].path.clone())
                .collect(),
            distances: nearest.iter().map(|&(v, _)| v).collect(),
        });
    }
    save_png(&out_dir.join("nn.png"), &grid(&tiles, 1 + NEIGHBOURS))?;
    Ok(Memorisation {
        neighbours,
        level: (fake_low[0].h, fake_low[0].w),
    })
}

/// The 3 training images closest to `fake`, nearest first: `(distance, shard index)`.
fn nearest(fake: &Planes, train: &[(usize, Planes)]) -> Vec<(f64, usize)> {
    let mut d: Vec<(f64, usize)> = train
        .par_iter()
        .map(|(i, t)| (l2(&fake.data, &t.data), *i))
        .collect();
    d.sort_by(|a, b| a.0.total_cmp(&b.0));
    d.truncate(NEIGHBOURS);
    d
}

/// The low-pass pyramid level used for nearest neighbours.
fn low_pass(p: &Planes) -> Planes {
    let levels = swd::level_sizes(p.h, p.w).len();
    let mut cur = p.clone();
    for _ in 1..levels {
        cur = swd::pyr_down(&cur);
    }
    cur
}

fn l2(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| ((x - y) as f64).powi(2))
        .sum::<f64>()
        .sqrt()
}
