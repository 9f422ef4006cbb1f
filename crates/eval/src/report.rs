//! The eval report page: one self-contained HTML file (images inlined as base64) with the grids,
//! interpolation, nearest neighbours, a metrics table and the training curves.

use std::path::Path;

use anyhow::{Context, Result};
use base64::Engine;
use facegan_trainer::artifacts::{write_atomic, EpochMetrics};

use crate::EvalReport;

fn inline_image(path: &Path, mime: &str) -> String {
    match std::fs::read(path) {
        Ok(b) => format!(
            "<img src=\"data:{mime};base64,{}\" alt=\"{}\">",
            base64::engine::general_purpose::STANDARD.encode(b),
            path.file_name().unwrap_or_default().to_string_lossy()
        ),
        Err(_) => format!(
            "<p class=\"missing\">({} not available)</p>",
            path.display()
        ),
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// An SVG line chart of the per-epoch losses.
fn loss_svg(rows: &[EpochMetrics]) -> String {
    if rows.is_empty() {
        return "<p>No metrics.csv rows.</p>".into();
    }
    let (w, h, pad) = (640.0, 260.0, 36.0);
    let max_e = rows.iter().map(|r| r.epoch).max().unwrap_or(1).max(1) as f64;
    let max_y = rows
        .iter()
        .flat_map(|r| [r.loss_d, r.loss_g])
        .filter(|v| v.is_finite())
        .fold(1.0f64, f64::max)
        * 1.1;
    let pt = |e: usize, v: f64| {
        (
            pad + (e as f64 / max_e) * (w - 2.0 * pad),
            h - pad - (v / max_y) * (h - 2.0 * pad),
        )
    };
    let line = |f: &dyn Fn(&EpochMetrics) -> f64, color: &str| {
        let pts: Vec<String> = rows
            .iter()
            .map(|r| {
                let (x, y) = pt(r.epoch, f(r));
                format!("{x:.1},{y:.1}")
            })
            .collect();
        format!(
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
            pts.join(" ")
        )
    };
    format!(
        "<svg width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" xmlns=\"http://www.w3.org/2000/svg\">\
<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\
<line x1=\"{pad}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#444\"/><line x1=\"{pad}\" y1=\"{pad}\" x2=\"{pad}\" y2=\"{b}\" stroke=\"#444\"/>\
{}{}{}{}\
<text x=\"{pad}\" y=\"20\" font-size=\"12\">loss_d (red), loss_g (blue), D(x) (green), D(G(z)) (orange); y max {max_y:.2}, epochs 1..{max_e}</text></svg>",
        line(&|r| r.loss_d, "#c82828"),
        line(&|r| r.loss_g, "#2850c8"),
        line(&|r| r.d_real, "#28a03c"),
        line(&|r| r.d_fake, "#e68c14"),
        b = h - pad,
        r = w - pad,
    )
}

/// The trainer's quality curve (`RUN/quality.png`, beside the `eval/` folder), when it has one.
fn quality_figure(dir: &Path) -> String {
    match dir.parent().map(|run| run.join("quality.png")) {
        Some(p) if p.is_file() => format!(
            "<figure>{}<figcaption>SWD of the sampling generator against the holdout while training \
             (quality.png; the best point is kept as checkpoints/best)</figcaption></figure>",
            inline_image(&p, "image/png")
        ),
        _ => "<p>No quality curve: the run was trained with its quality probe off.</p>".into(),
    }
}

pub fn write_html(dir: &Path, r: &EvalReport, metrics: &[EpochMetrics]) -> Result<()> {
    let mut rows = String::new();
    let mut row = |k: &str, v: String| {
        rows.push_str(&format!("<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(&v)))
    };
    row("source of fakes", r.source.clone());
    row(
        "images per side",
        r.swd_fake_vs_holdout.images_per_side.to_string(),
    );
    row(
        "SWD x1e3, fakes vs holdout (avg)",
        format!("{:.3}", r.swd_fake_vs_holdout.average),
    );
    row(
        "SWD x1e3, train vs holdout (noise floor)",
        format!("{:.3}", r.swd_train_vs_holdout.average),
    );
    for (i, ((a, b), (hh, ww))) in r
        .swd_fake_vs_holdout
        .per_level
        .iter()
        .zip(&r.swd_train_vs_holdout.per_level)
        .zip(&r.swd_fake_vs_holdout.level_sizes)
        .enumerate()
    {
        row(
            &format!("SWD level {i} ({hh}x{ww})"),
            format!("{a:.3} (floor {b:.3})"),
        );
    }
    if let Some(a) = &r.d_accuracy_holdout {
        row(
            "D accuracy, holdout reals vs fakes (balanced)",
            format!("{:.3} (real {:.3}, fake {:.3})", a.balanced, a.real, a.fake),
        );
        row(
            "mean D output, holdout real / fake",
            format!("{:.3} / {:.3}", a.mean_d_real, a.mean_d_fake),
        );
    }
    if let Some(a) = &r.d_accuracy_train {
        row(
            "D accuracy, train reals vs fakes (balanced)",
            format!("{:.3} (real {:.3}, fake {:.3})", a.balanced, a.real, a.fake),
        );
    }
    if let Some(c) = &r.checkpoint {
        row("checkpoint", c.to_string());
    }
    row("SWD time", format!("{:.2} s", r.swd_seconds));
    row("eval time", format!("{:.2} s", r.seconds));
    row("tool", r.tool_version.clone());
    let nn_text: String = r
        .nearest_neighbours
        .iter()
        .map(|n| {
            format!(
                "<li>fake {}: {}</li>",
                n.fake_index,
                esc(&n
                    .train_paths
                    .iter()
                    .zip(&n.distances)
                    .map(|(p, d)| format!("{p} ({d:.2})"))
                    .collect::<Vec<_>>()
                    .join(", "))
            )
        })
        .collect();
    let html = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>facegan eval: {run}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; background: #fafafa; color: #222; }}
h1 {{ font-size: 22px; }} h2 {{ font-size: 17px; margin-top: 28px; }}
.row {{ display: flex; gap: 24px; flex-wrap: wrap; align-items: flex-start; }}
figure {{ margin: 0; }} figcaption {{ font-size: 13px; color: #555; }}
img {{ image-rendering: pixelated; max-width: 100%; }}
table {{ border-collapse: collapse; font-size: 14px; }} th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: left; }}
th {{ background: #eee; font-weight: 600; }}
</style></head><body>
<h1>facegan evaluation: {run}</h1>
<div class="row">
<figure>{grid}<figcaption>Generated (grid.png)</figcaption></figure>
<figure>{real}<figcaption>Held-out real faces (real.png)</figcaption></figure>
</div>
<h2>Metrics</h2><table>{rows}</table>
<h2>Quality during training</h2>{quality}
<h2>Training curves</h2>{svg}
<h2>Interpolation</h2>
<div class="row"><figure>{interp}<figcaption>Spherical interpolation rows (interp.png)</figcaption></figure>
<figure>{gif}<figcaption>interp.gif</figcaption></figure></div>
<h2>Nearest training images (memorisation check)</h2>
<figure>{nn}<figcaption>Each row: a generated face, then its 3 nearest training images by L2 at {nh}x{nw}.</figcaption></figure>
<ul>{nn_text}</ul>
</body></html>
"#,
        run = esc(&r.run),
        grid = inline_image(&dir.join("grid.png"), "image/png"),
        real = inline_image(&dir.join("real.png"), "image/png"),
        interp = inline_image(&dir.join("interp.png"), "image/png"),
        gif = inline_image(&dir.join("interp.gif"), "image/gif"),
        nn = inline_image(&dir.join("nn.png"), "image/png"),
        svg = loss_svg(metrics),
        quality = quality_figure(dir),
        nh = r.nn_level.0,
        nw = r.nn_level.1,
    );
    write_atomic(&dir.join("report.html"), html.as_bytes()).context("cannot write report.html")
}
