//! What Tao posts to Discord: a [`Reply`] as a message body (Markdown content, the production
//! confirmation button), a running task's progress, and Discord's limits (2000 characters of content;
//! longer text is cut, code fences closed, and a link to `/ui/tasks/{id}` added when Tao knows its URL).
//!
//! Owns the button's `custom_id` format (`confirm:<interaction id>:<command line>`, at most 100
//! characters): what a click asks to confirm. Pure: no I/O.

use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::chat::dispatch::{Outcome, Reply};
use crate::chat::Command;
use crate::deploy::task::TaskStatus;
use crate::store::task::{LogRow, TaskRow};

/// Discord's limit on a message's content, in characters.
pub const MAX_CONTENT: usize = 2000;
/// Discord's limit on a component's `custom_id`.
pub const MAX_CUSTOM_ID: usize = 100;
/// Log lines a progress message shows.
pub const PROGRESS_LINES: usize = 8;

const CONFIRM: &str = "confirm:";

/// Where the full text of task `id` is, when Tao knows its public URL.
pub fn task_link(public_url: Option<&str>, id: Option<i64>) -> Option<String> {
    Some(format!("{}/ui/tasks/{}", public_url?.trim_end_matches('/'), id?))
}

/// Cuts `text` to Discord's limit: whole lines where possible, an open code fence closed, and a last
/// line pointing at `link` (or saying it was cut).
pub fn fit(text: &str, link: Option<&str>) -> String {
    if text.chars().count() <= MAX_CONTENT {
        return text.to_string();
    }
    let tail = match link {
        Some(l) => format!("\n… (cut; all of it: {l})"),
        None => "\n… (cut: longer than Discord allows)".to_string(),
    };
    let budget = MAX_CONTENT - tail.chars().count() - 4;
    let mut out: String = text.chars().take(budget).collect();
    if let Some(nl) = out.rfind('\n').filter(|&i| i > budget / 2) {
        out.truncate(nl);
    }
    if out.matches("```").count() % 2 == 1 {
        out.push_str("\n```");
    }
    out.push_str(&tail);
    out
}

/// The `custom_id` of the confirmation button for `command` (asked in interaction `interaction_id`), or
/// `None` when it would be longer than Discord allows.
pub fn confirm_id(interaction_id: &str, command: &Command) -> Option<String> {
    let id = format!("{CONFIRM}{interaction_id}:{command}");
    (id.chars().count() <= MAX_CUSTOM_ID).then_some(id)
}

/// Reads a confirmation button's `custom_id`: the original interaction id and the command line.
pub fn parse_confirm_id(custom_id: &str) -> Option<(&str, &str)> {
    let rest = custom_id.strip_prefix(CONFIRM)?;
    let (id, line) = rest.split_once(':')?;
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) && !line.is_empty()).then_some((id, line))
}

/// The message body (edit or create) showing `reply`: its text, and for a production confirmation a
/// button (`confirm_id`) when one fits. Mentions in the text never ping anyone. A reply's attachment is
/// named in the content and listed as `attachments: [{id: 0, filename}]`: Discord's "Uploading Files"
/// contract, where the body goes as `payload_json` and the file as the `files[0]` part (see
/// `DiscordClient::edit_original_with_file`).
pub fn reply_body(reply: &Reply, confirm_id: Option<&str>, link: Option<&str>) -> Value {
    let text = match &reply.attachment {
        Some(a) => format!("{}\n📎 {}", reply.text.trim_end(), a.file_name),
        None => reply.text.clone(),
    };
    let mut body = json!({ "content": fit(&text, link), "allowed_mentions": { "parse": [] }, "components": [] });
    if let Some(a) = &reply.attachment {
        body["attachments"] = json!([{ "id": 0, "filename": a.file_name }]);
    }
    if reply.outcome == Outcome::NeedsConfirmation {
        if let Some(id) = confirm_id {
            body["components"] = json!([{ "type": 1, "components": [
                { "type": 2, "style": 4, "label": "Confirm", "custom_id": id }
            ]}]);
        }
    }
    body
}

