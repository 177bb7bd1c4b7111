//! Logging: `tracing` to stderr, filtered by `TAO_LOG` (EnvFilter syntax), JSON lines when
//! `TAO_LOG_FORMAT=json`. Set up once, by the binary; tests leave it alone. serenity (the Discord client)
//! is silenced unless `TAO_LOG` names it: its spans record request routes, which hold interaction tokens.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; `default` is the filter when `TAO_LOG` is unset.
pub fn init(default: &str) {
    let mut filter = EnvFilter::try_from_env("TAO_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    if !std::env::var("TAO_LOG").unwrap_or_default().contains("serenity") {
        filter = filter.add_directive("serenity=off".parse().expect("a valid directive"));
    }
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = if std::env::var("TAO_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    if let Err(e) = result {
        eprintln!("tao: logging already initialised: {e}");
    }
}
