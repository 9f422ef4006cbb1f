//! Progressive growing's schedule (`[grow]` in a training config): the image size of each
//! phase, smallest first, the images shown at each size before the next, and how many images a
//! new size takes to fade in. [`GrowSchedule::level_at`] turns the images shown into the
//! [`Level`] the networks run at, a pure function of the count, so a resume continues exactly
//! where it stopped, mid-fade included.

use anyhow::{bail, Result};
use facegan_model::{Level, ModelConfig};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrowSchedule {
    /// Each phase's image size `[height, width]`, smallest first, each twice the one before;
    /// the last is the model's size.
    pub sizes: Vec<[usize; 2]>,
    /// Images shown at each size but the last (the last runs to the end of training).
    pub images: Vec<u64>,
    /// Images over which each new size fades in, at the start of its phase (0: at once).
    pub fade: u64,
}

impl GrowSchedule {
    /// The level the networks run at once `images_seen` images have been shown.
    pub fn level_at(&self, model: &ModelConfig, images_seen: u64) -> Level {
        let (phase, start) = self.phase_at(images_seen);
        let Some(&[h, _]) = self.sizes.get(phase) else {
            return Level::full(model);
        };
        let steps = model.g_channels.len() - (model.height / h).trailing_zeros() as usize;
        let into = images_seen - start;
        let alpha = if phase == 0 || into >= self.fade {
            1.0
        } else {
            (into as f64 / self.fade as f64) as f32
        };
        Level { steps, alpha }
    }

    /// Images shown before the size trained at `images_seen` began (its fade-in included): 0
    /// in the first phase.
    pub fn size_began_at(&self, images_seen: u64) -> u64 {
        self.phase_at(images_seen).1
    }

    /// The phase (an index into `sizes`) at `images_seen`, and the images shown before it began.
    fn phase_at(&self, images_seen: u64) -> (usize, u64) {
        let mut start = 0;
        for (phase, &n) in self.images.iter().enumerate() {
            if images_seen < start + n {
                return (phase, start);
            }
            start += n;
        }
        (self.images.len(), start)
    }

    /// Images shown before the full size starts fading in.
    pub fn images_before_full_size(&self) -> u64 {
        self.images.iter().sum()
    }

    /// Images shown before the full size runs alone (its fade-in done).
    pub fn images_to_full_size(&self) -> u64 {
        self.images_before_full_size() + if self.sizes.len() > 1 { self.fade } else { 0 }
    }

    /// "24x20 for 60000 images, 48x40 for 160000, then 96x80; each fades in over 20000".
    pub fn describe(&self) -> String {
        let size = |s: &[usize; 2]| format!("{}x{}", s[0], s[1]);
        let mut parts: Vec<String> = self
            .sizes
            .iter()
            .zip(&self.images)
            .map(|(s, n)| format!("{} for {n} images", size(s)))
            .collect();
        parts.push(format!("then {}", size(self.sizes.last().expect("sizes"))));
        format!("{}; each fades in over {}", parts.join(", "), self.fade)
    }

