//! `GET /api/v1/ws`: the live channel to the cockpit.
//!
//! On connect the client gets `hello` and, at once, the latest heartbeat;
//! after that every event on the state's bus (a heartbeat each second, and
//! job progress as the engine produces it). The socket closes with "going
//! away" (1001) when the server shuts down, and with 4401 when the session
//! is ended (sign-out, user disabled, password reset) or expires.

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use shared_types::error::ErrorBody;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use shared_types::ws::ServerMessage;
use tokio::sync::broadcast::error::RecvError;

use crate::auth::AuthUser;
use crate::state::AppState;

/// Close code sent when the session behind the socket ends.
pub const CLOSE_SESSION_ENDED: u16 = 4401;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(upgrade))
}

/// Live events: `hello`, then heartbeats and job progress (WebSocket upgrade).
#[utoipa::path(get, path = "/ws", tag = "system", responses(
    (status = 101, description = "Switching to the WebSocket protocol"), (status = 401, body = ErrorBody)))]
async fn upgrade(ws: WebSocketUpgrade, State(state): State<AppState>, user: AuthUser) -> Response {
    ws.on_upgrade(move |socket| session(socket, state, user))
}

async fn session(socket: WebSocket, state: AppState, user: AuthUser) {
    let _counted = crate::telemetry::metrics::METRICS.ws_client();
    let (mut tx, mut rx) = socket.split();
    // Subscribe before the greeting so nothing published in between is lost.
    let mut events = state.events.subscribe();
    let mut revocations = state.revocations.subscribe();
    let expires_in = (user.session_expires_at - chrono::Utc::now()).to_std().unwrap_or_default();
    let expiry = tokio::time::sleep(expires_in);
    tokio::pin!(expiry);

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
            revoked = revocations.recv() => {
                let ended = match revoked {
                    Ok(ids) => ids.contains(&user.session_id),
                    Err(RecvError::Lagged(_)) => true, // cannot tell: make the client re-check
                    Err(RecvError::Closed) => false,
                };
                if ended {
                    let frame = CloseFrame { code: CLOSE_SESSION_ENDED, reason: Utf8Bytes::from_static("session ended") };
                    let _ = tx.send(Message::Close(Some(frame))).await;
                    break;
                }
            }
            _ = &mut expiry => {
                let frame = CloseFrame { code: CLOSE_SESSION_ENDED, reason: Utf8Bytes::from_static("session expired") };
                let _ = tx.send(Message::Close(Some(frame))).await;
                break;
            }
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
