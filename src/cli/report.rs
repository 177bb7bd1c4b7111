//! `tao report dora PRODUCT`: the DORA picture (deployments per day and status, with the DORA numbers)
//! as a PNG, from the server's metrics endpoints — the same picture chat posts.

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
}

fn size(s: &str) -> anyhow::Result<(u32, u32)> {
    let (w, h) = s.split_once('x').context("--size: expected WIDTHxHEIGHT, e.g. 1000x600")?;
    let (w, h): (u32, u32) = (w.parse()?, h.parse()?);
    anyhow::ensure!((200..=4000).contains(&w) && (200..=4000).contains(&h), "--size: each side 200 to 4000 pixels");
    Ok((w, h))
}

/// Runs `tao report …`.
pub async fn report(cmd: ReportCommand) -> anyhow::Result<ExitCode> {
    let ReportCommand::Dora { product, env, days, output, size: dims, server } = cmd;
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
