//! Line charts of the comparison reports, drawn with `plotters` (SVG
//! backend): latency by percentile (log-log, the x axis stretched towards
//! the tail), and messages/s or latency over the seconds of a phase.

use std::ops::Range;

use anyhow::{Result, anyhow};
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub dashed: bool,
    /// Index into the palette: lines of one system share a colour.
    pub color: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum XAxis {
    /// x is a quantile in [0.5, 1): plotted at -log10(1 - q).
    Percentile,
    /// x in seconds, linear from 0.
    Seconds,
}

const W: u32 = 900;
const H: u32 = 440;
/// Width of the legend beside the plot.
const LEGEND: u32 = 270;
const FONT: &str = "sans-serif";
const COLORS: [RGBColor; 8] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x17, 0xbe, 0xcf),
];
const PERCENTILES: [f64; 6] = [0.5, 0.9, 0.99, 0.999, 0.9999, 0.99999];

fn to_x(axis: XAxis, v: f64) -> f64 {
    match axis {
        XAxis::Percentile => -(1.0 - v).max(1e-9).log10(),
        XAxis::Seconds => v,
    }
}

fn to_y(log_y: bool, v: f64) -> f64 {
    if log_y { v.log10() } else { v }
}

fn fmt_num(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 1000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v.abs() >= 1.0 {
        format!("{v:.0}")
    } else if v.abs() >= 0.1 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// 99.900 → "99.9", 50 → "50".
fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The plotted (transformed) range of every usable point, widened to whole
/// decades on a log axis and to start at zero on a linear one.
fn bounds(axis: XAxis, log_y: bool, series: &[Series]) -> ((f64, f64), (f64, f64)) {
    let (mut x0, mut x1) = match axis {
        XAxis::Percentile => (to_x(axis, 0.5), to_x(axis, 0.9999)),
        XAxis::Seconds => (0.0, 1.0),
    };
    let (mut y0, mut y1) = (f64::MAX, f64::MIN);
    for (px, py) in series.iter().flat_map(|s| usable(s, axis, log_y)) {
        x0 = x0.min(px);
        x1 = x1.max(px);
        y0 = y0.min(py);
        y1 = y1.max(py);
    }
    if y0 > y1 {
        (y0, y1) = (0.0, 1.0);
    }
    if log_y {
        y0 = y0.floor();
        y1 = y1.ceil().max(y0 + 1.0);
    } else {
        y0 = y0.min(0.0);
        y1 = if y1 <= y0 { y0 + 1.0 } else { y1 * 1.05 };
    }
    ((x0, x1), (y0, y1))
}

/// A series' points as plotted; non-finite values, and values ≤ 0 on a log
/// axis, are dropped.
fn usable(s: &Series, axis: XAxis, log_y: bool) -> Vec<(f64, f64)> {
    s.points
        .iter()
        .filter(|(x, y)| x.is_finite() && y.is_finite() && (!log_y || *y > 0.0))
        .map(|&(x, y)| (to_x(axis, x), to_y(log_y, y)))
        .collect()
}

/// A linear f64 axis whose grid lines and labels sit at given values (the
/// percentiles, whole decades), labelled by the chart's formatter.
struct Ticked {
    inner: RangedCoordf64,
    ticks: Vec<f64>,
}

impl Ticked {
    fn new((lo, hi): (f64, f64), ticks: Vec<f64>) -> Self {
        Self {
            inner: RangedCoordf64::from(lo..hi),
            ticks,
        }
    }
}

impl Ranged for Ticked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        // Only bold lines: no light grid between the ticks.
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.inner.range()
    }
}

fn x_ticks(axis: XAxis, (lo, hi): (f64, f64)) -> Vec<f64> {
    match axis {
        XAxis::Percentile => PERCENTILES
            .iter()
            .map(|&q| to_x(axis, q))
            .filter(|&v| v <= hi + 1e-9)
            .collect(),
        XAxis::Seconds => nice_ticks(lo, hi),
    }
}

fn nice_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let raw = ((hi - lo) / 6.0).max(f64::MIN_POSITIVE);
    let mag = 10f64.powf(raw.log10().floor());
    let step = mag
        * match raw / mag {
            n if n <= 1.0 => 1.0,
            n if n <= 2.0 => 2.0,
            n if n <= 5.0 => 5.0,
            _ => 10.0,
        };
    (0..=((hi - lo) / step) as i64)
        .map(|i| lo + i as f64 * step)
        .collect()
}