/// A plain message body (no components, no pings).
pub fn text_body(text: &str, link: Option<&str>) -> Value {
    json!({ "content": fit(text, link), "allowed_mentions": { "parse": [] }, "components": [] })
}

fn status_icon(status: TaskStatus) -> &'static str {
    match status {
        TaskStatus::Queued => "⏳",
        TaskStatus::Running => "🔄",
        TaskStatus::Succeeded => "✅",
        TaskStatus::Failed => "❌",
        TaskStatus::Cancelled | TaskStatus::Interrupted => "⛔",
    }
}

/// The progress of `task`: the reply's first line, the status, the error if any, and the last log lines.
pub fn progress(headline: &str, task: &TaskRow, log: &[LogRow]) -> String {
    let mut text = format!("{headline}\n{} Task {}: **{}**", status_icon(task.status), task.id, task.status);
    if let Some(e) = &task.error {
        let _ = write!(text, " ({e})");
    }
    let tail: Vec<&LogRow> = log.iter().rev().take(PROGRESS_LINES).collect();
    if !tail.is_empty() {
        text.push_str("\n```\n");
        for l in tail.into_iter().rev() {
            let line = l.line.replace("```", "ˋˋˋ");
            match &l.host {
                Some(h) => writeln!(text, "{} {h}: {line}", l.level),
                None => writeln!(text, "{} {line}", l.level),
            }
            .ok();
        }
        text.push_str("```");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_with_a_link_and_fences_closed() {
        let text = format!("head\n```\n{}", "log line\n".repeat(400));
        let out = fit(&text, Some("https://tao.example/ui/tasks/7"));
        assert!(out.chars().count() <= MAX_CONTENT, "{}", out.chars().count());
        assert!(out.ends_with("all of it: https://tao.example/ui/tasks/7)"));
        assert_eq!(out.matches("```").count() % 2, 0);
        assert_eq!(fit("short", None), "short");
        let emoji = "🚀".repeat(2500);
        assert!(fit(&emoji, None).chars().count() <= MAX_CONTENT);
    }

    #[test]
    fn the_confirm_button_names_the_interaction_and_the_command() {
        let cmd = crate::chat::parse_line("deploy monitor 1.1.0 prod").unwrap();
        let id = confirm_id("1381177107555680327", &cmd).unwrap();
        assert_eq!(parse_confirm_id(&id), Some(("1381177107555680327", "deploy monitor 1.1.0 prod")));
        let reply = Reply::new(Outcome::NeedsConfirmation, "⚠️ prod");
        let body = reply_body(&reply, Some(&id), None);
        assert_eq!(body["components"][0]["components"][0]["custom_id"], id.as_str());
        let many: Vec<String> = (0..9).map(|i| format!("component-{i}")).collect();
        let long = crate::chat::parse_line(&format!("deploy monitor 1.1.0 prod {}", many.join(" "))).unwrap();
        assert_eq!(confirm_id("1381177107555680327", &long), None);
        assert_eq!(parse_confirm_id("confirm:abc:deploy"), None);
        assert_eq!(parse_confirm_id("click_one"), None);
    }

    #[test]
    fn edits_have_the_shape_serenity_sends() {
        // serenity 0.12.5's EditInteractionResponse: content and components at the top level.
        let captured: Value = serde_json::from_str(include_str!(
            "../../../tests/fixtures/discord/serenity_captured/rest.edit_original_response.PATCH.serenity-0.12.5.json"
        ))
        .unwrap();
        let ours = text_body("hi", None);
        for key in ["content", "components"] {
            assert!(captured["body"].get(key).is_some() && ours.get(key).is_some(), "{key}");
        }
        let button = &captured["body"]["components"][0];
        let reply = Reply::new(Outcome::NeedsConfirmation, "x");
        let mine = reply_body(&reply, Some("confirm:1:envs"), None);
        assert_eq!(mine["components"][0]["type"], button["type"]);
        assert_eq!(mine["components"][0]["components"][0]["type"], button["components"][0]["type"]);
    }
}
