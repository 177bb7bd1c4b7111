//! Pictures Tao renders itself (plotters, PNG): a stacked area chart of daily counts per category — the
//! deployments per day and status behind `tao report dora`, and the cumulative flow of work items per
//! state — with a caption and a legend; an optional block of text lines (the DORA numbers) under it.
//!
//! Text uses DejaVu Sans, embedded (`assets/fonts/`, Bitstream Vera license), so rendering needs no
//! system fonts. Output is an RGB PNG of the requested size.

use std::sync::Once;

use plotters::prelude::*;

const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

fn register_font() {
    REGISTER.call_once(|| {
        if plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_err() {
            tracing::error!("the embedded chart font does not load");
        }
    });
}

/// One category of a stacked chart: its name and one count per day.
#[derive(Debug, Clone)]
pub struct Series {
    /// Name (legend).
    pub name: String,
    /// A count per day, aligned with the chart's days.
    pub counts: Vec<f64>,
}

/// What to draw.
#[derive(Debug, Clone)]
pub struct Stacked {
    /// Caption.
    pub title: String,
    /// Day labels (`2024-03-01`), one per x position.
    pub days: Vec<String>,
    /// Categories, stacked bottom-up in this order.
    pub series: Vec<Series>,
    /// Text lines under the chart (e.g. the DORA numbers).
    pub notes: Vec<String>,
    /// What the chart says instead of drawing axes when every count is zero ("no deployments in this
    /// period").
    pub empty: String,
}

const PALETTE: [RGBColor; 8] = [
    RGBColor(46, 134, 193),
    RGBColor(40, 180, 99),
    RGBColor(231, 76, 60),
    RGBColor(243, 156, 18),
    RGBColor(142, 68, 173),
    RGBColor(23, 165, 137),
    RGBColor(127, 140, 141),
    RGBColor(211, 84, 0),
];

/// Fixed colours for words that mean the same everywhere (green is good, red is bad).
fn color_of(name: &str) -> Option<RGBColor> {
    match name {
        "succeeded" | "done" | "closed" | "resolved" => Some(RGBColor(40, 180, 99)),
        "failed" => Some(RGBColor(231, 76, 60)),
        "cancelled" | "interrupted" => Some(RGBColor(127, 140, 141)),
        _ => None,
    }
}

