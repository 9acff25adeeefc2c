//! The DA scale benchmark's figures against the log size, drawn as one SVG of six panels
//! (plotters, SVG backend): apply rate, bytes on disk per event, full-node RSS, `da state`
//! and proof latency, restart time, and the light client's and state sync's join times.

use std::path::Path;

use plotters::prelude::*;

/// The figures measured at one log size. `None`: not measured (the part is not built, or
/// the run skipped it).
#[derive(Clone, Debug, Default)]
pub struct ScalePoint {
    /// Events in the log.
    pub events: u64,
    /// Events applied per second of the full node's CPU time (one core) while it rebuilt
    /// its state from the log.
    pub apply_per_core_sec: f64,
    /// Bytes of the full node's data directory per event.
    pub bytes_per_event: f64,
    /// The full node's resident memory once it answers at the tip, MiB.
    pub rss_mib: f64,
    /// `GET /v1/da/state` latency: median and p99, milliseconds.
    pub state_ms: (f64, f64),
    /// `GET /v1/da/proof` latency: median and p99, milliseconds.
    pub proof_ms: Option<(f64, f64)>,
    /// Full-node restart: process start to answering at the tip, seconds.
    pub restart_secs: f64,
    /// Light client from a checkpoint: join time (s) and RSS (MiB).
    pub light: Option<(f64, f64)>,
    /// State sync of a new full node from a checkpoint, seconds.
    pub state_sync_secs: Option<f64>,
}

/// One panel: a title, the y label and its series (name, points).
struct Panel<'a> {
    title: &'a str,
    series: Vec<(&'a str, Vec<(f64, f64)>)>,
}

fn series(points: &[ScalePoint], f: impl Fn(&ScalePoint) -> Option<f64>) -> Vec<(f64, f64)> {
    points
        .iter()
        .filter_map(|p| f(p).map(|y| (p.events as f64, y)))
        .collect()
}

/// Draws `points` (ascending log sizes) to `path` as an SVG of 1200×800 pixels.
///
/// # Errors
/// When the file cannot be written.
pub fn draw(points: &[ScalePoint], path: &Path) -> anyhow::Result<()> {
    let panels = [
        Panel {
            title: "apply rate (events / CPU second)",
            series: vec![("full node", series(points, |p| Some(p.apply_per_core_sec)))],
        },
        Panel {
            title: "bytes on disk per event",
            series: vec![("data dir", series(points, |p| Some(p.bytes_per_event)))],
        },
        Panel {
            title: "full-node RSS (MiB)",
            series: vec![("RSS", series(points, |p| Some(p.rss_mib)))],
        },
        Panel {
            title: "latency (ms)",
            series: vec![
                ("da state median", series(points, |p| Some(p.state_ms.0))),
                ("da state p99", series(points, |p| Some(p.state_ms.1))),
                ("proof median", series(points, |p| p.proof_ms.map(|l| l.0))),
                ("proof p99", series(points, |p| p.proof_ms.map(|l| l.1))),
            ],
        },
        Panel {
            title: "full-node restart (s)",
            series: vec![("restart", series(points, |p| Some(p.restart_secs)))],
        },
        Panel {
            title: "joining (s)",
            series: vec![
                ("light client", series(points, |p| p.light.map(|l| l.0))),
                ("state sync", series(points, |p| p.state_sync_secs)),
            ],
        },
    ];
    let root = SVGBackend::new(path, (1200, 800)).into_drawing_area();
    root.fill(&WHITE)?;
    let areas = root.split_evenly((2, 3));
    let (x_min, x_max) = x_range(points);
    for (area, panel) in areas.iter().zip(panels.iter()) {
        let y_max = panel
            .series
            .iter()
            .flat_map(|(_, s)| s.iter().map(|p| p.1))
            .fold(0.0_f64, f64::max);
        let y_max = if y_max > 0.0 { y_max * 1.15 } else { 1.0 };
        let mut chart = ChartBuilder::on(area)
            .caption(panel.title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .build_cartesian_2d((x_min..x_max).log_scale(), 0.0..y_max)?;
        chart
            .configure_mesh()
            .x_desc("events in the log")
            .x_labels(4)
            .max_light_lines(1)
            .x_label_formatter(&|x| short(*x))
            .y_label_formatter(&|y| short(*y))
            .draw()?;
        for (i, (name, data)) in panel.series.iter().enumerate() {
            if data.is_empty() {
                continue;
            }
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(data.iter().copied(), color.stroke_width(2)))?
                .label(*name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
            chart.draw_series(
                data.iter()
                    .map(|&(x, y)| Circle::new((x, y), 4, color.filled())),
            )?;
        }
        if panel.series.iter().any(|(_, d)| !d.is_empty()) {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()?;
        } else {
            area.draw(&Text::new(
                "not measured",
                (160, 180),
                ("sans-serif", 16).into_font().color(&RED),
            ))?;
        }
    }
    root.present()?;
    Ok(())
}

/// The x range: the sizes, widened so that one size still gives a range.
fn x_range(points: &[ScalePoint]) -> (f64, f64) {
    let min = points.iter().map(|p| p.events).min().unwrap_or(1).max(1) as f64;
    let max = points.iter().map(|p| p.events).max().unwrap_or(1).max(1) as f64;
    (min / 2.0, max * 2.0)
}

/// `1.2M`, `350k`, `12.5`: axis labels that fit.
fn short(v: f64) -> String {
    if v >= 1e9 {
        format!("{:.1}G", v / 1e9)
    } else if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_an_svg_with_every_panel_and_unmeasured_parts_marked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scale.svg");
        let points: Vec<ScalePoint> = [1_000_000u64, 10_000_000]
            .iter()
            .map(|&events| ScalePoint {
                events,
                apply_per_core_sec: 150_000.0,
                bytes_per_event: 120.0,
                rss_mib: 80.0,
                state_ms: (0.4, 1.1),
                proof_ms: Some((0.6, 1.5)),
                restart_secs: 0.9,
                light: None,
                state_sync_secs: None,
            })
            .collect();
        draw(&points, &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        for title in [
            "apply rate",
            "bytes on disk",
            "RSS",
            "latency",
            "restart",
            "joining",
        ] {
            assert!(svg.contains(title), "no panel {title}");
        }
        assert!(svg.contains("proof median"));
        assert!(svg.contains("not measured"));
        assert!(svg.contains("10.0M"));
    }
}
