//! The real-browser support (`support::browser`) against a tiny page served here: a form with a
//! `<select>`, text that JavaScript changes after 300 ms, a cookie set by the server, and a second route
//! echoing what the form posted. Every helper of `Browser` is driven once.

use std::collections::HashMap;
use std::time::Duration;

use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde_json::json;

use crate::support::browser::{Browser, PNG_SIGNATURE};

const PAGE: &str = r#"<!doctype html>
<html>
<head><title>Smoke</title></head>
<body>
  <h1>Browser smoke</h1>
  <p id="later">waiting</p>
  <form id="release" method="post" action="/echo">
    <input name="who" value="nobody">
    <select name="env">
      <option value="dev">Development</option>
      <option value="staging">Staging</option>
      <option value="prod">Production</option>
    </select>
    <button type="submit">Send</button>
  </form>
  <button id="count" type="button" onclick="this.textContent = String(Number(this.textContent) + 1)">0</button>
  <script>
    setTimeout(function () { document.getElementById("later").textContent = "updated by script"; }, 300);
  </script>
</body>
</html>
"#;

/// The page, with a cookie of the server's.
async fn page() -> impl IntoResponse {
    ([("set-cookie", "tao_smoke=from-server; Path=/")], Html(PAGE))
}

/// What the form posted, and the cookies that came with it.
async fn echo(headers: axum::http::HeaderMap, Form(fields): Form<HashMap<String, String>>) -> Html<String> {
    let field = |name: &str| escape(fields.get(name).map(String::as_str).unwrap_or(""));
    let cookies = headers.get("cookie").and_then(|v| v.to_str().ok()).unwrap_or("");
    Html(format!(
        "<!doctype html><html><body><h1>Echo</h1><dl>\
         <dt>who</dt><dd id=\"who\">{}</dd><dt>env</dt><dd id=\"env\">{}</dd>\
         <dt>cookies</dt><dd id=\"cookies\">{}</dd></dl></body></html>",
        field("who"),
        field("env"),
        escape(cookies)
    ))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Serves the page on a free loopback port; answers `http://127.0.0.1:PORT`.
async fn serve() -> String {
    let app = Router::new().route("/", get(page)).route("/echo", post(echo));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://127.0.0.1:{}", listener.local_addr().expect("address").port());
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    base
}

#[tokio::test]
async fn every_helper_drives_a_real_chromium() {
    crate::support::limit(every_helper_drives_a_real_chromium_body()).await
}

async fn every_helper_drives_a_real_chromium_body() {
    let base = serve().await;
    let browser = Browser::start().await;

    browser.goto(&format!("{base}/")).await;
    assert_eq!(browser.url().await, format!("{base}/"));
    assert_eq!(browser.text("h1").await, "Browser smoke");
    assert!(browser.exists("form#release").await);
    assert!(!browser.exists("#nothing-here").await);
    assert_eq!(browser.texts("select[name=env] option").await, ["Development", "Staging", "Production"]);
    assert!(browser.html().await.contains("<title>Smoke</title>"));

    browser.wait_for_text("#later", "updated by script", Duration::from_secs(10)).await;

    browser.click("#count").await;
    browser.click("#count").await;
    assert_eq!(browser.text("#count").await, "2");

    let answer = browser.execute("return arguments[0] + document.querySelectorAll('option').length;", vec![json!(10)]);
    assert_eq!(answer.await, json!(13));

    assert_eq!(browser.cookie("tao_smoke").await.as_deref(), Some("from-server"));
    assert_eq!(browser.cookie("tao_absent").await, None);
    browser.set_cookie("tao_client", "from-test").await;
    assert_eq!(browser.cookie("tao_client").await.as_deref(), Some("from-test"));

    let shot = browser.screenshot("browser_smoke").await;
    let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("{}: {e}", shot.display()));
    assert!(png.starts_with(&PNG_SIGNATURE), "{} is no PNG", shot.display());

    // `fill` clears what the input held.
    browser.fill("input[name=who]", "Ada").await;
    browser.fill("input[name=who]", "Grace").await;
    browser.select("select[name=env]", "prod").await;
    browser.submit("form#release").await;

    browser.wait_for_text("#who", "Grace", Duration::from_secs(10)).await;
    assert_eq!(browser.url().await, format!("{base}/echo"));
    assert_eq!(browser.text("#who").await, "Grace");
    assert_eq!(browser.text("#env").await, "prod");
    let cookies = browser.text("#cookies").await;
    assert!(cookies.contains("tao_smoke=from-server") && cookies.contains("tao_client=from-test"), "{cookies}");

    browser.delete_all_cookies().await;
    assert_eq!(browser.cookie("tao_smoke").await, None);

    browser.close().await;
}
