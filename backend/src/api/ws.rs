//! `GET /api/v1/ws`: the live channel to the cockpit.
//!
//! On connect the client gets `hello` and, at once, the latest heartbeat;
//! after that every event on the state's bus (a heartbeat each second, and
//! job progress as the engine produces it). The socket closes with "going
//! away" (1001) when the server shuts down.

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use shared_types::ws::ServerMessage;
use tokio::sync::broadcast::error::RecvError;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/ws", get(upgrade))
}

async fn upgrade(ws: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    ws.on_upgrade(move |socket| session(socket, state))
}

async fn session(socket: WebSocket, state: AppState) {
    let (mut tx, mut rx) = socket.split();
    // Subscribe before the greeting so nothing published in between is lost.
    let mut events = state.events.subscribe();

    let mut greeting = vec![ServerMessage::Hello {
        version: crate::VERSION.to_owned(),
        server_time: chrono::Utc::now(),
        uptime_seconds: state.uptime_seconds(),
    }];
    if let Some(health) = state.latest_health.borrow().clone() {
        greeting.push(ServerMessage::Heartbeat {
            server_time: chrono::Utc::now(),
            uptime_seconds: state.uptime_seconds(),
            health,
        });
    }
    for msg in greeting {
        if send(&mut tx, &msg).await.is_err() {
            return;
        }
    }

    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(msg) => {
                    if send(&mut tx, &msg).await.is_err() {
                        break;
                    }
                }
                Err(RecvError::Lagged(skipped)) => {
                    tracing::debug!(skipped, "websocket client fell behind; skipped events");
                }
                Err(RecvError::Closed) => break,
            },
            incoming = rx.next() => match incoming {
                // Pings are answered by the protocol layer; clients send nothing else yet.
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            _ = state.shutdown.cancelled() => {
                let frame = CloseFrame { code: 1001, reason: Utf8Bytes::from_static("server shutting down") };
                let _ = tx.send(Message::Close(Some(frame))).await;
                break;
            }
        }
    }
}

async fn send<S>(tx: &mut S, msg: &ServerMessage) -> Result<(), ()>
where
    S: SinkExt<Message> + Unpin,
{
    let text = serde_json::to_string(msg).map_err(|e| tracing::error!(error = %e, "unable to encode event"))?;
    tx.send(Message::Text(text.into())).await.map_err(|_| ())
}
