//! Discord's gateway: Tao connected to Discord as its bot over a WebSocket, the way in for teams that run
//! Tao behind a firewall (no inbound HTTP from Discord). A thin adapter: no business logic.
//!
//! Owns starting serenity 0.12's `Client` with the bot token and no intents (Discord sends
//! `INTERACTION_CREATE` whatever the intents, and Tao reads nothing else from the gateway), through the
//! same REST base as every other call (`client::http`: serenity asks it for the gateway URL with
//! `GET /gateway`), logging the connection's state, turning each `INTERACTION_CREATE` into the JSON the
//! HTTP endpoint receives and answering it like the endpoint does ([`Discord::answer`]), except that
//! the answer goes to `POST /interactions/{id}/{token}/callback`, as Discord requires for gateway
//! interactions, and what it starts starts only once Discord took the answer. A redelivered dispatch
//! (same interaction id) gets no second callback and starts nothing. Stops the shards when Tao stops.
//!
//! serenity has no raw JSON of a dispatch: an interaction its model reads is serialized back (the model
//! keeps the fields Tao reads; it drops `type`, which is put back), and one it cannot read (serenity
//! 0.12.5 requires fields such as `attachment_size_limit` and `member.flags`) reaches the raw event
//! handler as `Event::Unknown` with the dispatch's `d` unchanged, which Tao reads as the endpoint would.

use serde_json::{json, Value};
use serenity::client::{ClientBuilder, Context, EventHandler, RawEventHandler};
use serenity::gateway::ShardStageUpdateEvent;
use serenity::model::event::{Event, ResumedEvent};
use serenity::model::gateway::{GatewayIntents, Ready};
use tokio::sync::watch;

use super::client::http;
use super::interaction::Discord;
use crate::config::Secret;

/// No intents: interactions need none, and none of Tao's features reads other gateway events.
const INTENTS: GatewayIntents = GatewayIntents::empty();

/// A gateway connection, ready to start.
pub struct Gateway {
    discord: Discord,
    http: serenity::http::Http,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").finish_non_exhaustive()
    }
}

impl Gateway {
    /// The gateway of the bot with `token`, reached through the API base `api_url` (as
    /// `TAO_DISCORD_API_URL`); its interactions go to `discord`. Connects nothing yet.
    pub fn new(discord: Discord, api_url: &str, token: &Secret) -> anyhow::Result<Gateway> {
        Ok(Gateway { discord, http: http(api_url, Some(token))? })
    }

    /// Connects (serenity reconnects and resumes by itself) and answers interactions until `stop` turns
    /// true, then shuts the shard down. A connection Discord refuses for good (a bad token) is logged and
    /// ends the gateway; Tao keeps serving.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let handler = Handler { discord: self.discord };
        let built = ClientBuilder::new_with_http(self.http, INTENTS)
            .raw_event_handler(handler.clone())
            .event_handler(handler)
            .await;
        let mut client = match built {
            Ok(c) => c,
            Err(e) => return tracing::error!(error = %e, "cannot start the Discord gateway client"),
        };
        let url = client.ws_url.lock().await.clone();
        tracing::info!(url = %url, "connecting to the Discord gateway");
        let manager = client.shard_manager.clone();
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        tokio::select! {
            ended = client.start() => match ended {
                Ok(()) => tracing::warn!("the Discord gateway connection ended"),
                Err(e) => tracing::error!(error = %e, "the Discord gateway connection failed for good"),
            },
            () = stopped => {
                // Closes the shard with 1000 and waits for the gateway's answer. A stop while the
                // shard is still connecting finds no shard to close (serenity 0.12 keeps booting it);
                // `tao serve` exits right after, so nothing stays connected.
                tracing::info!("closing the Discord gateway connection");
                manager.shutdown_all().await;
            }
        }
    }
}

/// serenity's handlers: interactions (raw events, to also get those its model cannot read) and the
/// connection's state.
#[derive(Clone)]
struct Handler {
    discord: Discord,
}

/// The interaction JSON of an `INTERACTION_CREATE` dispatch, as the HTTP endpoint would receive it.
fn interaction_json(event: &Event) -> Option<Value> {
    match event {
        Event::InteractionCreate(e) => {
            let mut v = serde_json::to_value(&e.interaction).ok()?;
            v["type"] = json!(u8::from(e.interaction.kind()));
            Some(v)
        }
        Event::Unknown(u) if u.kind == "INTERACTION_CREATE" => {
            tracing::debug!("an interaction serenity cannot read arrived over the gateway: read as sent");
            Some(u.value.clone())
        }
        _ => None,
    }
}

