//! facegan patch: entry points for a fuzzer, so that the bytes a client can send the
//! orchestrator and a node's sync service are decoded and handled exactly as a connection
//! would, without a network.

use std::collections::HashMap;

use crate::global::orchestrator::base::decode_orchestrator_message;
use crate::global::orchestrator::state::GlobalCollectiveState;
use crate::global::shared::{CollectiveMessage, RemoteRequest, RequestId, SessionId};
use crate::node::sync::{SyncRequest, decode_sync_request};
use crate::{NodeId, PeerId};

/// Drives a fresh orchestrator state with `input`, a sequence of frames `[connection: u8]
/// [length: u16 LE][message]`, each message decoded as the orchestrator's `/request` route
/// does and handled under the same rules (Init first, then requests); every fourth
/// connection also opens its `/response` route and reads what is queued. It must return for
/// any input, never panic.
pub fn orchestrator_messages(input: &[u8]) {
    let mut state = GlobalCollectiveState::new();
    let mut sessions: HashMap<u8, SessionId> = HashMap::new();
    let mut rest = input;
    while rest.len() >= 3 {
        let connection = rest[0];
        let len = u16::from_le_bytes([rest[1], rest[2]]) as usize;
        let body = &rest[3..(3 + len).min(rest.len())];
        rest = &rest[(3 + len).min(rest.len())..];
        let Ok(message) = decode_orchestrator_message(body) else {
            continue;
        };
        match message {
            CollectiveMessage::Init(id) => {
                state.init_session(id);
                sessions.insert(connection, id);
                if connection % 4 == 0 {
                    if let Some(mut responses) = state.get_session_responder(id) {
                        while responses.try_recv().is_ok() {}
                    }
                }
            }
            CollectiveMessage::Request(request_id, request) => {
                let Some(&session) = sessions.get(&connection) else {
                    continue; // FirstMsgNotInit: the connection is closed
                };
                futures::executor::block_on(state.process_request(session, request_id, request));
            }
        }
    }
}

/// Decodes `input` as a sync request, as a node's `/sync` route does.
pub fn sync_message(input: &[u8]) {
    let _ = decode_sync_request(input);
}

/// Well-formed inputs for [`orchestrator_messages`] (two nodes that register and finish, one
/// that sends a request before its Init) and for [`sync_message`].
pub fn seeds() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let frame = |connection: u8, message: &CollectiveMessage| {
        let bytes = rmp_serde::to_vec(message).unwrap_or_default();
        let mut out = vec![connection];
        out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
        out.extend_from_slice(&bytes);
        out
    };
    let register = |port: u16, peer: u32| RemoteRequest::Register {
        node_addr: format!("ws://127.0.0.1:{port}").parse().unwrap_or_else(|e: String| {
            unreachable!("an address always parses: {e}")
        }),
        num_nodes: 2,
        peers: vec![PeerId(peer)],
    };
    let (a, b) = (SessionId::new(), SessionId::new());
    let two_nodes = [
        frame(0, &CollectiveMessage::Init(a)),
        frame(1, &CollectiveMessage::Init(b)),
        frame(0, &CollectiveMessage::Request(RequestId::new(), register(9001, 0))),
        frame(1, &CollectiveMessage::Request(RequestId::new(), register(9002, 1))),
        frame(0, &CollectiveMessage::Request(RequestId::new(), RemoteRequest::Finish)),
        frame(1, &CollectiveMessage::Request(RequestId::new(), RemoteRequest::Finish)),
    ]
    .concat();
    let no_init = [
        frame(2, &CollectiveMessage::Request(RequestId::new(), RemoteRequest::Finish)),
        frame(3, &CollectiveMessage::Init(SessionId::new())),
        frame(3, &CollectiveMessage::Request(RequestId::new(), RemoteRequest::Finish)),
        frame(3, &CollectiveMessage::Request(RequestId::new(), RemoteRequest::Finish)),
    ]
    .concat();
    let sync = rmp_serde::to_vec(&SyncRequest(NodeId::from(1u32))).unwrap_or_default();
    (vec![two_nodes, no_init], vec![sync])
}
