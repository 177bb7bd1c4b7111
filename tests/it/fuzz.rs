//! Bounded fuzzing of Tao's parsers (issue #15): the chat grammar, the webhook envelope and typed
//! views, the catalog loader and the CI template path, one test each.
//!
//! Owns the four fuzz tests and running each on a thread of its own under a watchdog; `engine` owns
//! the loop (regressions, seeds, then generated cases until `TAO_FUZZ_SECONDS` — 10 by default — are
//! spent), `mutate` the edits of the committed corpus, and each target module its generators and
//! properties. The corpus is `tests/fixtures/fuzz/<target>/` (see its README); any input that ever
//! failed a target lives in `<target>/regressions/` and is replayed first. Nightly is not needed:
//! cases come from proptest, driven by hand.

mod catalog;
mod chat;
mod ci_path;
mod engine;
mod mutate;
mod webhook;

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use engine::{Report, Watch};

use crate::support::{spawn_app_with, TestDb, EXAMPLE};

/// Stack of a fuzz thread: what a Tokio worker thread, where the parsers run in Tao, has.
const STACK: usize = 2 * 1024 * 1024;

/// Runs `work` on a thread of its own and fails the test with every failure it reports; a case that
/// never ends fails it too (at the [`engine::watchdog`]), naming the input, instead of hanging the run.
async fn on_fuzz_thread(target: &'static str, work: impl FnOnce(&Watch) -> Report + Send + 'static) {
    let watch = Watch::default();
    let (done, report) = tokio::sync::oneshot::channel();
    let watched = watch.clone();
    std::thread::Builder::new()
        .name(format!("fuzz-{target}"))
        .stack_size(STACK)
        .spawn(move || {
            let _ = done.send(catch_unwind(AssertUnwindSafe(|| work(&watched))));
        })
        .expect("fuzz thread");
    let limit = engine::watchdog();
    match tokio::time::timeout(limit, report).await {
        Ok(Ok(Ok(report))) => {
            assert!(report.cases > 0, "{target}: no case ran");
            assert!(report.failures.is_empty(), "fuzz {target} failed:\n{}", report.failures.join("\n"));
        }
        Ok(Ok(Err(panic))) => resume_unwind(panic),
        Ok(Err(_)) => panic!("{target}: the fuzz thread ended without a report"),
        Err(_) => panic!(
            "{target}: a case still runs after {limit:?} (a parser that hangs?) on input {}",
            engine::show(&watch.current())
        ),
    }
}

/// The committed seeds of a target, named, and their bytes for mutation.
fn corpus(target: &str) -> (Vec<engine::Named>, Vec<Vec<u8>>) {
    let seeds = engine::seeds(target);
    assert!(!seeds.is_empty(), "no seeds in {}", engine::fixture_dir(target).display());
    let bytes = seeds.iter().map(|(_, b)| b.clone()).collect();
    (seeds, bytes)
}

#[tokio::test]
async fn chat_grammar() {
    crate::support::limit_to(engine::time_limit(), chat_grammar_body()).await
}

async fn chat_grammar_body() {
    on_fuzz_thread(chat::TARGET, |watch| {
        let (seeds, bytes) = corpus(chat::TARGET);
        engine::run(chat::TARGET, &seeds, chat::strategy(bytes), &chat::check, watch)
    })
    .await
}

#[tokio::test]
async fn webhook_envelope_and_views() {
    crate::support::limit_to(engine::time_limit(), webhook_envelope_and_views_body()).await
}

async fn webhook_envelope_and_views_body() {
    on_fuzz_thread(webhook::TARGET, |watch| {
        let (files, _) = corpus(webhook::TARGET);
        let seeds = webhook::seed_deliveries(&files);
        let bytes = seeds.iter().map(|(_, b)| b.clone()).collect();
        engine::run(webhook::TARGET, &seeds, webhook::strategy(bytes), &webhook::check, watch)
    })
    .await
}

#[tokio::test]
async fn catalog_loader() {
    crate::support::limit_to(engine::time_limit(), catalog_loader_body()).await
}

async fn catalog_loader_body() {
    on_fuzz_thread(catalog::TARGET, |watch| {
        let (seeds, bytes) = corpus(catalog::TARGET);
        engine::run(catalog::TARGET, &seeds, catalog::strategy(bytes), &catalog::check, watch)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ci_template_path() {
    crate::support::limit_to(engine::time_limit(), ci_template_path_body()).await
}

async fn ci_template_path_body() {
    let app = spawn_app_with(TestDb::sqlite(), |s| s.public_url = Some(ci_path::PUBLIC_URL.to_owned())).await;
    let catalog = tao::catalog::Catalog::from_yaml(EXAMPLE).expect("example catalog");
    let server = ci_path::Server::new(&app.base, catalog);
    on_fuzz_thread(ci_path::TARGET, move |watch| {
        let (seeds, bytes) = corpus(ci_path::TARGET);
        engine::run(ci_path::TARGET, &seeds, ci_path::strategy(bytes), &|input| server.check(input), watch)
    })
    .await;
    drop(app.stop().await);
}