/// Renders `chart` as a `width`×`height` PNG.
pub fn stacked_png(chart: &Stacked, width: u32, height: u32) -> Result<Vec<u8>, String> {
    register_font();
    let mut rgb = vec![255u8; (width * height * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let notes_h = (chart.notes.len() as u32 * 18 + if chart.notes.is_empty() { 0 } else { 10 }).min(height / 2);
        let (plot, notes) = root.split_vertically(height - notes_h);
        let days = chart.days.len().max(1);
        let mut totals = vec![0.0f64; days];
        for s in &chart.series {
            for (i, c) in s.counts.iter().enumerate().take(days) {
                totals[i] += c;
            }
        }
        let max = totals.iter().cloned().fold(0.0, f64::max);
        if max <= 0.0 {
            // Nothing to stack: say so instead of blank axes with an empty legend box.
            let (w, h) = plot.dim_in_pixel();
            plot.draw(&Text::new(chart.title.clone(), (12, 12), ("sans-serif", 22).into_font()))
                .map_err(|e| e.to_string())?;
            let style = ("sans-serif", 20).into_font().color(&RGBColor(90, 90, 90));
            let x = (w as i32 / 2 - chart.empty.len() as i32 * 5).max(12);
            plot.draw(&Text::new(chart.empty.clone(), (x, h as i32 / 2), style)).map_err(|e| e.to_string())?;
        } else {
            draw_stacked(chart, &plot, &totals, max)?;
        }
        for (i, line) in chart.notes.iter().enumerate() {
            notes
                .draw(&Text::new(line.clone(), (16, 4 + i as i32 * 18), ("sans-serif", 14).into_font()))
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    encode_rgb(&rgb, width, height)
}

/// The stacked areas, axes and legend of a chart with at least one non-zero count. Counts are whole
/// numbers, so the count axis is labelled with whole numbers only.
fn draw_stacked(
    chart: &Stacked,
    plot: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    totals: &[f64],
    max: f64,
) -> Result<(), String> {
    let days = totals.len();
    {
        let top = (max * 1.1).ceil().max(1.0);
        let mut ctx = ChartBuilder::on(plot)
            .caption(&chart.title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(44)
            .build_cartesian_2d(0usize..(days - 1).max(1), 0f64..top)
            .map_err(|e| e.to_string())?;
        let labels = chart.days.clone();
        ctx.configure_mesh()
            .x_labels(days.min(8))
            .x_label_formatter(&|i| labels.get(*i).map(|d| d.get(5..).unwrap_or(d).to_string()).unwrap_or_default())
            .y_desc("count")
            .y_labels((top as usize + 1).min(11))
            .y_label_formatter(&|v| if v.fract() == 0.0 { format!("{v:.0}") } else { String::new() })
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(|e| e.to_string())?;
        let mut base = vec![0.0f64; days];
        for (n, s) in chart.series.iter().enumerate() {
            let color = color_of(&s.name).unwrap_or(PALETTE[n % PALETTE.len()]);
            let upper: Vec<f64> = (0..days).map(|i| base[i] + s.counts.get(i).copied().unwrap_or(0.0)).collect();
            let mut points: Vec<(usize, f64)> = (0..days).map(|i| (i, upper[i])).collect();
            points.extend((0..days).rev().map(|i| (i, base[i])));
            ctx.draw_series(std::iter::once(Polygon::new(points, color.mix(0.75).filled())))
                .map_err(|e| e.to_string())?
                .label(s.name.clone())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
            base = upper;
        }
        ctx.configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn encode_rgb(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
        writer.write_image_data(rgb).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// The DORA picture of `product`: deployments per day and status over `days` days ending at `to_day`
/// (`YYYY-MM-DD`), from rows of the `deployments` series, with the `dora` series' numbers as notes.
pub fn dora_chart(
    product: &str,
    deployments: &[serde_json::Value],
    dora: &[serde_json::Value],
    days: &[String],
) -> Stacked {
    let series = series_from_rows(deployments, "status", "deployments", days);
    let notes = dora
        .iter()
        .map(|d| {
            let hours = |key: &str| match d[key].as_f64() {
                Some(s) => format!("{:.1} h", s / 3600.0),
                None => "n/a".into(),
            };
            let (restore, lead) = (hours("time_to_restore_median_s"), hours("lead_time_median_s"));
            format!(
                "{}: {} deployments, {:.2}/day, change failure rate {:.0}%, median time to restore {restore}, \
                 median lead time {lead}",
                d["tier"].as_str().unwrap_or("?"),
                d["deployments"].as_i64().unwrap_or(0),
                d["deployment_frequency"].as_f64().unwrap_or(0.0),
                d["change_failure_rate"].as_f64().unwrap_or(0.0) * 100.0,
            )
        })
        .collect();
    let span = match (days.first(), days.last()) {
        (Some(a), Some(b)) => format!(" ({a} – {b})"),
        _ => String::new(),
    };
    Stacked {
        title: format!("{product}: deployments per day{span}"),
        days: days.to_vec(),
        series,
        notes,
        empty: "no deployments in this period".into(),
    }
}

/// The cumulative flow picture: work items per state and day, from rows of the `cfd` series.
pub fn cfd_chart(title: &str, rows: &[serde_json::Value], days: &[String]) -> Stacked {
    let series = series_from_rows(rows, "state", "items", days);
    Stacked {
        title: title.to_string(),
        days: days.to_vec(),
        series,
        notes: Vec::new(),
        empty: "no work items in this period".into(),
    }
}

/// One series per distinct `category` of `rows` (sorted), each summing `value` of the rows whose `time`
/// starts with each day.
fn series_from_rows(rows: &[serde_json::Value], category: &str, value: &str, days: &[String]) -> Vec<Series> {
    let mut names: Vec<String> = rows.iter().filter_map(|r| r[category].as_str().map(str::to_string)).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            let counts = days
                .iter()
                .map(|day| {
                    rows.iter()
                        .filter(|r| {
                            r[category] == name.as_str() && r["time"].as_str().is_some_and(|t| t.starts_with(day))
                        })
                        .filter_map(|r| r[value].as_f64())
                        .sum()
                })
                .collect();
            Series { name, counts }
        })
        .collect()
}

/// The `n` days (`YYYY-MM-DD`, UTC) ending with the day of `to_ms`.
pub fn days_until(to_ms: i64, n: usize) -> Vec<String> {
    (0..n as i64).rev().map(|back| day_of(to_ms - back * 86_400_000)).collect()
}

/// The UTC day (`YYYY-MM-DD`) of an epoch-milliseconds time.
fn day_of(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_png_of_the_requested_size() {
        let chart = Stacked {
            title: "monitor: deployments per day".into(),
            days: (1..=10).map(|d| format!("2024-03-{d:02}")).collect(),
            series: vec![
                Series { name: "succeeded".into(), counts: vec![1.0, 0.0, 2.0, 0.0, 1.0, 0.0, 2.0, 0.0, 1.0, 0.0] },
                Series { name: "failed".into(), counts: vec![0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0] },
            ],
            notes: vec!["prod: 0.70 deploys/day, change failure rate 44%, time to restore 4.0 h".into()],
            empty: "no deployments in this period".into(),
        };
        let png_bytes = stacked_png(&chart, 800, 500).unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(&png_bytes));
        let reader = decoder.read_info().unwrap();
        let info = reader.info();
        assert_eq!((info.width, info.height), (800, 500));
        assert!(png_bytes.len() > 5_000, "something was drawn: {} bytes", png_bytes.len());
        // Kept for a look: the picture a test made.
        let _ = std::fs::write(std::env::temp_dir().join("tao-chart-test.png"), &png_bytes);
    }

    fn ink(png_bytes: &[u8]) -> usize {
        let mut reader = png::Decoder::new(std::io::Cursor::new(png_bytes)).read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        reader.next_frame(&mut buf).unwrap();
        buf.chunks(3).filter(|px| px.iter().any(|c| *c < 200)).count()
    }

    #[test]
    fn an_empty_chart_says_so_instead_of_drawing_axes() {
        let days: Vec<String> = (1..=10).map(|d| format!("2024-03-{d:02}")).collect();
        let chart = |counts: Vec<f64>, empty: &str| Stacked {
            title: "monitor: deployments per day".into(),
            days: days.clone(),
            series: vec![Series { name: "succeeded".into(), counts }],
            notes: vec![],
            empty: empty.into(),
        };
        let drawn = stacked_png(&chart(vec![0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], "x"), 800, 500).unwrap();
        let empty = stacked_png(&chart(vec![0.0; 10], "no deployments in this period"), 800, 500).unwrap();
        let other = stacked_png(&chart(vec![0.0; 10], "no work items in this period"), 800, 500).unwrap();
        assert_ne!(empty, other, "the empty message is drawn");
        // Axes, ticks, labels and a legend box ink far more than a caption and one line of text.
        assert!(ink(&empty) * 3 < ink(&drawn), "no axes: {} vs {} dark pixels", ink(&empty), ink(&drawn));
        let _ = std::fs::write(std::env::temp_dir().join("tao-chart-empty.png"), &empty);
    }
}
