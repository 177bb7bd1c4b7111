//! The pictures of `tao report` and of the chat commands `dora` and `cfd`: a window of series rows in, a
//! PNG and a short text summary out.
//!
//! Both front ends go through here so they draw the same bytes for the same data: the CLI reads the rows
//! from the server (`GET /api/v1/metrics/{name}` with the query of [`DoraOptions::query`] or
//! [`CfdOptions::query`]) and calls [`dora_picture`] / [`cfd_picture`]; chat runs inside the server and
//! calls [`dora_png`] / [`cfd_png`], which read the same rows from the store through `series::rows` (the
//! function behind that endpoint) and then draw them the same way.
//!
//! Owns the windows each picture asks for, the file names, and the summaries. Must not do HTTP (the CLI
//! does) nor decide who may see a picture (the chat dispatcher does).

use std::fmt::Write as _;

use serde_json::Value;

use super::{chart, series};
use crate::catalog::Catalog;
use crate::store::{Pool, StoreError};

/// Days a picture covers when not told.
pub const DEFAULT_DAYS: usize = 30;
/// The most days a picture covers.
pub const MAX_DAYS: usize = 366;
/// Width and height of a picture when not told, in pixels.
pub const DEFAULT_SIZE: (u32, u32) = (1000, 600);

const DAY: i64 = 86_400_000;

/// What `tao report dora` and the chat command `dora` draw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoraOptions {
    /// The product.
    pub product: String,
    /// Only this environment.
    pub env: Option<String>,
    /// Days back from the end of the window (1 to [`MAX_DAYS`]).
    pub days: usize,
    /// Width and height in pixels.
    pub size: (u32, u32),
}

impl DoraOptions {
    /// The product's picture over the default window and size.
    pub fn new(product: impl Into<String>) -> DoraOptions {
        DoraOptions { product: product.into(), env: None, days: DEFAULT_DAYS, size: DEFAULT_SIZE }
    }

    /// The series query of a window ending at `to` (epoch ms): `days` whole days back.
    pub fn query(&self, to: i64) -> series::Query {
        series::Query {
            product: Some(self.product.clone()),
            env: self.env.clone(),
            version: None,
            from: to - self.days as i64 * DAY,
            to,
        }
    }

    /// The attachment's file name: `dora-monitor.png`.
    pub fn file_name(&self) -> String {
        format!("dora-{}.png", file_safe(&self.product))
    }
}

/// What `tao report cfd` and the chat command `cfd` draw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CfdOptions {
    /// The product.
    pub product: String,
    /// Only the work items of this product version (its iteration).
    pub version: Option<String>,
    /// Days back from the end of the window, that day included (1 to [`MAX_DAYS`]).
    pub days: usize,
    /// Width and height in pixels.
    pub size: (u32, u32),
}

impl CfdOptions {
    /// The product's picture over the default window and size.
    pub fn new(product: impl Into<String>) -> CfdOptions {
        CfdOptions { product: product.into(), version: None, days: DEFAULT_DAYS, size: DEFAULT_SIZE }
    }

    /// The series query of a window ending at `to` (epoch ms): the day of `to` and `days - 1` before it.
    pub fn query(&self, to: i64) -> series::Query {
        series::Query {
            product: Some(self.product.clone()),
            env: None,
            version: self.version.clone(),
            from: to - (self.days as i64 - 1) * DAY,
            to,
        }
    }

    /// The attachment's file name: `cfd-monitor.png`, `cfd-monitor-1.1.0.png`.
    pub fn file_name(&self) -> String {
        match &self.version {
            Some(v) => format!("cfd-{}-{}.png", file_safe(&self.product), file_safe(v)),
            None => format!("cfd-{}.png", file_safe(&self.product)),
        }
    }
}

/// A rendered picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picture {
    /// A file name for it (`dora-monitor.png`).
    pub file_name: String,
    /// The PNG.
    pub png: Vec<u8>,
    /// What it shows, in a few lines of Markdown (the caption and the numbers drawn under the chart).
    pub summary: String,
}

/// Why a picture could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The window is out of range.
    #[error("days: expected 1 to {MAX_DAYS}, found {0}")]
    Days(usize),
    /// The size is out of range.
    #[error("size: each side 200 to 4000 pixels, found {0}x{1}")]
    Size(u32, u32),
    /// plotters or the PNG encoder failed.
    #[error("rendering the chart: {0}")]
    Render(String),
    /// Reading the series failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn check(days: usize, (w, h): (u32, u32)) -> Result<(), ReportError> {
    if !(1..=MAX_DAYS).contains(&days) {
        return Err(ReportError::Days(days));
    }
    if !((200..=4000).contains(&w) && (200..=4000).contains(&h)) {
        return Err(ReportError::Size(w, h));
    }
    Ok(())
}

/// Letters, digits, `.` and `-` of `s`; anything else becomes `-`.
fn file_safe(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '-' }).collect()
}

fn render(picture: &chart::Stacked, (w, h): (u32, u32)) -> Result<Vec<u8>, ReportError> {
    chart::stacked_png(picture, w, h).map_err(ReportError::Render)
}

