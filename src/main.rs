//! The `tao` binary: parse the command line, set up logging, hand over to `tao::cli`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = tao::cli::parse();
    let serving = matches!(cli.command, tao::cli::Command::Serve(_));
    if !serving {
        // A CLI piped into `head` or `grep -q` should end quietly when the reader goes away, as Unix
        // tools do, instead of panicking on a failed print. The server keeps Rust's default (EPIPE as
        // an error), so a client closing a socket never kills it.
        #[cfg(unix)]
        // SAFETY: runs before the runtime (or any other thread) exists; it only restores the default
        // disposition of one signal.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        tao::telemetry::init(if serving { "info" } else { "warn" });
        tao::cli::run(cli).await
    })
}
