//! The `tao` binary: parse the command line, set up logging, hand over to `tao::cli`.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = tao::cli::parse();
    let serving = matches!(cli.command, tao::cli::Command::Serve(_));
    tao::telemetry::init(if serving { "info" } else { "warn" });
    tao::cli::run(cli).await
}
