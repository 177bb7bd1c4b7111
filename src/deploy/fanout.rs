//! Running work on many hosts at once: one [`SshSession`] per host, a cap on hosts in flight, a time
//! limit per host.
//!
//! Owns the concurrency of a wave (connect, run the caller's work with the session, close) and nothing
//! about what the work is. Must not retry: a failed host is reported and the caller decides.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::ssh::{SshError, SshOptions, SshSession, SshTarget};

/// Why one host failed in a fan-out.
#[derive(Debug, thiserror::Error)]
pub enum FanoutError<E> {
    /// Connecting failed.
    #[error(transparent)]
    Ssh(#[from] SshError),
    /// The host did not finish in time.
    #[error("{host} did not finish within {limit:?}")]
    Timeout {
        /// The host.
        host: String,
        /// The limit.
        limit: Duration,
    },
    /// The caller's work failed.
    #[error("{0}")]
    Work(E),
}

/// Connects to every target (at most `parallel` at once), runs `work` with the session, closes it, and
/// returns each host's result in the order of `targets`.
pub async fn for_each_host<T, E, F, Fut>(
    targets: &[SshTarget],
    opts: &SshOptions,
    parallel: usize,
    per_host: Duration,
    work: F,
) -> Vec<Result<T, FanoutError<E>>>
where
    T: Send + 'static,
    E: Send + 'static,
    F: Fn(Arc<SshSession>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
{
    let gate = Arc::new(tokio::sync::Semaphore::new(parallel.max(1)));
    let work = Arc::new(work);
    let mut tasks = Vec::with_capacity(targets.len());
    for target in targets {
        let (gate, work, target, opts) = (gate.clone(), work.clone(), target.clone(), opts.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.expect("semaphore never closes");
            let one = async {
                let session = Arc::new(SshSession::connect(&target, &opts).await?);
                let result = work(session.clone()).await.map_err(FanoutError::Work);
                if let Ok(session) = Arc::try_unwrap(session) {
                    let _ = session.close().await;
                }
                result
            };
            match tokio::time::timeout(per_host, one).await {
                Ok(r) => r,
                Err(_) => Err(FanoutError::Timeout { host: target.to_string(), limit: per_host }),
            }
        }));
    }
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.expect("a host task panicked"));
    }
    out
}