/// The DORA picture of a window ending at `to` from rows of the `deployments` and `dora` series (as the
/// server serves them for [`DoraOptions::query`]).
pub fn dora_picture(
    opts: &DoraOptions,
    to: i64,
    deployments: &[Value],
    dora: &[Value],
) -> Result<Picture, ReportError> {
    check(opts.days, opts.size)?;
    let days = chart::days_until(to, opts.days);
    let picture = chart::dora_chart(&opts.product, deployments, dora, &days);
    let png = render(&picture, opts.size)?;
    let mut summary = format!("📈 **{}**", picture.title);
    if let Some(env) = &opts.env {
        let _ = write!(summary, " on {env}");
    }
    summary.push('\n');
    if picture.notes.is_empty() {
        summary.push_str("No deployments in this window.\n");
    }
    for line in &picture.notes {
        let _ = writeln!(summary, "- {line}");
    }
    Ok(Picture { file_name: opts.file_name(), png, summary })
}

/// The cumulative flow picture of a window ending at `to` from rows of the `cfd` series (as the server
/// serves them for [`CfdOptions::query`]).
pub fn cfd_picture(opts: &CfdOptions, to: i64, rows: &[Value]) -> Result<Picture, ReportError> {
    check(opts.days, opts.size)?;
    let days = chart::days_until(to, opts.days);
    let title = match &opts.version {
        Some(v) => format!("{} {v}: work items per state", opts.product),
        None => format!("{}: work items per state", opts.product),
    };
    let picture = chart::cfd_chart(&title, rows, &days);
    let png = render(&picture, opts.size)?;
    let mut summary = format!("📊 **{title}**, {} day(s) to {}\n", opts.days, days.last().map_or("", String::as_str));
    let last: Vec<String> = picture
        .series
        .iter()
        .filter_map(|s| s.counts.last().filter(|n| **n > 0.0).map(|n| format!("{} {n}", s.name)))
        .collect();
    if last.is_empty() {
        summary.push_str("No work items.\n");
    } else {
        let _ = writeln!(summary, "At the end: {}.", last.join(", "));
    }
    Ok(Picture { file_name: opts.file_name(), png, summary })
}

async fn rows(pool: &Pool, catalog: &Catalog, name: &str, q: &series::Query) -> Result<Vec<Value>, StoreError> {
    let rows = series::rows(pool, catalog, name, q).await?.unwrap_or_default();
    Ok(rows.into_iter().map(Value::Object).collect())
}

/// [`dora_picture`] of the window ending at `to`, with the rows read from the store.
pub async fn dora_png(pool: &Pool, catalog: &Catalog, opts: &DoraOptions, to: i64) -> Result<Picture, ReportError> {
    check(opts.days, opts.size)?;
    let q = opts.query(to);
    let deployments = rows(pool, catalog, "deployments", &q).await?;
    let dora = rows(pool, catalog, "dora", &q).await?;
    dora_picture(opts, to, &deployments, &dora)
}

/// [`cfd_picture`] of the window ending at `to`, with the rows read from the store.
pub async fn cfd_png(pool: &Pool, catalog: &Catalog, opts: &CfdOptions, to: i64) -> Result<Picture, ReportError> {
    check(opts.days, opts.size)?;
    let rows = rows(pool, catalog, "cfd", &opts.query(to)).await?;
    cfd_picture(opts, to, &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_names_and_limits() {
        let to = 1_709_251_200_000 + 12 * 3_600_000;
        let d = DoraOptions { env: Some("prod".into()), ..DoraOptions::new("monitor") };
        let q = d.query(to);
        assert_eq!((q.from, q.to, q.env.as_deref()), (to - 30 * DAY, to, Some("prod")));
        assert_eq!(d.file_name(), "dora-monitor.png");
        let c = CfdOptions { version: Some("1.2.0+build/7".into()), days: 7, ..CfdOptions::new("monitor") };
        assert_eq!(c.query(to).from, to - 6 * DAY);
        assert_eq!(c.file_name(), "cfd-monitor-1.2.0-build-7.png");
        let e = dora_picture(&DoraOptions { days: 0, ..d.clone() }, to, &[], &[]).unwrap_err();
        assert_eq!(e.to_string(), "days: expected 1 to 366, found 0");
        let e = cfd_picture(&CfdOptions { size: (9, 9), ..c }, to, &[]).unwrap_err();
        assert_eq!(e.to_string(), "size: each side 200 to 4000 pixels, found 9x9");
    }

    #[test]
    fn summaries_say_what_the_picture_shows() {
        let to = 1_709_251_200_000 + 12 * 3_600_000; // 2024-03-01 12:00 UTC
        let opts = CfdOptions { days: 2, size: (400, 300), ..CfdOptions::new("monitor") };
        let rows = vec![
            serde_json::json!({"time": "2024-03-01T00:00:00Z", "state": "planning", "items": 2}),
            serde_json::json!({"time": "2024-03-01T00:00:00Z", "state": "resolved", "items": 1}),
            serde_json::json!({"time": "2024-02-29T00:00:00Z", "state": "planning", "items": 3}),
        ];
        let p = cfd_picture(&opts, to, &rows).unwrap();
        assert_eq!(
            p.summary,
            "📊 **monitor: work items per state**, 2 day(s) to 2024-03-01\nAt the end: planning 2, resolved 1.\n"
        );
        assert_eq!(&p.png[1..4], b"PNG");
        let dora = DoraOptions { days: 2, size: (400, 300), ..DoraOptions::new("monitor") };
        let p = dora_picture(&dora, to, &[], &[]).unwrap();
        assert_eq!(
            p.summary,
            "📈 **monitor: deployments per day (2024-02-29 – 2024-03-01)**\nNo deployments in this window.\n"
        );
    }
}
