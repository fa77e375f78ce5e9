//! PNG plots for the benchmark suite: a latency histogram with percentile and target marks, and
//! per-chunk figures against the chunk index with optional reference levels.
//!
//! Drawing uses `plotters`' bitmap backend; text goes through its `ab_glyph` renderer with a TTF font
//! read at run time from a few well-known system paths (no system font library is needed, but a font
//! file is: Debian's `fonts-dejavu-core` provides one). Non-finite values are skipped, and empty input
//! yields empty axes rather than an error.

use std::fmt::Display;
use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::FontStyle;

/// Why a plot could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// None of the known font files could be read; `tried` lists each path with what went wrong.
    #[error("no usable font for the plots (tried {tried}); install Debian's `fonts-dejavu-core`")]
    NoFont {
        /// The paths tried, each with the reason it was not used.
        tried: String,
    },
    /// `plotters` failed to draw or to write the image.
    #[error("drawing the plot failed: {0}")]
    Draw(String),
}

/// Font files tried in order; the first that loads is registered as `sans-serif`.
const FONT_CANDIDATES: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

/// A pixel position on the backend.
type BackendCoord = (i32, i32);

const FONT: &str = "sans-serif";
const WIDTH: u32 = 1000;
const HEIGHT: u32 = 600;
const TITLE_PX: u32 = 24;
const AXIS_DESC_PX: u32 = 16;
const TICK_PX: u32 = 14;
const LEGEND_PX: u32 = 14;
/// Number of histogram bins.
const BINS: u32 = 40;

/// Tableau-10: distinct, print-friendly colours for lines and marks.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
const BAR_FILL: RGBColor = RGBColor(158, 202, 225);
const BAR_EDGE: RGBColor = RGBColor(66, 146, 198);
const MESH_LIGHT: RGBColor = RGBColor(238, 238, 238);
const MESH_BOLD: RGBColor = RGBColor(210, 210, 210);

fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

fn draw_err(e: impl Display) -> PlotError {
    PlotError::Draw(e.to_string())
}

/// Registers the first loadable candidate font as `sans-serif`, once per process. The outcome (including
/// failure) is cached.
fn ensure_font() -> Result<(), PlotError> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let mut tried = Vec::new();
            for path in FONT_CANDIDATES {
                match std::fs::read(path) {
                    Ok(bytes) => {
                        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                        match plotters::style::register_font(FONT, FontStyle::Normal, bytes) {
                            Ok(()) => return Ok(()),
                            Err(_) => tried.push(format!("{path} (not a usable TrueType font)")),
                        }
                    }
                    Err(e) => tried.push(format!("{path} ({e})")),
                }
            }
            Err(tried.join(", "))
        })
        .clone()
        .map_err(|tried| PlotError::NoFont { tried })
}

/// The smallest of 1, 2, 2.5 and 5 times a power of ten that is at least `x`; `x` must be positive.
fn nice_ceil(x: f64) -> f64 {
    let magnitude = 10f64.powf(x.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|v| *v >= x)
        .unwrap_or(10.0 * magnitude)
}

/// A "nice" range covering `lo..=hi` and starting at zero unless values are negative; `0..1` when the
/// inputs are empty or degenerate.
fn nice_range(lo: f64, hi: f64) -> (f64, f64) {
    let lo = if lo < 0.0 { -nice_ceil(-lo) } else { 0.0 };
    let hi = if hi > 0.0 { nice_ceil(hi) } else { 0.0 };
    if hi > lo { (lo, hi) } else { (lo, lo + 1.0) }
}

/// Minimum and maximum of the finite values, or `None` when there are none.
fn finite_bounds(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold(None, |acc, v| Some(acc.map_or((v, v), |(lo, hi): (f64, f64)| (lo.min(v), hi.max(v)))))
}

/// A white 1000×600 canvas backed by the PNG file at `path`.
fn canvas(path: &Path) -> Result<DrawingArea<BitMapBackend<'_>, Shift>, PlotError> {
    let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err)?;
    Ok(root)
}

/// A legend icon: a short solid line in `style`.
fn legend_line(style: ShapeStyle) -> impl Fn(BackendCoord) -> PathElement<BackendCoord> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 19, y)], style)
}

