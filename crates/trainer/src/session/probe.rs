//! The live quality probe inside a training session: when it runs, what it writes
//! (`quality.csv`, `train.log`, `checkpoints/best/`), and the line it prints.

use std::path::Path;

use anyhow::Result;
use burn::tensor::backend::AutodiffBackend;
use facegan_common::progress::ProgressBar;

use super::Session;
use crate::artifacts;
use crate::checkpoint::{self, BestScore, TrainState};
use crate::gan::Gan;
use crate::quality::{self, QualityPoint, QualityProbe};
use crate::run_dir::print_and_log;

impl<B: AutodiffBackend> Session<'_, B> {
    /// Runs the quality probe when `forced` or when the schedule says it is due.
    pub(super) fn probe_if_due(&mut self, forced: bool, pb: &ProgressBar) -> Result<()> {
        let Some(p) = &self.probe else {
            return Ok(());
        };
        if !(forced
            || self
                .schedule
                .due(self.state.images_seen, self.state.next_probe_at))
        {
            return Ok(());
        }
        let (q, line) = run_probe(
            self.run,
            p,
            &self.gan,
            &mut self.state,
            &mut self.curve,
            self.device,
        )?;
        self.schedule.done(q.probe_seconds);
        if self.opts.progress {
            pb.println(line);
        } else {
            println!("{line}");
        }
        Ok(())
    }
}

/// Scores the sampling generator (at the level it trains at: a growing run's smaller phases
/// against the holdout at that size, said in the point's `size`), appends the point to
/// `quality.csv` and `train.log`, and keeps `checkpoints/best/` when a full-size score is the
/// run's best so far. Returns the new point and the line logged for it (which says so when this
/// probe first prepared a smaller size's holdout and floor, timed apart from its own cost).
fn run_probe<B: AutodiffBackend>(
    run: &Path,
    probe: &QualityProbe,
    gan: &Gan<B>,
    state: &mut TrainState,
    curve: &mut Vec<QualityPoint>,
    device: &B::Device,
) -> Result<(QualityPoint, String)> {
    let g = gan.generator_eval();
    let level = gan.level;
    let scored = probe.score_at::<B::InnerBackend>(&g, level, Some(&gan.cfg.model), device);
    let (score, floor, seconds) = (&scored.swd, &scored.floor, scored.seconds);
    let size = scored
        .size
        .map_or(String::new(), |(h, w)| match level.fading() {
            true => format!("{h}x{w} fading {:.2}", level.alpha),
            false => format!("{h}x{w}"),
        });
    let every = state.config.eval_every.max(1);
    state.next_probe_at = (state.images_seen / every + 1) * every;
    let point = QualityPoint {
        step: state.step,
        images_seen: state.images_seen,
        train_minutes: state.train_seconds / 60.0,
        swd: score.average,
        swd_finest: score.per_level[0],
        floor: floor.average,
        floor_finest: floor.per_level[0],
        probe_seconds: seconds,
        swd_std: score.spread.as_ref().map_or(0.0, |s| s.average),
        swd_finest_std: score.spread.as_ref().map_or(0.0, |s| s.per_level[0]),
        floor_std: floor.spread.as_ref().map_or(0.0, |s| s.average),
        size,
    };
    curve.retain(|q| q.images_seen != point.images_seen);
    curve.push(point.clone());
    quality::write_quality(&run.join("quality.csv"), curve)?;
    // Only the full size competes for `best`: a smaller phase scores other images.
    if point.at_full_size() && is_new_best(point.swd, state.best.as_ref()) {
        state.best = Some(BestScore {
            swd: point.swd,
            step: point.step,
            images_seen: point.images_seen,
        });
        checkpoint::save_best(run, gan, state)?;
    }
    let mut line = probe_line(&point, state);
    if scored.prepared_seconds > 0.0 {
        line += &format!(
            " (the holdout and floor at {} first prepared in {:.0} s, apart from the probe's {:.0} s)",
            point.size, scored.prepared_seconds, point.probe_seconds
        );
    }
    artifacts::log_line(run, &line);
    Ok((point, line))
}

/// Whether a probe's score beats the run's best so far. A non-finite score (a diverged run) is
/// never the best: `checkpoints/best/` keeps the last good one.
fn is_new_best(swd: f64, best: Option<&BestScore>) -> bool {
    swd.is_finite() && best.is_none_or(|b| swd < b.swd)
}

fn probe_line(q: &QualityPoint, state: &TrainState) -> String {
    let best = state.best.as_ref();
    format!(
        "quality at {} images ({:.1} min){}: SWD {:.1} (finest {:.1}), {:.2}x the floor {:.1}{}",
        q.images_seen,
        q.train_minutes,
        match q.at_full_size() {
            true => String::new(),
            false => format!(" at {}", q.size),
        },
        q.swd,
        q.swd_finest,
        q.swd / q.floor.max(1e-9),
        q.floor,
        if best.is_some_and(|b| b.images_seen == q.images_seen) {
            "  [best so far, saved to checkpoints/best]".to_string()
        } else {
            best.map_or(String::new(), |b| format!("  (best {:.1})", b.swd))
        }
    )
}

/// What the quality probe scores against, printed and logged once.
pub(super) fn announce_probe(run: &Path, p: &QualityProbe, eval_every: u64) {
    let f = p.floor();
    print_and_log(
        run,
        &format!(
            "quality probe: SWD of the sampling generator vs {} holdout images every {} images; floor (train vs holdout) {:.1}, finest level {:.1}",
            p.images(),
            eval_every,
            f.average,
            f.per_level[0]
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_finite_score_is_never_the_best() {
        let best = BestScore {
            swd: 20.0,
            step: 10,
            images_seen: 640,
        };
        assert!(is_new_best(19.0, Some(&best)));
        assert!(!is_new_best(21.0, Some(&best)));
        assert!(
            is_new_best(25.0, None),
            "the first finite score is the best so far"
        );
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(!is_new_best(bad, None), "{bad}");
            assert!(!is_new_best(bad, Some(&best)), "{bad}");
        }
    }
}
