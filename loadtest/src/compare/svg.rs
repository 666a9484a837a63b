//! Hand-written SVG line charts: latency by percentile (log-log, the
//! x axis stretched towards the tail) and throughput over time.

use std::fmt::Write as _;

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

const W: f64 = 860.0;
const H: f64 = 420.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 270.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn nice_step(range: f64) -> f64 {
    let raw = (range / 6.0).max(f64::MIN_POSITIVE);
    let mag = 10f64.powf(raw.log10().floor());
    let n = raw / mag;
    mag * if n <= 1.0 {
        1.0
    } else if n <= 2.0 {
        2.0
    } else if n <= 5.0 {
        5.0
    } else {
        10.0
    }
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

/// A chart as an SVG document. `log_y` uses a log10 y axis (values must
/// be > 0; others are dropped).
pub fn line_chart(title: &str, y_label: &str, x: XAxis, log_y: bool, series: &[Series]) -> String {
    let fx = |v: f64| match x {
        XAxis::Percentile => -(1.0 - v).max(1e-9).log10(),
        XAxis::Seconds => v,
    };
    let fy = |v: f64| if log_y { v.log10() } else { v };
    let usable = |&(px, py): &(f64, f64)| px.is_finite() && py.is_finite() && (!log_y || py > 0.0);
    let all: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().copied().filter(usable))
        .map(|(px, py)| (fx(px), fy(py)))
        .collect();
    let (mut x0, mut x1) = match x {
        XAxis::Percentile => (fx(0.5), fx(0.9999)),
        XAxis::Seconds => (0.0, 1.0),
    };
    let (mut y0, mut y1) = (f64::MAX, f64::MIN);
    for &(px, py) in &all {
        x1 = x1.max(px);
        x0 = x0.min(px);
        y0 = y0.min(py);
        y1 = y1.max(py);
    }
    if all.is_empty() {
        (y0, y1) = (0.0, 1.0);
    }
    if log_y {
        y0 = y0.floor();
        y1 = y1.ceil().max(y0 + 1.0);
    } else {
        y0 = y0.min(0.0);
        y1 = if y1 <= y0 { y0 + 1.0 } else { y1 * 1.05 };
    }
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let sx = |v: f64| LEFT + (v - x0) / (x1 - x0).max(1e-12) * pw;
    let sy = |v: f64| TOP + ph - (v - y0) / (y1 - y0).max(1e-12) * ph;

    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15" font-weight="bold">{}</text>"#,
        LEFT + pw / 2.0,
        esc(title)
    );
    // Y grid and labels.
    let y_ticks: Vec<f64> = if log_y {
        (y0 as i64..=y1 as i64).map(|e| e as f64).collect()
    } else {
        let step = nice_step(y1 - y0);
        (0..=((y1 - y0) / step) as i64)
            .map(|i| y0 + i as f64 * step)
            .collect()
    };
    for t in y_ticks {
        let y = sy(t);
        let label = if log_y {
            fmt_num(10f64.powf(t))
        } else {
            fmt_num(t)
        };
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{label}</text>"##,
            LEFT + pw,
            LEFT - 6.0,
            y + 4.0
        );
    }
    // X grid and labels.
    let x_ticks: Vec<(f64, String)> = match x {
        XAxis::Percentile => [0.5, 0.9, 0.99, 0.999, 0.9999, 0.99999]
            .iter()
            .filter(|&&q| fx(q) <= x1 + 1e-9)
            .map(|&q| (fx(q), format!("p{}", trim(q * 100.0))))
            .collect(),
        XAxis::Seconds => {
            let step = nice_step(x1 - x0).max(1.0);
            (0..=((x1 - x0) / step) as i64)
                .map(|i| {
                    let v = x0 + i as f64 * step;
                    (v, format!("{v:.0}"))
                })
                .collect()
        }
    };
    for (v, label) in x_ticks {
        let px = sx(v);
        let _ = writeln!(
            out,
            r##"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{:.1}" stroke="#eee"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{label}</text>"##,
            TOP + ph,
            TOP + ph + 16.0
        );
    }
    let x_label = match x {
        XAxis::Percentile => "percentile",
        XAxis::Seconds => "seconds since the phase started",
    };
    let _ = writeln!(
        out,
        r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>
<text x="{:.1}" y="{:.1}" text-anchor="middle">{x_label}</text>
<text x="16" y="{:.1}" text-anchor="middle" transform="rotate(-90 16 {:.1})">{}</text>"##,
        LEFT + pw / 2.0,
        H - 12.0,
        TOP + ph / 2.0,
        TOP + ph / 2.0,
        esc(y_label)
    );
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[s.color % COLORS.len()];
        let pts: Vec<String> = s
            .points
            .iter()
            .copied()
            .filter(usable)
            .map(|(px, py)| format!("{:.1},{:.1}", sx(fx(px)), sy(fy(py))))
            .collect();
        let dash = if s.dashed {
            r#" stroke-dasharray="6 4""#
        } else {
            ""
        };
        if !pts.is_empty() {
            let _ = writeln!(
                out,
                r#"<polyline fill="none" stroke="{color}" stroke-width="2"{dash} points="{}"/>"#,
                pts.join(" ")
            );
        }
        let ly = TOP + 10.0 + i as f64 * 18.0;
        let lx = LEFT + pw + 12.0;
        let _ = writeln!(
            out,
            r#"<line x1="{lx}" y1="{ly}" x2="{:.1}" y2="{ly}" stroke="{color}" stroke-width="2"{dash}/><text x="{:.1}" y="{:.1}">{}</text>"#,
            lx + 22.0,
            lx + 28.0,
            ly + 4.0,
            esc(&s.name)
        );
    }
    out.push_str("</svg>\n");
    out
}

/// 99.900 → "99.9", 50 → "50".
fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_both_kinds() {
        let s = vec![
            Series {
                name: "a<b".into(),
                points: vec![(0.5, 1.0), (0.99, 5.0), (0.9999, 40.0)],
                dashed: false,
                color: 0,
            },
            Series {
                name: "c".into(),
                points: vec![(0.5, 0.0), (0.9, 2.0)],
                dashed: true,
                color: 1,
            },
        ];
        let svg = line_chart("t", "ms", XAxis::Percentile, true, &s);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("a&lt;b") && svg.contains("p99.99"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        let t = line_chart("t", "msgs/s", XAxis::Seconds, false, &[]);
        assert!(t.contains("</svg>"));
        assert_eq!(trim(99.9), "99.9");
        assert_eq!(fmt_num(2500.0), "2k");
    }
}
