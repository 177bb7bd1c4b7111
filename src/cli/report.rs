//! `tao report dora PRODUCT` and `tao report cfd PRODUCT`: the DORA picture (deployments per day and
//! status, with the DORA numbers) and the cumulative flow of work items (per state and day) as PNGs, from
//! the server's metrics endpoints, drawn by `metrics::report` (as the chat commands `dora` and `cfd` are).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use super::client::{self, Client};
use super::ServerArgs;
use crate::metrics::report::{cfd_picture, dora_picture, CfdOptions, DoraOptions, Picture, MAX_DAYS};
use crate::metrics::series;

/// `tao report …`
#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Deployments per day and the DORA numbers of a product, as a PNG.
    Dora {
        /// Product.
        product: String,
        /// Only this environment.
        #[arg(long)]
        env: Option<String>,
        /// Days back from today.
        #[arg(long, default_value_t = 30)]
        days: usize,
        /// Where to write the PNG.
        #[arg(short, long, default_value = "dora.png")]
        output: PathBuf,
        /// Size, WIDTHxHEIGHT.
        #[arg(long, default_value = "1000x600")]
        size: String,
        /// The server.
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Work items per state and day (cumulative flow) of a product, or of one version's iteration.
    Cfd {
        /// Product.
        product: String,
        /// Only the work items of this product version (its iteration).
        #[arg(long)]
        version: Option<String>,
        /// Days back from today.
        #[arg(long, default_value_t = 30)]
        days: usize,
        /// Where to write the PNG.
        #[arg(short, long, default_value = "cfd.png")]
        output: PathBuf,
        /// Size, WIDTHxHEIGHT.
        #[arg(long, default_value = "1000x600")]
        size: String,
        /// The server.
        #[command(flatten)]
        server: ServerArgs,
    },
}

fn size(s: &str) -> anyhow::Result<(u32, u32)> {
    let (w, h) = s.split_once('x').context("--size: expected WIDTHxHEIGHT, e.g. 1000x600")?;
    let (w, h): (u32, u32) = (w.parse()?, h.parse()?);
    anyhow::ensure!((200..=4000).contains(&w) && (200..=4000).contains(&h), "--size: each side 200 to 4000 pixels");
    Ok((w, h))
}

/// The query string of a series request (what `series::Query` holds, as the endpoint reads it).
fn query_string(q: &series::Query) -> String {
    let mut out = format!("from={}&to={}", q.from, q.to);
    for (key, value) in [("product", &q.product), ("env", &q.env), ("version", &q.version)] {
        if let Some(v) = value {
            out.push_str(&format!("&{key}={}", client::segment(v)));
        }
    }
    out
}

fn rows(v: &serde_json::Value) -> &[serde_json::Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

fn write(output: &PathBuf, picture: &Picture) -> anyhow::Result<ExitCode> {
    std::fs::write(output, &picture.png).with_context(|| format!("writing {}", output.display()))?;
    println!("wrote {} ({} bytes)", output.display(), picture.png.len());
    Ok(ExitCode::SUCCESS)
}

/// Runs `tao report …`: reads the series from the server and draws them with `metrics::report`, the
/// same code that draws the chat commands' pictures.
pub async fn report(cmd: ReportCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ReportCommand::Dora { product, env, days, output, size: dims, server } => {
            let size = size(&dims)?;
            anyhow::ensure!((1..=MAX_DAYS).contains(&days), "--days: expected 1 to {MAX_DAYS}");
            let opts = DoraOptions { product, env, days, size };
            let to = crate::store::now_ms();
            let query = query_string(&opts.query(to));
            let c = Client::new(&server)?;
            let deployments = c.get(&format!("/api/v1/metrics/deployments?{query}")).await?;
            let dora = c.get(&format!("/api/v1/metrics/dora?{query}")).await?;
            write(&output, &dora_picture(&opts, to, rows(&deployments), rows(&dora))?)
        }
        ReportCommand::Cfd { product, version, days, output, size: dims, server } => {
            let size = size(&dims)?;
            anyhow::ensure!((1..=MAX_DAYS).contains(&days), "--days: expected 1 to {MAX_DAYS}");
            let opts = CfdOptions { product, version, days, size };
            let to = crate::store::now_ms();
            let query = query_string(&opts.query(to));
            let flow = Client::new(&server)?.get(&format!("/api/v1/metrics/cfd?{query}")).await?;
            write(&output, &cfd_picture(&opts, to, rows(&flow))?)
        }
    }
}