    /// Whether the schedule suits `model`; the message names what to fix.
    pub fn validate(&self, model: &ModelConfig) -> Result<()> {
        let full = [model.height, model.width];
        let steps = model.g_channels.len();
        let (Some(first), Some(last)) = (self.sizes.first(), self.sizes.last()) else {
            bail!("grow.sizes must list at least the model's size");
        };
        if *last != full {
            bail!(
                "grow.sizes must end with the model's size {}x{} (ends with {}x{})",
                full[0],
                full[1],
                last[0],
                last[1]
            );
        }
        for pair in self.sizes.windows(2) {
            if pair[1] != [2 * pair[0][0], 2 * pair[0][1]] {
                bail!(
                    "grow.sizes must double from one size to the next ({}x{} then {}x{})",
                    pair[0][0],
                    pair[0][1],
                    pair[1][0],
                    pair[1][1]
                );
            }
        }
        let bottom = model.bottom_size();
        if self.sizes.len() > steps || [2 * bottom.0, 2 * bottom.1] > *first {
            bail!(
                "grow.sizes can start at {}x{} at the smallest (one step above G's first map), not {}x{}",
                2 * bottom.0,
                2 * bottom.1,
                first[0],
                first[1]
            );
        }
        if self.images.len() + 1 != self.sizes.len() {
            bail!(
                "grow.images needs one count per size but the last ({} sizes, {} counts)",
                self.sizes.len(),
                self.images.len()
            );
        }
        if self.images.contains(&0) {
            bail!("grow.images must be > 0");
        }
        if self.images.iter().skip(1).any(|&n| n < self.fade) {
            bail!(
                "grow.fade ({}) must fit in every phase after the first",
                self.fade
            );
        }
        if self.sizes.len() > 1 && !model.progressive {
            bail!("growing needs a progressive model (model.progressive = true)");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `grow96`'s schedule: the size after N images, the fades, and the counts the docs name.
    #[test]
    fn the_level_follows_the_images_shown() {
        let model = ModelConfig::grow96();
        let g = GrowSchedule {
            sizes: vec![[24, 20], [48, 40], [96, 80]],
            images: vec![30_000, 60_000],
            fade: 20_000,
        };
        g.validate(&model).unwrap();
        let at = |n| {
            let l = g.level_at(&model, n);
            (l.size(&model), l.alpha)
        };
        assert_eq!(at(0), ((24, 20), 1.0));
        assert_eq!(at(29_999), ((24, 20), 1.0));
        assert_eq!(at(30_000), ((48, 40), 0.0));
        assert_eq!(at(40_000), ((48, 40), 0.5));
        assert_eq!(at(50_000), ((48, 40), 1.0));
        assert_eq!(at(90_000), ((96, 80), 0.0));
        assert_eq!(at(110_000), ((96, 80), 1.0));
        assert_eq!(at(10_000_000), ((96, 80), 1.0));
        assert_eq!(g.images_to_full_size(), 110_000);
        let began = |n| g.size_began_at(n);
        assert_eq!((began(0), began(29_999), began(30_000)), (0, 0, 30_000));
        assert_eq!(
            (began(89_999), began(90_000), began(10_000_000)),
            (30_000, 90_000, 90_000)
        );
    }

    /// A schedule that does not fit the model is refused, saying what to fix.
    #[test]
    fn a_schedule_that_does_not_fit_the_model_is_refused() {
        let model = ModelConfig::grow96();
        let ok = GrowSchedule {
            sizes: vec![[48, 40], [96, 80]],
            images: vec![1000],
            fade: 500,
        };
        ok.validate(&model).unwrap();
        let bad = |f: &dyn Fn(&mut GrowSchedule), why: &str, model: &ModelConfig| {
            let mut g = ok.clone();
            f(&mut g);
            let e = g.validate(model).unwrap_err().to_string();
            assert!(e.contains(why), "{why}: {e}");
        };
        bad(
            &|g| g.sizes = vec![[48, 40]],
            "end with the model's size",
            &model,
        );
        bad(&|g| g.sizes = vec![[24, 20], [96, 80]], "double", &model);
        bad(&|g| g.images = vec![], "one count per size", &model);
        bad(&|g| g.images = vec![0], "> 0", &model);
        bad(
            &|g| {
                g.sizes = vec![[24, 20], [48, 40], [96, 80]];
                g.images = vec![1000, 100]
            },
            "fit in every phase",
            &model,
        );
        bad(
            &|g| {
                g.sizes = vec![[6, 5], [12, 10], [24, 20], [48, 40], [96, 80]];
                g.images = vec![1000; 4]
            },
            "smallest",
            &model,
        );
        bad(&|_| {}, "progressive", &ModelConfig::faces96());
    }
}