/// A legend icon: a short dashed line in `style`.
fn legend_dashes(
    style: ShapeStyle,
) -> impl Fn(BackendCoord) -> DashedPathElement<std::vec::IntoIter<BackendCoord>, i32> {
    move |(x, y)| DashedPathElement::new(vec![(x, y), (x + 19, y)], 5, 3, style)
}

/// A histogram of latencies in milliseconds with a vertical line for each of `marks` (label, value in ms).
///
/// The x axis runs from 0 (or the most negative value) to the largest latency or mark rounded up to a
/// nice number, split into 40 equal bins; the y axis counts chunks per bin. Each mark is drawn in its own
/// colour and named, with its value, in the legend. Non-finite latencies and marks are skipped; with no
/// data the axes span 0..1.
pub fn latency_distribution(
    path: &Path,
    title: &str,
    x_label: &str,
    latencies_ms: &[f64],
    marks: &[(&str, f64)],
) -> Result<(), PlotError> {
    ensure_font()?;
    let finite: Vec<f64> = latencies_ms.iter().copied().filter(|v| v.is_finite()).collect();
    let marks: Vec<(&str, f64)> = marks.iter().copied().filter(|(_, v)| v.is_finite()).collect();
    let (lo, hi) = finite_bounds(finite.iter().copied().chain(marks.iter().map(|(_, v)| *v)))
        .map_or((0.0, 1.0), |(lo, hi)| nice_range(lo, hi));

    let width = (hi - lo) / f64::from(BINS);
    let edges: Vec<f64> = (0..=BINS).map(|i| lo + width * f64::from(i)).collect();
    let mut counts = vec![0u32; edges.len() - 1];
    for v in &finite {
        // Index of the first edge above `v`, minus one; values on the top edge go to the last bin.
        let bin = edges.partition_point(|e| e <= v).saturating_sub(1).min(counts.len() - 1);
        counts[bin] = counts[bin].saturating_add(1);
    }
    let max_count = counts.iter().copied().max().unwrap_or(0);
    // Headroom above the tallest bar for the legend.
    let y_top = max_count.saturating_add(max_count / 5).saturating_add(1);

    let root = canvas(path)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, TITLE_PX))
        .margin(15)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(lo..hi, 0u32..y_top)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc("chunks")
        .axis_desc_style((FONT, AXIS_DESC_PX))
        .label_style((FONT, TICK_PX))
        .light_line_style(MESH_LIGHT)
        .bold_line_style(MESH_BOLD)
        .draw()
        .map_err(draw_err)?;

    chart
        .draw_series(counts.iter().enumerate().filter(|(_, c)| **c > 0).flat_map(|(i, c)| {
            let (x0, x1) = (edges[i], edges[i + 1]);
            [
                Rectangle::new([(x0, 0), (x1, *c)], BAR_FILL.filled()),
                Rectangle::new([(x0, 0), (x1, *c)], BAR_EDGE.stroke_width(1)),
            ]
        }))
        .map_err(draw_err)?;

    for (i, (label, value)) in marks.iter().enumerate() {
        // Colour 0 is close to the bars' blue; marks start at the next one.
        let style = colour(i + 1).stroke_width(2);
        chart
            .draw_series(LineSeries::new([(*value, 0), (*value, y_top)], style))
            .map_err(draw_err)?
            .label(format!("{label} = {value:.1} ms"))
            .legend(legend_line(style));
    }
    if !marks.is_empty() {
        draw_legend(&mut chart)?;
    }
    root.present().map_err(draw_err)
}

