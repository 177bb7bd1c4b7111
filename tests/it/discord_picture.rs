//! `/dora` and `/cfd` on Discord: a deferred answer, then an edit of the original response uploading the
//! picture the way Discord documents it (`payload_json` + `files[0]`, listed in `attachments`), whose
//! bytes are those `tao report` writes for the same data; bad input and outsiders get text only.

use serde_json::{json, Value};

use crate::discord::{scene, Scene, DEVELOPER, NOBODY};
use crate::metrics::{history_at, png_size, report_bytes};
use crate::support::TestDb;
use crate::webhook::wait_for;

const DAY: i64 = 86_400_000;

/// Sends `/name options` as `user` and waits for the edit of its response; returns the token.
async fn ask(s: &Scene, user: &str, name: &str, options: Value) -> String {
    let (i, token) = s.command(user, &[], name, options);
    assert_eq!(s.post(&i).await, (200, json!({"type": 5})), "deferred at once");
    wait_for("the response edited", || async { !s.double.edits(&token).is_empty() }).await;
    token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dora_posts_the_report_picture_as_an_attachment() {
    crate::support::limit(dora_posts_the_report_picture_as_an_attachment_body()).await
}

async fn dora_posts_the_report_picture_as_an_attachment_body() {
    let s = scene(TestDb::sqlite()).await;
    let now = tao::store::now_ms();
    history_at(&s.app, now - now.rem_euclid(DAY) - 10 * DAY).await;

    let token = ask(&s, DEVELOPER, "dora", json!([{"name": "product", "type": 3, "value": "monitor"}])).await;
    let edits = s.double.edits(&token);
    assert_eq!(edits.len(), 1, "{edits:?}");
    assert_eq!(edits[0]["attachments"], json!([{"id": 0, "filename": "dora-monitor.png"}]));
    let content = edits[0]["content"].as_str().unwrap();
    assert!(content.starts_with("📈 **monitor: deployments per day ("), "{content}");
    assert!(content.contains("- prod: 9 deployments, 0.23/day, change failure rate 44%"), "{content}");
    assert!(content.ends_with("📎 dora-monitor.png"), "{content}");
    let files = s.double.files(&token);
    assert_eq!(files.len(), 1);
    let file = &files[0];
    assert_eq!((file.part.as_str(), file.file_name.as_str()), ("files[0]", "dora-monitor.png"));
    assert_eq!(file.content_type.as_deref(), Some("image/png"));
    assert_eq!(png_size(&file.bytes), (1000, 600));
    let cli = report_bytes(&s.app, &["dora", "monitor"]).await;
    assert!(cli == file.bytes, "the CLI wrote other bytes ({} vs {})", cli.len(), file.bytes.len());

    let audit = s.app.get("/api/v1/audit", &s.app.admin).await;
    assert!(audit.body.to_string().contains("chat.dora"), "{:?}", audit.body);
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cfd_posts_the_flow_of_an_iteration() {
    crate::support::limit(cfd_posts_the_flow_of_an_iteration_body()).await
}

async fn cfd_posts_the_flow_of_an_iteration_body() {
    use crate::cfd::{item, T0};
    let s = scene(TestDb::sqlite()).await;
    let ago = |days: i64| tao::store::now_ms() - T0 - days * DAY;
    item(&s.app, "9", "1.1.0", ago(3), &[("planning", ago(3)), ("resolved", ago(1))]).await;
    item(&s.app, "10", "1.1.0", ago(2), &[("planning", ago(2))]).await;
    item(&s.app, "11", "1.2.0", ago(2), &[("planning", ago(2))]).await;
    let options = json!([{"name": "product", "type": 3, "value": "monitor"},
                         {"name": "version", "type": 3, "value": "v1.1.0"}, {"name": "days", "type": 4, "value": 7}]);
    let token = ask(&s, DEVELOPER, "cfd", options).await;
    let edit = &s.double.edits(&token)[0];
    assert_eq!(edit["attachments"], json!([{"id": 0, "filename": "cfd-monitor-1.1.0.png"}]));
    let content = edit["content"].as_str().unwrap();
    assert!(content.contains("**monitor 1.1.0: work items per state**, 7 day(s) to "), "{content}");
    assert!(content.contains("At the end: planning 1, resolved 1."), "{content}");
    let files = s.double.files(&token);
    assert_eq!(files.len(), 1);
    let cli = report_bytes(&s.app, &["cfd", "monitor", "--version", "1.1.0", "--days", "7"]).await;
    assert!(cli == files[0].bytes, "the CLI wrote other bytes");
    assert_eq!(png_size(&files[0].bytes), (1000, 600));
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_products_bad_days_and_outsiders_get_text_and_no_file() {
    crate::support::limit(unknown_products_bad_days_and_outsiders_get_text_and_no_file_body()).await
}

async fn unknown_products_bad_days_and_outsiders_get_text_and_no_file_body() {
    let s = scene(TestDb::sqlite()).await;
    let product = |p: &str| json!({"name": "product", "type": 3, "value": p});
    let unknown = ask(&s, DEVELOPER, "dora", json!([product("monitr")])).await;
    assert_eq!(s.double.last_content(&unknown), "❌ unknown product \"monitr\" (known: monitor)");
    let env = ask(&s, DEVELOPER, "dora", json!([product("monitor"), {"name": "env", "type": 3, "value": "qa"}])).await;
    assert!(s.double.last_content(&env).starts_with("❌ unknown environment \"qa\" (known: "));
    let days = ask(&s, DEVELOPER, "cfd", json!([product("monitor"), {"name": "days", "type": 4, "value": 0}])).await;
    assert_eq!(
        s.double.last_content(&days),
        "❌ cfd: invalid <days>: expected a number of days from 1 to 366, found \"0\""
    );
    let outsider = ask(&s, NOBODY, "cfd", json!([product("monitor")])).await;
    assert!(s.double.last_content(&outsider).contains("has no Tao role"));
    for token in [unknown, env, days, outsider] {
        assert!(s.double.files(&token).is_empty());
        assert!(s.double.edits(&token)[0].get("attachments").is_none());
    }
    s.finish().await;
}

/// The double holds Tao to Discord's contract: files only on the edit route, each listed by id, within
/// the content limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_double_refuses_uploads_discord_would_refuse() {
    crate::support::limit(the_double_refuses_uploads_discord_would_refuse_body()).await
}

async fn the_double_refuses_uploads_discord_would_refuse_body() {
    use reqwest::multipart::{Form, Part};
    let double = crate::support::discord::DiscordDouble::start().await;
    let app = crate::support::discord::APPLICATION;
    let send = |path: String, payload: Value, part: &'static str| {
        let form = Form::new()
            .text("payload_json", payload.to_string())
            .part(part, Part::bytes(b"\x89PNG".to_vec()).file_name("a.png").mime_str("image/png").unwrap());
        crate::support::http_client()
            .patch(format!("{}{path}", double.url))
            .header("Authorization", format!("Bot {}", crate::support::discord::BOT_TOKEN))
            .header("User-Agent", "DiscordBot (tests, 1)")
            .multipart(form)
            .send()
    };
    let edit = format!("/webhooks/{app}/t/messages/@original");
    let listed = json!({"content": "x", "attachments": [{"id": 0, "filename": "a.png"}]});
    assert_eq!(send(edit.clone(), listed.clone(), "files[0]").await.unwrap().status(), 200);
    assert_eq!(double.files("t").len(), 1);
    let cases = [
        (edit.clone(), json!({"content": "x"}), "files[0]", "files[0] is not listed in attachments"),
        (edit.clone(), listed.clone(), "files[1]", "attachment 0 has no files[0] part"),
        (edit.clone(), json!({"content": "x".repeat(2001), "attachments": listed["attachments"]}), "files[0]", "2000"),
        (edit.clone(), listed.clone(), "file", "unexpected part \"file\""),
        ("/channels/1/messages/2".to_string(), listed.clone(), "files[0]", "accepted only on PATCH /webhooks"),
    ];
    for (i, (path, payload, part, why)) in cases.into_iter().enumerate() {
        assert_eq!(send(path, payload, part).await.unwrap().status(), 400, "case {i}");
        let unexpected = double.unexpected();
        assert!(unexpected.len() == i + 1 && unexpected[i].contains(why), "case {i}: {unexpected:?}");
    }
    assert_eq!(double.files("t").len(), 1, "nothing refused was recorded");
}
