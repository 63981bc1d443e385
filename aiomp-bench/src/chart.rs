//! A self-contained SVG bar chart of a run: one panel per workload, one bar
//! per measured row (aiomp, peers, limits in three colours), on a log scale
//! where the values span more than a factor of 20.

use std::fmt::Write;

use crate::row::{Row, System, Workload, short};

const WIDTH: f64 = 960.0;
const LABEL_WIDTH: f64 = 300.0;
const BAR_WIDTH: f64 = 420.0;
const BAR_HEIGHT: f64 = 16.0;
const GAP: f64 = 4.0;
const TITLE_HEIGHT: f64 = 26.0;
const PANEL_GAP: f64 = 14.0;

fn colour(system: System) -> &'static str {
    match system {
        System::Aiomp => "#e8590c",
        System::Limit => "#868e96",
        _ => "#1c7ed6",
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The chart of `rows` as an SVG document.
pub fn render(rows: &[Row]) -> String {
    let mut body = String::new();
    let mut y = 40.0;
    for workload in Workload::ALL {
        let bars: Vec<(&Row, f64)> = rows
            .iter()
            .filter(|r| r.workload == workload)
            .filter_map(|r| Some((r, r.value()?.primary())))
            .filter(|(_, v)| v.is_finite() && *v > 0.0)
            .collect();
        let Some(first) = bars.first().and_then(|(r, _)| r.value()) else {
            continue;
        };
        let better = if first.higher_is_better() {
            "higher is better"
        } else {
            "lower is better"
        };
        let max = bars.iter().map(|b| b.1).fold(f64::MIN, f64::max);
        let min = bars.iter().map(|b| b.1).fold(f64::MAX, f64::min);
        let log = max / min > 20.0;
        let scale_note = if log { ", log scale" } else { "" };
        let _ = writeln!(
            body,
            r#"<text x="10" y="{:.0}" class="title">{} · {} ({better}{scale_note})</text>"#,
            y + 16.0,
            workload.id(),
            escape(first.unit()),
        );
        y += TITLE_HEIGHT;
        for (row, value) in &bars {
            let fraction = if log {
                // One decade of headroom below the smallest bar so that it stays visible.
                let floor = (min / 10.0).log10();
                (value.log10() - floor) / (max.log10() - floor)
            } else {
                value / max
            };
            let width = (fraction * BAR_WIDTH).max(1.0);
            let _ = writeln!(
                body,
                r#"<text x="{:.0}" y="{:.0}" class="label">{}</text>"#,
                LABEL_WIDTH - 8.0,
                y + 12.0,
                escape(&row.label())
            );
            let _ = writeln!(
                body,
                r#"<rect x="{LABEL_WIDTH:.0}" y="{y:.0}" width="{width:.1}" height="{BAR_HEIGHT:.0}" fill="{}"/>"#,
                colour(row.system)
            );
            let _ = writeln!(
                body,
                r#"<text x="{:.0}" y="{:.0}" class="value">{}</text>"#,
                LABEL_WIDTH + width + 6.0,
                y + 12.0,
                escape(&short(*value))
            );
            y += BAR_HEIGHT + GAP;
        }
        y += PANEL_GAP;
    }
    let legend = [
        (System::Aiomp, "aiomp"),
        (System::MpPool, "peers"),
        (System::Limit, "limits of the machine"),
    ]
    .iter()
    .enumerate()
    .fold(String::new(), |mut legend, (i, (system, name))| {
        let x = 10.0 + 200.0 * i as f64;
        let _ = write!(
            legend,
            r#"<rect x="{x:.0}" y="10" width="14" height="14" fill="{}"/><text x="{:.0}" y="22" class="legend">{name}</text>"#,
            colour(*system),
            x + 20.0
        );
        legend
    });
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH:.0}" height="{:.0}" viewBox="0 0 {WIDTH:.0} {:.0}">
<style>
text {{ font-family: sans-serif; font-size: 12px; fill: #212529; }}
.title {{ font-weight: bold; font-size: 13px; }}
.label {{ text-anchor: end; }}
</style>
<rect width="100%" height="100%" fill="white"/>
{legend}
{body}</svg>
"#,
        y + 10.0,
        y + 10.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row::{Outcome, Value};

    #[test]
    fn one_bar_per_measured_row() {
        let rows = vec![
            Row::new(
                Workload::W1,
                System::Aiomp,
                None,
                String::new(),
                Outcome::Measured(Value::Rate { per_second: 1e6 }),
            ),
            Row::new(
                Workload::W1,
                System::Procspawn,
                Some("<spawn>"),
                String::new(),
                Outcome::Measured(Value::Rate { per_second: 1e3 }),
            ),
            Row::new(
                Workload::W2,
                System::MpPool,
                None,
                String::new(),
                Outcome::Skipped("x".into()),
            ),
        ];
        let svg = render(&rows);
        assert_eq!(svg.matches("<rect x=\"300\"").count(), 2);
        assert!(svg.contains("log scale"));
        assert!(svg.contains("&lt;spawn&gt;"));
        assert!(!svg.contains("W2"));
    }
}