impl Handler {
    /// Answers interaction `i` with a callback, then starts what it asked for.
    async fn interaction(&self, i: Value) {
        let id = i["id"].as_str().unwrap_or_default().to_string();
        let answer = match self.discord.answer(&i).await {
            Ok(a) => a,
            Err(e) => return tracing::warn!(interaction = %id, error = %e, "a Discord interaction was refused"),
        };
        if answer.is_repeat() {
            return tracing::info!(interaction = %id, "Discord redelivered an interaction: answered before");
        }
        let token = i["token"].as_str().unwrap_or_default();
        match self.discord.client().interaction_callback(&id, token, answer.body()).await {
            Ok(_) => answer.start(),
            // Discord shows the user a failure; doing the work anyway would surprise them.
            Err(e) => {
                tracing::warn!(interaction = %id, error = %e, "cannot answer a Discord interaction: nothing done")
            }
        }
    }
}

#[serenity::async_trait]
impl RawEventHandler for Handler {
    async fn raw_event(&self, _ctx: Context, event: Event) {
        if let Some(i) = interaction_json(&event) {
            self.interaction(i).await;
        }
    }
}

#[serenity::async_trait]
impl EventHandler for Handler {
    async fn ready(&self, _ctx: Context, ready: Ready) {
        tracing::info!(bot = %ready.user.name, guilds = ready.guilds.len(), "connected to the Discord gateway");
    }

    async fn resume(&self, _ctx: Context, _event: ResumedEvent) {
        tracing::info!("Discord gateway session resumed");
    }

    async fn shard_stage_update(&self, _ctx: Context, event: ShardStageUpdateEvent) {
        tracing::info!(from = %event.old, to = %event.new, "Discord gateway connection");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHAT_INPUT: &str =
        include_str!("../../../tests/fixtures/discord/gateway/op0_interaction_create.chat_input.derived.json");
    const AUTOCOMPLETE: &str =
        include_str!("../../../tests/fixtures/discord/interaction_requests/autocomplete.focused.derived.json");

    fn event(dispatch: &Value) -> Event {
        match serde_json::from_value(dispatch.clone()).unwrap() {
            serenity::model::event::GatewayEvent::Dispatch(_, e) => e,
            other => panic!("not a dispatch: {other:?}"),
        }
    }

    /// What `Discord::answer` and the dispatch read survives serenity's model.
    fn assert_keeps_what_tao_reads(sent: &Value, got: &Value) {
        for path in [
            "/type",
            "/id",
            "/application_id",
            "/token",
            "/channel_id",
            "/member/user/id",
            "/member/user/global_name",
            "/member/roles",
            "/data/name",
        ] {
            assert_eq!(got.pointer(path), sent.pointer(path), "{path}");
        }
        let options = |v: &Value| {
            v["data"]["options"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| (o["name"].clone(), o["value"].clone(), o["focused"].clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(options(got), options(sent));
    }

    #[test]
    fn modelled_interactions_serialize_back_to_what_the_endpoint_gets() {
        let dispatch: Value = serde_json::from_str(CHAT_INPUT).unwrap();
        let e = event(&dispatch);
        assert!(matches!(e, Event::InteractionCreate(_)), "{e:?}");
        assert_keeps_what_tao_reads(&dispatch["d"], &interaction_json(&e).unwrap());
        let d: Value = serde_json::from_str(AUTOCOMPLETE).unwrap();
        let e = event(&json!({ "op": 0, "s": 3, "t": "INTERACTION_CREATE", "d": d }));
        let got = interaction_json(&e).unwrap();
        assert_eq!(got["type"], 4);
        assert_keeps_what_tao_reads(&d, &got);
    }

    #[test]
    fn interactions_serenity_cannot_read_arrive_as_sent() {
        let mut dispatch: Value = serde_json::from_str(CHAT_INPUT).unwrap();
        dispatch["d"].as_object_mut().unwrap().remove("attachment_size_limit");
        let e = event(&dispatch);
        assert!(matches!(e, Event::Unknown(_)), "{e:?}");
        assert_eq!(interaction_json(&e).unwrap(), dispatch["d"]);
        let ready = json!({ "op": 0, "s": 1, "t": "RESUMED", "d": {} });
        assert!(interaction_json(&event(&ready)).is_none());
    }
}
