//! `tao report dora PRODUCT` and `tao report cfd PRODUCT`: the DORA picture (deployments per day and
//! status, with the DORA numbers) and the cumulative flow of work items (per state and day) as PNGs, from
//! the server's metrics endpoints.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use super::client::{self, Client};
use super::ServerArgs;
use crate::metrics::chart;

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

/// Runs `tao report …`.
pub async fn report(cmd: ReportCommand) -> anyhow::Result<ExitCode> {
    let (product, env, days, output, dims, server) = match cmd {
        ReportCommand::Dora { product, env, days, output, size, server } => (product, env, days, output, size, server),
        ReportCommand::Cfd { product, version, days, output, size, server } => {
            return cfd(product, version, days, output, size, server).await;
        }
    };
    let (width, height) = size(&dims)?;
    anyhow::ensure!((1..=366).contains(&days), "--days: expected 1 to 366");
    let to = crate::store::now_ms();
    let day_list = chart::days_until(to, days);
    let from = to - days as i64 * 86_400_000;
    let mut query = format!("product={}&from={from}&to={to}", client::segment(&product));
    if let Some(e) = &env {
        query.push_str(&format!("&env={}", client::segment(e)));
    }
    let c = Client::new(&server)?;
    let deployments = c.get(&format!("/api/v1/metrics/deployments?{query}")).await?;
    let dora = c.get(&format!("/api/v1/metrics/dora?{query}")).await?;
    let picture = chart::dora_chart(
        &product,
        deployments.as_array().map(Vec::as_slice).unwrap_or_default(),
        dora.as_array().map(Vec::as_slice).unwrap_or_default(),
        &day_list,
    );
    let png = chart::stacked_png(&picture, width, height).map_err(|e| anyhow::anyhow!("rendering: {e}"))?;
    std::fs::write(&output, &png).with_context(|| format!("writing {}", output.display()))?;
    println!("wrote {} ({} bytes)", output.display(), png.len());
    Ok(ExitCode::SUCCESS)
}

async fn cfd(
    product: String,
    version: Option<String>,
    days: usize,
    output: PathBuf,
    dims: String,
    server: ServerArgs,
) -> anyhow::Result<ExitCode> {
    let (width, height) = size(&dims)?;
    anyhow::ensure!((1..=366).contains(&days), "--days: expected 1 to 366");
    let to = crate::store::now_ms();
    let day_list = chart::days_until(to, days);
    let from = to - (days as i64 - 1) * 86_400_000;
    let mut query = format!("product={}&from={from}&to={to}", client::segment(&product));
    if let Some(v) = &version {
        query.push_str(&format!("&version={}", client::segment(v)));
    }
    let rows = Client::new(&server)?.get(&format!("/api/v1/metrics/cfd?{query}")).await?;
    let title = match &version {
        Some(v) => format!("{product} {v}: work items per state"),
        None => format!("{product}: work items per state"),
    };
    let picture = chart::cfd_chart(&title, rows.as_array().map(Vec::as_slice).unwrap_or_default(), &day_list);
    let png = chart::stacked_png(&picture, width, height).map_err(|e| anyhow::anyhow!("rendering: {e}"))?;
    std::fs::write(&output, &png).with_context(|| format!("writing {}", output.display()))?;
    println!("wrote {} ({} bytes)", output.display(), png.len());
    Ok(ExitCode::SUCCESS)
}
