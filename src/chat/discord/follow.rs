//! Following a task from Discord: while the task a command started runs, its response is edited with
//! the status and the last log lines (polled every [`DiscordConfig::poll`](super::DiscordConfig)), until
//! the task ends.
//!
//! Interaction tokens live 15 minutes. Shortly before that, the response says the progress continues
//! below and Tao posts a channel message with the bot token (`POST /channels/{id}/messages`), which it
//! edits from then on; without a bot token, the response says where to look (`/task <id>`, the task page)
//! and following stops.

use std::collections::VecDeque;
use std::time::Instant;

use super::interaction::{Ctx, Discord};
use super::render::{progress, text_body, PROGRESS_LINES};
use crate::store::task::LogRow;

/// Where progress goes.
enum Target {
    /// The interaction's response (token still valid).
    Response,
    /// Tao's own channel message (channel, message id).
    Channel(String, String),
    /// Nowhere any more.
    Stopped,
}

impl Discord {
    /// Edits the response of `ctx` with task `task`'s progress until it ends, then forgets the task.
    pub(super) async fn follow(&self, ctx: Ctx, task: i64, headline: String) {
        self.follow_inner(&ctx, task, &headline).await;
        self.stop_following(task);
    }

    async fn follow_inner(&self, ctx: &Ctx, id: i64, headline: &str) {
        let lifetime = self.config().token_lifetime;
        let deadline = ctx.received + lifetime.saturating_sub(lifetime / 30);
        let link = self.link(Some(id));
        let (mut tail, mut after, mut last) = (VecDeque::<LogRow>::new(), 0i64, String::new());
        let mut target = Target::Response;
        loop {
            tokio::time::sleep(self.config().poll).await;
            let task = match self.services().task(id).await {
                Ok(t) => t,
                Err(e) => return tracing::warn!(task = id, error = %e, "cannot follow a task for Discord"),
            };
            match self.services().task_log(id, after).await {
                Ok(lines) => {
                    for l in lines {
                        after = l.id;
                        tail.push_back(l);
                        if tail.len() > PROGRESS_LINES {
                            tail.pop_front();
                        }
                    }
                }
                Err(e) => tracing::warn!(task = id, error = %e, "cannot read a task's log for Discord"),
            }
            let text = progress(headline, &task, tail.make_contiguous());
            let done = task.is_finished();
            if matches!(target, Target::Response) && Instant::now() >= deadline && !done {
                target = self.hand_over(ctx, id, &text, link.as_deref()).await;
                last = text.clone();
            }
            if text != last {
                let body = text_body(&text, link.as_deref());
                match &target {
                    Target::Response => self.edit(ctx, &body).await,
                    Target::Channel(channel, message) => {
                        if let Err(e) = self.client().edit_message(channel, message, &body).await {
                            tracing::warn!(task = id, error = %e, "cannot edit Tao's Discord channel message");
                        }
                    }
                    Target::Stopped => return,
                }
                last = text;
            }
            if done || matches!(target, Target::Stopped) {
                return;
            }
        }
    }

    /// The interaction token is about to expire: continue in a channel message, or stop with a pointer.
    async fn hand_over(&self, ctx: &Ctx, id: i64, text: &str, link: Option<&str>) -> Target {
        let channel = ctx.channel.clone().filter(|_| self.client().has_token());
        let note = match (&channel, link) {
            (Some(_), _) => "\n_Continued in a new message below (Discord's 15-minute interaction limit)._".to_string(),
            (None, Some(l)) => format!("\n_Progress stops here (Discord's 15-minute interaction limit): see {l}_"),
            (None, None) => format!("\n_Progress stops here (Discord's 15-minute interaction limit): `/task {id}`_"),
        };
        self.edit(ctx, &text_body(&format!("{text}{note}"), link)).await;
        let Some(channel) = channel else { return Target::Stopped };
        match self.client().create_message(&channel, &text_body(text, link)).await {
            Ok(message) if !message.is_empty() => Target::Channel(channel, message),
            Ok(_) => Target::Stopped,
            Err(e) => {
                tracing::warn!(task = id, error = %e, "cannot post Tao's Discord channel message");
                Target::Stopped
            }
        }
    }
}
