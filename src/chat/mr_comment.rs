//! Chat in merge-request comments: `/tao …` lines of a new MR note run as chat commands, authorized by
//! the author's role in the project, and Tao answers once, in a reply on the same discussion.
//!
//! Transport adapter only: commands are parsed by `crate::chat` and run by `crate::chat::dispatch`.
//! Runs on note creation only (an edit is not a new request), never on system notes or Tao's own. One
//! reply per note, marked `<!-- tao:reply:NOTE -->`: a redelivered or retried event finds it and does
//! nothing again; a command that starts a task uses the note id (and line) as its idempotency key, so a
//! crash between acting and replying repeats the reply, not the task. A reply's file (the picture of
//! `dora`, `cfd`) is uploaded to the project (`POST /projects/:id/uploads`) and shown in the reply by
//! the Markdown GitLab returns; a repeated reply uploads again, which leaves an unused file, nothing more.

use std::fmt::Write as _;

use crate::chat::dispatch::{dispatch, Attachment, ChatRequest};
use crate::chat::{parse_comment, PREFIX};
use crate::gitlab::client::{GitLabClient, GitLabError, ProjectId};
use crate::gitlab::events::NoteEvent;
use crate::gitlab::handlers::{EventHandler, HandlerContext, HandlerFuture, StoredEvent};
use crate::service::{ChatUser, Services};

/// The hidden marker of Tao's reply to note `note_id`.
pub fn reply_marker(note_id: i64) -> String {
    format!("<!-- tao:reply:{note_id} -->")
}

/// Runs `/tao` commands from MR notes, through the services every front end uses.
#[derive(Debug, Clone)]
pub struct ChatNoteHandler {
    /// Where the commands act.
    pub services: Services,
}

impl EventHandler for ChatNoteHandler {
    fn name(&self) -> &'static str {
        "chat"
    }

    fn handle<'a>(&'a self, ctx: &'a HandlerContext, event: &'a StoredEvent) -> HandlerFuture<'a> {
        Box::pin(async move {
            let crate::gitlab::events::GitLabEvent::Note(note) = &event.view else { return Ok(()) };
            if ctx.gitlab.is_none() {
                return Ok(());
            }
            handle_note(&self.services, note).await.map_err(|e| e.to_string())
        })
    }
}

async fn handle_note(services: &Services, note: &NoteEvent) -> Result<(), GitLabError> {
    let attrs = &note.object_attributes;
    if attrs.noteable_type != "MergeRequest" || attrs.system == Some(true) {
        return Ok(());
    }
    if attrs.action.as_deref().is_some_and(|a| a != "create") {
        return Ok(());
    }
    let Some(mr) = &note.merge_request else { return Ok(()) };
    let Some(project_id) = note.project.as_ref().and_then(|p| p.id).or(note.project_id) else { return Ok(()) };
    let commands = parse_comment(&attrs.note);
    if commands.is_empty() {
        return Ok(());
    }
    let Some(gitlab) = services.gitlab() else { return Ok(()) };
    let project = ProjectId::Id(project_id);
    let me = gitlab.own_user_id().await?;
    let author_id = attrs.author_id.or_else(|| note.user.as_ref().and_then(|u| u.id)).unwrap_or_default();
    if author_id == me {
        return Ok(());
    }
    let marker = reply_marker(attrs.id);
    let discussions = gitlab.mr_discussions(&project, mr.iid).await?;
    let answered = discussions.iter().flat_map(|d| &d.notes).any(|n| n.author.id == me && n.body.contains(&marker));
    if answered {
        return Ok(());
    }
    let level = match gitlab.member(&project, author_id).await {
        Ok(m) => m.access_level.0,
        Err(e) if e.status() == Some(404) => 0,
        Err(e) => return Err(e),
    };
    let username = note.user.as_ref().and_then(|u| u.username.clone()).unwrap_or_else(|| format!("user-{author_id}"));
    let user = ChatUser { transport: "gitlab", id: author_id.to_string(), name: username, level, roles: Vec::new() };
    let mut body = format!("{marker}\n");
    for c in &commands {
        let _ = writeln!(body, "> `{}`\n", c.text.replace('`', "'"));
        match &c.result {
            Ok(command) => {
                let key = format!("gitlab-note-{}-{}", attrs.id, c.line);
                let reply =
                    dispatch(services, &ChatRequest { user: user.clone(), command: command.clone(), key }).await;
                let _ = writeln!(body, "{}\n", reply.text.trim_end());
                if let Some(file) = &reply.attachment {
                    let _ = writeln!(body, "{}\n", attach(gitlab, &project, file).await);
                }
            }
            Err(e) => {
                let _ = writeln!(body, "❌ {e}\n\nSee `{PREFIX} help`.\n");
            }
        }
    }
    let thread = discussions.iter().find(|d| d.notes.iter().any(|n| n.id == attrs.id)).map(|d| d.id.clone());
    match thread.or_else(|| attrs.discussion_id.clone()) {
        Some(discussion) => gitlab.reply_to_discussion(&project, mr.iid, &discussion, &body).await.map(|_| ()),
        None => gitlab.create_mr_note(&project, mr.iid, &body).await.map(|_| ()),
    }
}

/// Uploads a reply's file to the project and returns the Markdown that shows it, or a line saying why
/// it cannot be shown (the rest of the reply still goes out).
async fn attach(gitlab: &GitLabClient, project: &ProjectId, file: &Attachment) -> String {
    match gitlab.upload(project, &file.file_name, file.content_type(), &file.bytes).await {
        Ok(upload) => upload.markdown,
        Err(e) => {
            tracing::warn!(error = %e, file = %file.file_name, "cannot upload a chat picture to GitLab");
            format!("⚠️ The picture could not be uploaded to GitLab: {e}")
        }
    }
}