/// One or more per-chunk series against the chunk index (x: chunk index, y: milliseconds), with
/// optional horizontal reference `levels` (label, y).
///
/// Each series is a line in its own colour, named in the legend; points are sorted by chunk index,
/// non-finite values leave a gap, and an isolated point is drawn as a dot. Each level is a dashed
/// line across the whole plot, also in the legend. With no data the axes span 0..1.
pub fn per_chunk(
    path: &Path,
    title: &str,
    y_label: &str,
    series: &[(&str, Vec<(u64, f64)>)],
    levels: &[(&str, f64)],
) -> Result<(), PlotError> {
    ensure_font()?;
    let levels: Vec<(&str, f64)> = levels.iter().copied().filter(|(_, v)| v.is_finite()).collect();
    let sorted: Vec<Vec<(u64, f64)>> = series
        .iter()
        .map(|(_, points)| {
            let mut points = points.clone();
            points.sort_by_key(|(x, _)| *x);
            points
        })
        .collect();

    let finite_points = || sorted.iter().flatten().filter(|(_, y)| y.is_finite());
    let (x_lo, x_hi) = match (finite_points().map(|(x, _)| *x).min(), finite_points().map(|(x, _)| *x).max())
    {
        (Some(lo), Some(hi)) if hi > lo => (lo, hi),
        // A single chunk index sits in the middle of the axis.
        (Some(lo), _) => (lo.saturating_sub(1), lo.saturating_add(1)),
        _ => (0, 1),
    };
    let (y_lo, y_hi) =
        match finite_bounds(finite_points().map(|(_, y)| *y).chain(levels.iter().map(|(_, v)| *v))) {
            Some((lo, hi)) => {
                let lo = lo.min(0.0);
                let hi = if hi > lo { hi } else { lo + 1.0 };
                // Headroom above the data for the legend, growing with its number of entries.
                let entries = f64::from(u32::try_from(series.len() + levels.len()).unwrap_or(u32::MAX));
                (lo, hi + (hi - lo) * (0.05 + 0.05 * entries))
            }
            None => (0.0, 1.0),
        };

    let root = canvas(path)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, TITLE_PX))
        .margin(15)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(x_lo..x_hi, y_lo..y_hi)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc("chunk index")
        .y_desc(y_label)
        .axis_desc_style((FONT, AXIS_DESC_PX))
        .label_style((FONT, TICK_PX))
        .light_line_style(MESH_LIGHT)
        .bold_line_style(MESH_BOLD)
        .draw()
        .map_err(draw_err)?;

    for (i, ((label, _), points)) in series.iter().zip(&sorted).enumerate() {
        let style = colour(i).stroke_width(2);
        // Runs of finite values; a non-finite value ends a run.
        let runs: Vec<&[(u64, f64)]> =
            points.split(|(_, y)| !y.is_finite()).filter(|run| !run.is_empty()).collect();
        chart
            .draw_series(LineSeries::new(runs.first().map(|r| r.to_vec()).unwrap_or_default(), style))
            .map_err(draw_err)?
            .label(*label)
            .legend(legend_line(style));
        for run in runs.iter().skip(1) {
            chart.draw_series(LineSeries::new(run.iter().copied(), style)).map_err(draw_err)?;
        }
        chart
            .draw_series(runs.iter().filter(|r| r.len() == 1).map(|r| Circle::new(r[0], 3, style.filled())))
            .map_err(draw_err)?;
    }
    for (i, (label, value)) in levels.iter().enumerate() {
        let style = colour(series.len() + i).stroke_width(2);
        chart
            .draw_series(DashedLineSeries::new([(x_lo, *value), (x_hi, *value)], 10, 6, style))
            .map_err(draw_err)?
            .label(format!("{label} = {value:.1}"))
            .legend(legend_dashes(style));
    }
    if !series.is_empty() || !levels.is_empty() {
        draw_legend(&mut chart)?;
    }
    root.present().map_err(draw_err)
}

