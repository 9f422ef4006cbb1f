//! Line charts as PNG (plotters, with the DejaVu font built in): a run's loss and quality
//! charts and `facegan compare`'s, each line optionally with the band of its spread.

use std::path::Path;

use anyhow::Result;

use crate::images::save_png;

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font(
            "sans-serif",
            plotters::style::FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

/// One line of a chart: its legend name, colour and points, and the band of its spread
/// (`y ± std` at each point; empty for none).
pub struct Line {
    pub name: String,
    pub rgb: (u8, u8, u8),
    pub points: Vec<(f64, f64)>,
    pub spread: Vec<f64>,
}

/// Draws line series on one 800x480 chart (y from 0) and saves it as a PNG.
pub fn write_line_chart(
    path: &Path,
    caption: &str,
    (x_desc, y_desc): (&str, &str),
    (max_x, max_y): (f64, f64),
    lines: Vec<Line>,
) -> Result<()> {
    use plotters::prelude::*;
    register_font();
    let (w, h) = (800u32, 480u32);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    let err = |e: &dyn std::fmt::Display| anyhow::anyhow!("{}: plot: {e}", path.display());
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(0f64..max_x, 0f64..max_y)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .draw()
            .map_err(|e| err(&e))?;
        for line in lines {
            let color = RGBColor(line.rgb.0, line.rgb.1, line.rgb.2);
            if line.spread.iter().any(|s| *s > 0.0) {
                // The band: up along y + std, back along y - std.
                let upper = line
                    .points
                    .iter()
                    .zip(&line.spread)
                    .map(|(&(x, y), s)| (x, y + s));
                let lower = line
                    .points
                    .iter()
                    .zip(&line.spread)
                    .rev()
                    .map(|(&(x, y), s)| (x, (y - s).max(0.0)));
                chart
                    .draw_series(std::iter::once(Polygon::new(
                        upper.chain(lower).collect::<Vec<_>>(),
                        color.mix(0.18).filled(),
                    )))
                    .map_err(|e| err(&e))?;
            }
            chart
                .draw_series(LineSeries::new(line.points, color.stroke_width(2)))
                .map_err(|e| err(&e))?
                .label(line.name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    let img = image::RgbImage::from_raw(w, h, buf).expect("plot buffer size");
    save_png(path, &img).map_err(|e| anyhow::anyhow!("{e}"))
}

/// The largest finite value of `values` (at least `floor`), times 1.1: a y range.
pub fn y_max(values: impl Iterator<Item = f64>, floor: f64) -> f64 {
    values.filter(|v| v.is_finite()).fold(floor, f64::max) * 1.1
}

/// One line of a chart drawn from rows of `T`: legend name, colour, the y value of a row and
/// its spread (0 for none).
pub type Series<T> = (&'static str, (u8, u8, u8), fn(&T) -> f64, fn(&T) -> f64);

/// The chart lines of `series` over `rows`, with x from `x`.
pub fn lines_of<T>(rows: &[T], x: impl Fn(&T) -> f64, series: &[Series<T>]) -> Vec<Line> {
    series
        .iter()
        .map(|&(name, rgb, y, spread)| Line {
            name: name.to_string(),
            rgb,
            points: rows.iter().map(|r| (x(r), y(r))).collect(),
            spread: rows.iter().map(spread).collect(),
        })
        .collect()
}
