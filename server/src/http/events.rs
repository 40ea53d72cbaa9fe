//! `GET /v1/events`: the WebSocket that pushes new entries, welcomes and
//! receipts to a signed-in device (see [`crate::push`]).
//!
//! The token goes in the upgrade request's `Authorization` header, never
//! the URL, so the connection's audit entry names who opened it; a browser,
//! whose WebSocket cannot send that header, first asks for a single-use
//! ticket (`POST /v1/events/ticket`, [`crate::auth::tickets`]) and offers
//! it as the subprotocol `curbside.ticket.TICKET` beside `curbside.events`,
//! which the server answers with. The
//! session is checked again every few seconds. When it has been ended
//! (logout, idle timeout, removal, deactivation) the server closes the
//! socket with code 4401 and the client stops; when only its lifetime ran
//! out, with 4402, and the client signs in again and reconnects. A device
//! that falls behind is closed with 4008 and fetches.

use axum::Extension;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use curbside_proto::threads::{EVENTS_PATH, EVENTS_PROTOCOL, EVENTS_TICKET_PATH, EventsTicket};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::access::Access;
use super::error::Error;
use super::state::AppState;
use crate::auth::sessions::{Caller, Liveness, REVALIDATE_AFTER};
use crate::clock::now_ms;
use crate::connection::Hold;
use crate::push::Subscriber;

/// Close code: the session was ended (logout, idle, removal,
/// deactivation); do not sign in again unasked.
pub const CLOSE_SESSION_ENDED: u16 = 4401;
/// Close code: the session's lifetime ran out; sign in again.
pub const CLOSE_SESSION_EXPIRED: u16 = 4402;
/// Close code (RFC 6455's "try again later"): the check could not be made.
const CLOSE_UNAVAILABLE: u16 = 1013;
/// Close code: too far behind; fetch, then reconnect.
pub const CLOSE_BEHIND: u16 = 4008;
/// Close code: a new messaging policy version waits for the user's
/// acceptance; accept it, then reconnect.
pub const CLOSE_POLICY_NOT_ACCEPTED: u16 = 4403;

/// How long a frame may wait for the device to read it.
const SEND_TIMEOUT: std::time::Duration = crate::connection::WRITE_STALL_TIMEOUT;
/// Each socket's read buffer.
const READ_BUFFER: usize = 4 * 1024;
/// The largest frame or message a device may send (it sends only pings and
/// a close).
const MAX_INCOMING: usize = 4 * 1024;

/// `GET /v1/events` and `POST /v1/events/ticket`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(subscribe))
        // Only the socket may be opened with a ticket.
        .route_layer(axum::Extension(super::extract::TicketGate))
        .routes(routes!(ticket))
        // Live events carry threads' messages: the policy comes first.
        .route_layer(axum::Extension(super::extract::PolicyGate))
}

#[utoipa::path(
    post,
    path = EVENTS_TICKET_PATH,
    operation_id = "events.ticket",
    tag = "device",
    security(("session" = [])),
    responses((status = 200, description = "A single-use ticket for the live-events socket, valid 30 s", body = EventsTicket)),
)]
async fn ticket(
    State(state): State<AppState>,
    access: Access,
    caller: Caller,
) -> Result<axum::Json<EventsTicket>, Error> {
    access.resource(&caller.device_id);
    let (ticket, expires_at_ms) =
        crate::auth::tickets::issue(&state.database, &caller, now_ms()).await?;
    Ok(axum::Json(EventsTicket {
        ticket,
        expires_at_ms,
    }))
}

#[utoipa::path(
    get,
    path = EVENTS_PATH,
    operation_id = "events.subscribe",
    tag = "device",
    security(("session" = [])),
    responses((status = 101, description = "A WebSocket whose text frames are `Event`s")),
)]
async fn subscribe(
    State(state): State<AppState>,
    access: Access,
    caller: Caller,
    hold: Option<Extension<Hold>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    // The socket keeps its connection's slot and its address's share.
    let held = hold.and_then(|Extension(hold)| hold.take());
    access.resource(&caller.device_id);
    let subscriber = Subscriber {
        user_id: caller.user_id.clone(),
        device_id: caller.device_id.clone(),
        client_addr: access.client_addr(),
        request_id: access.request_id(),
    };
    upgrade
        // A browser offers its ticket beside this; the answer names only this.
        .protocols([EVENTS_PROTOCOL])
        // Thousands of mostly idle sockets: small buffers (the library's
        // default is 128 KiB each way, per socket), every frame written at
        // once, and a device has nothing large to say.
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(MAX_INCOMING)
        .max_frame_size(MAX_INCOMING)
        .on_upgrade(move |socket| async move {
            serve(socket, state, caller, subscriber).await;
            drop(held);
        })
}

async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let frame = Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }));
    let _ = tokio::time::timeout(SEND_TIMEOUT, socket.send(frame)).await;
}

async fn serve(mut socket: WebSocket, state: AppState, caller: Caller, subscriber: Subscriber) {
    let (id, mut frames) = state.events.connect(subscriber);
    let mut recheck = tokio::time::interval(REVALIDATE_AFTER);
    recheck.tick().await;
    loop {
        tokio::select! {
            frame = frames.recv() => match frame {
                Some(text) => {
                    // A device that stops reading is dropped, not waited for.
                    let sent = tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Text(text)));
                    if !matches!(sent.await, Ok(Ok(()))) {
                        break;
                    }
                }
                None => {
                    close(&mut socket, CLOSE_BEHIND, "too far behind: fetch, then reconnect").await;
                    break;
                }
            },
            incoming = socket.recv() => match incoming {
                // Pings are answered by the library; anything else a
                // device sends is ignored.
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            _ = recheck.tick() => {
                // Not activity: an open socket alone does not hold off the
                // idle timeout (automatic logoff).
                let live = state
                    .auth
                    .sessions
                    .still_live(&state.database, &caller.session_id, now_ms())
                    .await;
                match live {
                    Ok(Liveness::Live) => {}
                    Ok(Liveness::Expired) => {
                        close(&mut socket, CLOSE_SESSION_EXPIRED, "the session expired; sign in again")
                            .await;
                        break;
                    }
                    Ok(Liveness::Ended) => {
                        close(&mut socket, CLOSE_SESSION_ENDED, "the session has ended")
                            .await;
                        break;
                    }
                    Ok(Liveness::PolicyPending) => {
                        close(
                            &mut socket,
                            CLOSE_POLICY_NOT_ACCEPTED,
                            "accept the new messaging policy, then reconnect",
                        )
                        .await;
                        break;
                    }
                    // A check that cannot be made ends the socket too: the
                    // device reconnects, and is checked again then.
                    Err(_) => {
                        close(&mut socket, CLOSE_UNAVAILABLE, "try again shortly").await;
                        break;
                    }
                }
            }
        }
    }
    state.events.disconnect(&caller.device_id, id);
}