/// Draws the legend box in the upper-right corner of the plotting area.
fn draw_legend<'a, 'p: 'a, X, Y>(
    chart: &mut ChartContext<'a, BitMapBackend<'p>, Cartesian2d<X, Y>>,
) -> Result<(), PlotError>
where
    X: Ranged,
    Y: Ranged,
{
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FONT, LEGEND_PX))
        .legend_area_size(24)
        .background_style(WHITE.mix(0.85))
        .border_style(MESH_BOLD)
        .draw()
        .map_err(draw_err)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];

    fn assert_png(path: &Path, min_len: usize) {
        let bytes = std::fs::read(path).unwrap();
        assert!(bytes.starts_with(&PNG_SIGNATURE), "{} is not a PNG", path.display());
        assert!(bytes.len() > min_len, "{} is only {} bytes", path.display(), bytes.len());
    }

    fn latencies() -> Vec<f64> {
        // A skewed, deterministic spread between ~5 and ~80 ms.
        (0..500u32)
            .map(|i| 5.0 + f64::from((i * 37) % 100).powf(1.6) / 2.0 / 10.0 + f64::from(i % 7))
            .collect()
    }

    #[test]
    fn latency_distribution_writes_a_png() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latency.png");
        let marks = [("p50", 21.0), ("p95", 48.0), ("target p50", 50.0), ("target p95", 150.0)];
        latency_distribution(
            &path,
            "Publish-to-detection latency",
            "milliseconds from publish confirm to committed detections",
            &latencies(),
            &marks,
        )
        .unwrap();
        assert_png(&path, 8 * 1024);
    }

    #[test]
    fn per_chunk_writes_a_png() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("per_chunk.png");
        let a: Vec<(u64, f64)> =
            (0..200u32).map(|i| (u64::from(i), 20.0 + f64::from(i % 13) * 1.5)).collect();
        let b: Vec<(u64, f64)> = (0..200u32).map(|i| (u64::from(i), 8.0 + f64::from(i % 5))).collect();
        let mean = a.iter().take(60).map(|(_, y)| y).sum::<f64>() / 60.0;
        per_chunk(
            &path,
            "Per-chunk processing time",
            "milliseconds",
            &[("total", a), ("commit", b)],
            &[("mean of first 60", mean), ("1.15 × mean", mean * 1.15)],
        )
        .unwrap();
        assert_png(&path, 8 * 1024);
    }

    #[test]
    fn empty_input_draws_empty_axes() {
        let dir = tempfile::tempdir().unwrap();
        let hist = dir.path().join("empty_hist.png");
        latency_distribution(&hist, "empty", "ms", &[], &[]).unwrap();
        assert_png(&hist, 2 * 1024);
        let lines = dir.path().join("empty_lines.png");
        per_chunk(&lines, "empty", "ms", &[], &[]).unwrap();
        assert_png(&lines, 2 * 1024);
        let lines = dir.path().join("empty_series.png");
        per_chunk(&lines, "empty series", "ms", &[("nothing", Vec::new())], &[]).unwrap();
        assert_png(&lines, 2 * 1024);
    }

    #[test]
    fn non_finite_values_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let hist = dir.path().join("nan_hist.png");
        latency_distribution(
            &hist,
            "with NaN",
            "ms",
            &[f64::NAN, 3.0, f64::INFINITY, 7.5, f64::NEG_INFINITY],
            &[("p50", f64::NAN), ("p95", 7.0)],
        )
        .unwrap();
        assert_png(&hist, 2 * 1024);
        let lines = dir.path().join("nan_lines.png");
        let points = vec![(0, 1.0), (1, f64::NAN), (2, 3.0), (3, 2.0), (4, f64::INFINITY), (5, 4.0)];
        per_chunk(
            &lines,
            "with NaN",
            "ms",
            &[("s", points), ("all NaN", vec![(0, f64::NAN)])],
            &[("lvl", f64::NAN)],
        )
        .unwrap();
        assert_png(&lines, 2 * 1024);
    }

    #[test]
    fn single_values_are_drawn() {
        let dir = tempfile::tempdir().unwrap();
        let hist = dir.path().join("single_hist.png");
        latency_distribution(&hist, "one value", "ms", &[42.0], &[]).unwrap();
        assert_png(&hist, 2 * 1024);
        let zero = dir.path().join("zero_hist.png");
        latency_distribution(&zero, "one zero", "ms", &[0.0], &[]).unwrap();
        assert_png(&zero, 2 * 1024);
        let lines = dir.path().join("single_lines.png");
        per_chunk(&lines, "one point", "ms", &[("s", vec![(7, 12.5)])], &[("lvl", 10.0)]).unwrap();
        assert_png(&lines, 2 * 1024);
    }

    #[test]
    fn nice_ceil_rounds_up_to_nice_numbers() {
        let cases =
            [(0.7, 1.0), (1.0, 1.0), (1.3, 2.0), (2.2, 2.5), (48.0, 50.0), (150.0, 200.0), (600.0, 1000.0)];
        for (x, want) in cases {
            assert!((nice_ceil(x) - want).abs() < 1e-9, "nice_ceil({x}) = {}", nice_ceil(x));
        }
        let (lo, hi) = nice_range(-3.0, 0.0);
        assert!((lo + 5.0).abs() < 1e-9 && hi.abs() < 1e-9);
    }
}
