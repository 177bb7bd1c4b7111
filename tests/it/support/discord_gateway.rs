//! The Discord gateway double: Discord's WebSocket gateway as serenity 0.12's `Client` uses it, on
//! `ws://127.0.0.1:PORT` (the REST double's `GET /gateway` answers that URL).
//!
//! Per connection it speaks Discord's opening: HELLO (op 10, the docs' frame with a 1 s heartbeat
//! interval), then waits for IDENTIFY (op 2) and checks its token is `Bot <BOT_TOKEN>`, then sends READY
//! (op 0, `s` 1, the fixture's real shape) and from then on the dispatches a test pushes (op 0, `s`
//! counting up). Heartbeats (op 1) get their ACK (op 11, the docs' frame). Text frames only, as serenity
//! accepts. It records the request URI, every frame received, the close codes, and as unexpected: a
//! wrong URI (serenity connects to `?v=10`), a wrong token, any opcode but IDENTIFY (once) and
//! heartbeats, non-JSON frames.

use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::Message;

use super::discord::BOT_TOKEN;

const HELLO: &str = include_str!("../../fixtures/discord/gateway/op10_hello.docs.json");
const READY: &str = include_str!("../../fixtures/discord/gateway/op0_ready.minimal.derived.json");
const ACK: &str = include_str!("../../fixtures/discord/gateway/op11_heartbeat_ack.docs.json");

/// The heartbeat interval the double asks for, in ms (Discord's is ~41 s; short so tests see several).
pub const HEARTBEAT_MS: u64 = 1000;

#[derive(Default)]
struct Book {
    /// Request URIs of the WebSocket connections, in order.
    connections: Vec<String>,
    /// Every JSON frame received, in order.
    frames: Vec<Value>,
    unexpected: Vec<String>,
    /// Close codes of the connections the client closed.
    closes: Vec<u16>,
    /// The last sequence number sent (READY is 1).
    seq: u64,
}

/// A running gateway double.
pub struct GatewayDouble {
    /// `ws://127.0.0.1:PORT`.
    pub url: String,
    book: Arc<Mutex<Book>>,
    push: mpsc::UnboundedSender<Value>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for GatewayDouble {
    fn drop(&mut self) {
        self.server.abort();
    }
}

type Shared = (Arc<Mutex<Book>>, Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Value>>>);

impl GatewayDouble {
    /// Starts the double.
    pub async fn start() -> GatewayDouble {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the gateway double");
        let url = format!("ws://{}", listener.local_addr().unwrap());
        let book: Arc<Mutex<Book>> = Arc::default();
        let (push, rx) = mpsc::unbounded_channel();
        let shared: Shared = (book.clone(), Arc::new(tokio::sync::Mutex::new(rx)));
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(connection(stream, shared.clone()));
            }
        });
        GatewayDouble { url, book, push, server }
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The request URIs of the connections so far.
    pub fn connections(&self) -> Vec<String> {
        self.book().connections.clone()
    }

    /// The `d` of every frame with opcode `op` received so far.
    pub fn received(&self, op: u64) -> Vec<Value> {
        self.book().frames.iter().filter(|f| f["op"] == op).map(|f| f["d"].clone()).collect()
    }

    /// What the double refused or did not expect.
    pub fn unexpected(&self) -> Vec<String> {
        self.book().unexpected.clone()
    }

    /// The close codes of connections the client closed (1000: a clean log-off).
    pub fn closes(&self) -> Vec<u16> {
        self.book().closes.clone()
    }

    /// The last sequence number sent.
    pub fn seq(&self) -> u64 {
        self.book().seq
    }

    /// Sends dispatch `t` with data `d` on the current connection once it is READY (queued until then).
    pub fn dispatch(&self, t: &str, d: Value) {
        self.push.send(json!({ "t": t, "d": d })).expect("the gateway double runs");
    }
}

fn note(book: &Arc<Mutex<Book>>, what: String) {
    book.lock().unwrap_or_else(|e| e.into_inner()).unexpected.push(what);
}

/// One connection: the opening, then heartbeats and pushed dispatches until it closes.
async fn connection(stream: tokio::net::TcpStream, (book, pushed): Shared) {
    let uri_book = book.clone();
    // The signature is tungstenite's handshake `Callback`.
    #[allow(clippy::result_large_err)]
    let record_uri = move |req: &Request, res: Response| -> Result<Response, ErrorResponse> {
        let uri = req.uri().to_string();
        let mut b = uri_book.lock().unwrap_or_else(|e| e.into_inner());
        if uri != "/?v=10" {
            b.unexpected.push(format!("connected to {uri}, not /?v=10"));
        }
        b.connections.push(uri);
        Ok(res)
    };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, record_uri).await else {
        return note(&book, "a WebSocket handshake failed".into());
    };
    let (mut tx, mut rx) = ws.split();
    let mut hello: Value = serde_json::from_str(HELLO).unwrap();
    hello["d"]["heartbeat_interval"] = json!(HEARTBEAT_MS);
    if tx.send(Message::Text(hello.to_string())).await.is_err() {
        return;
    }
    let mut identified = false;
    let mut pushed = pushed.lock().await;
    loop {
        tokio::select! {
            frame = rx.next() => {
                let text = match frame {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(frame))) => {
                        let code = frame.map_or(0, |f| u16::from(f.code));
                        book.lock().unwrap_or_else(|e| e.into_inner()).closes.push(code);
                        // Sends tungstenite's queued answer to the close (serenity waits for it).
                        let _ = tx.flush().await;
                        return;
                    }
                    None | Some(Err(_)) => return,
                    Some(Ok(_)) => continue,
                };
                let Ok(frame) = serde_json::from_str::<Value>(&text) else {
                    return note(&book, format!("a frame that is not JSON: {text:?}"));
                };
                book.lock().unwrap_or_else(|e| e.into_inner()).frames.push(frame.clone());
                match (frame["op"].as_u64(), identified) {
                    (Some(2), false) => {
                        if frame["d"]["token"] != format!("Bot {BOT_TOKEN}") {
                            note(&book, "IDENTIFY with a wrong token".into());
                            return;
                        }
                        identified = true;
                        let mut ready: Value = serde_json::from_str(READY).unwrap();
                        ready["s"] = json!(1);
                        book.lock().unwrap_or_else(|e| e.into_inner()).seq = 1;
                        if tx.send(Message::Text(ready.to_string())).await.is_err() {
                            return;
                        }
                    }
                    (Some(1), _) => {
                        if tx.send(Message::Text(ACK.trim().to_string())).await.is_err() {
                            return;
                        }
                    }
                    (op, _) => note(&book, format!("op {op:?} (identified: {identified})")),
                }
            }
            next = pushed.recv(), if identified => {
                let Some(mut dispatch) = next else { return };
                let seq = {
                    let mut b = book.lock().unwrap_or_else(|e| e.into_inner());
                    b.seq += 1;
                    b.seq
                };
                dispatch["op"] = json!(0);
                dispatch["s"] = json!(seq);
                if tx.send(Message::Text(dispatch.to_string())).await.is_err() {
                    return;
                }
            }
        }
    }
}
