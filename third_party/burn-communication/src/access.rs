//! facegan patch: who may connect, and how long anything waits on a peer.
//!
//! Burn's servers answered every client and its channels waited forever. Two process-wide
//! settings, set once before any server or client starts:
//! - a shared token: a client sends it (`Authorization: Bearer TOKEN`) when it opens a
//!   websocket, and a server refuses the upgrade (HTTP 401, with a log line) when the token is
//!   missing or wrong. Authentication, not confidentiality: the traffic stays plain websocket.
//! - an idle limit: the longest a server waits for a connection's first message, a node waits
//!   for a peer's tensor or answer, or a client waits to connect. `None` waits forever.

use std::future::Future;
use std::sync::RwLock;
use std::time::Duration;

static TOKEN: RwLock<Option<String>> = RwLock::new(None);
static IDLE_LIMIT: RwLock<Option<Duration>> = RwLock::new(None);

/// The header that carries the token.
pub const TOKEN_HEADER: &str = "authorization";

/// Sets (or, with `None`, clears) the token every connection must carry.
pub fn set_token(token: Option<String>) {
    *TOKEN.write().unwrap_or_else(|e| e.into_inner()) = token;
}

/// The token this process sends and expects, if any.
pub fn token() -> Option<String> {
    TOKEN.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Sets (or, with `None`, clears) the idle limit.
pub fn set_idle_limit(limit: Option<Duration>) {
    *IDLE_LIMIT.write().unwrap_or_else(|e| e.into_inner()) = limit;
}

/// The idle limit, if any.
pub fn idle_limit() -> Option<Duration> {
    *IDLE_LIMIT.read().unwrap_or_else(|e| e.into_inner())
}

/// The value of the token header a client sends (`Bearer TOKEN`), when a token is set.
pub fn token_header_value() -> Option<String> {
    token().map(|t| format!("Bearer {t}"))
}

/// Whether a request's token header value lets it in: always when no token is set; otherwise
/// only `Bearer TOKEN` with the exact token (compared in constant time).
pub fn admits(header_value: Option<&[u8]>) -> bool {
    let Some(expected) = token_header_value() else {
        return true;
    };
    let Some(given) = header_value else {
        return false;
    };
    let expected = expected.as_bytes();
    if given.len() != expected.len() {
        return false;
    }
    given
        .iter()
        .zip(expected)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

/// Runs `fut` within the idle limit: `None` when it ran out first (always `Some` without a
/// limit).
pub async fn within_idle_limit<F: Future>(fut: F) -> Option<F::Output> {
    match idle_limit() {
        Some(limit) => tokio::time::timeout(limit, fut).await.ok(),
        None => Some(fut.await),
    }
}