/// A chart as an SVG document. `log_y` uses a log10 y axis.
pub fn line_chart(
    title: &str,
    y_label: &str,
    x: XAxis,
    log_y: bool,
    series: &[Series],
) -> Result<String> {
    let mut svg = String::new();
    draw(&mut svg, title, y_label, x, log_y, series)
        .map_err(|e| anyhow!("cannot draw the chart {title:?}: {e}"))?;
    Ok(svg)
}

fn draw(
    svg: &mut String,
    title: &str,
    y_label: &str,
    x: XAxis,
    log_y: bool,
    series: &[Series],
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::with_string(svg, (W, H)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, (FONT, 16).into_font().style(FontStyle::Bold))?;
    let (plot, legend) = root.split_horizontally(W - LEGEND);
    let ((x0, x1), (y0, y1)) = bounds(x, log_y, series);
    let y_keys: Vec<f64> = if log_y {
        (y0 as i64..=y1 as i64).map(|e| e as f64).collect()
    } else {
        nice_ticks(y0, y1)
    };
    let mut chart = ChartBuilder::on(&plot)
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(
            Ticked::new((x0, x1), x_ticks(x, (x0, x1))),
            Ticked::new((y0, y1), y_keys),
        )?;
    let x_desc = match x {
        XAxis::Percentile => "percentile",
        XAxis::Seconds => "seconds since the phase started",
    };
    let x_fmt = |v: &f64| match x {
        XAxis::Percentile => format!("p{}", trim((1.0 - 10f64.powf(-*v)) * 100.0)),
        XAxis::Seconds => format!("{v:.0}"),
    };
    let y_fmt = |v: &f64| fmt_num(if log_y { 10f64.powf(*v) } else { *v });
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_label)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .label_style((FONT, 12))
        .bold_line_style(RGBColor(0xdd, 0xdd, 0xdd))
        .draw()?;
    for s in series {
        let style = COLORS[s.color % COLORS.len()].stroke_width(2);
        let points = usable(s, x, log_y);
        if points.is_empty() {
            continue;
        }
        if s.dashed {
            chart.draw_series(DashedLineSeries::new(points, 6, 4, style))?;
        } else {
            chart.draw_series(LineSeries::new(points, style))?;
        }
    }
    // The legend: one line per series, beside the plot.
    for (i, s) in series.iter().enumerate() {
        let style = COLORS[s.color % COLORS.len()].stroke_width(2);
        let y = 40 + 18 * i as i32;
        if s.dashed {
            legend.draw(&PathElement::new(vec![(8, y), (15, y)], style))?;
            legend.draw(&PathElement::new(vec![(21, y), (28, y)], style))?;
        } else {
            legend.draw(&PathElement::new(vec![(8, y), (28, y)], style))?;
        }
        legend.draw(&Text::new(s.name.clone(), (34, y - 7), (FONT, 12)))?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_both_kinds() -> Result<()> {
        let s = vec![
            Series {
                name: "a<b".into(),
                points: vec![(0.5, 1.0), (0.99, 5.0), (0.9999, 40.0)],
                dashed: false,
                color: 0,
            },
            Series {
                name: "c".into(),
                points: vec![(0.5, 0.0), (0.9, 2.0), (0.99, 3.0)],
                dashed: true,
                color: 1,
            },
        ];
        let svg = line_chart("t", "ms", XAxis::Percentile, true, &s)?;
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("a&lt;b") && svg.contains("p99.99"), "{svg}");
        // Series are drawn 2 px wide in their colour; axes 1 px in black.
        let solid = svg
            .lines()
            .filter(|l| {
                l.contains("<polyline") && l.contains(r##"stroke="#1F77B4" stroke-width="2""##)
            })
            .count();
        let dashed = svg
            .lines()
            .filter(|l| l.contains(r##"stroke="#D62728" stroke-width="2""##))
            .count();
        // One line for "a<b" plus its legend sample; "c" in dashes.
        assert_eq!(solid, 2, "{svg}");
        assert!(dashed > 2, "{svg}");
        let t = line_chart("t", "msgs/s", XAxis::Seconds, false, &[])?;
        assert!(t.contains("</svg>"));
        assert_eq!(trim(99.9), "99.9");
        assert_eq!(fmt_num(2500.0), "2k");
        Ok(())
    }
}
