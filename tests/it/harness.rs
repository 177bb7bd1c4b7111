//! The harness's own guarantees: every test runs under a time limit, and the limit fires.

use std::time::Duration;

use crate::support::limit_to;

#[test]
fn every_test_has_a_time_limit() {
    // A test that waits without an end must fail by name, not hang CI: each `#[tokio::test]` here calls
    // its body through `support::limit` or `support::limit_to` (`both_backends!` does so for the tests it
    // generates).
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it");
    let mut unlimited = Vec::new();
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if !line.starts_with("#[tokio::test") {
                continue;
            }
            seen += 1;
            let Some(f) = (i + 1..lines.len()).find(|&j| lines[j].starts_with("async fn ")) else {
                unlimited.push(format!("{}:{}", path.display(), i + 1));
                continue;
            };
            let limited = |l: &&str| {
                let l = l.trim_start();
                l.starts_with("crate::support::limit(") || l.starts_with("crate::support::limit_to(")
            };
            if !lines.get(f + 1).is_some_and(limited) {
                unlimited.push(format!("{}:{} {}", path.display(), f + 1, lines[f]));
            }
        }
    }
    assert!(seen > 100, "found the tests: {seen}");
    assert!(unlimited.is_empty(), "tests without a time limit: {unlimited:#?}");
}

#[tokio::test]
#[should_panic(expected = "exceeded its time limit")]
async fn a_test_that_never_ends_fails() {
    crate::support::limit(a_test_that_never_ends_fails_body()).await
}

async fn a_test_that_never_ends_fails_body() {
    limit_to(Duration::from_millis(50), std::future::pending()).await
}

#[tokio::test]
async fn a_test_within_its_limit_passes() {
    crate::support::limit(a_test_within_its_limit_passes_body()).await
}

async fn a_test_within_its_limit_passes_body() {
    limit_to(Duration::from_secs(5), tokio::time::sleep(Duration::from_millis(10))).await
}

#[tokio::test]
async fn postgres_test_databases_bound_every_statement() {
    crate::support::limit(postgres_test_databases_bound_every_statement_body()).await
}

async fn postgres_test_databases_bound_every_statement_body() {
    // A statement stuck behind a lock (or a server that stops answering a query) fails within a minute.
    let db = crate::support::TestDb::postgres().await;
    let pool = db.connect().await;
    let tao::store::Pool::Postgres(pg) = &pool else { panic!("a PostgreSQL pool") };
    for (setting, want) in [("statement_timeout", "1min"), ("lock_timeout", "30s")] {
        let got: String = sqlx::query_scalar(&format!("SHOW {setting}")).fetch_one(pg).await.unwrap();
        assert_eq!(got, want, "{setting}");
    }
    pool.close().await;
}
