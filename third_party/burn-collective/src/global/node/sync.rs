use std::{
    collections::HashMap,
    marker::PhantomData,
    sync::{Arc, Mutex},
};

use burn_communication::{CommunicationChannel, Message, Protocol, ProtocolClient};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, RwLock};

use crate::{NodeId, global::shared::GlobalCollectiveError, node::base::NodeState};

/// Handles the status of sync requests from other nodes
pub(crate) struct SyncService<P: Protocol> {
    /// Current node's state, shared with the thread that does aggregations
    node_state: Arc<RwLock<Option<NodeState>>>,
    /// facegan patch: how many syncs each node (this one included) has requested so far. The
    /// original kept a list of the nodes synced "since the last successful sync" but cleared
    /// a copy of it, so from the second sync on the barrier never completed.
    syncing_peers: Mutex<HashMap<NodeId, u64>>,
    /// Notification on each incoming sync request
    sync_notif: Notify,

    _p: PhantomData<P>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SyncRequest(pub(crate) NodeId);

impl<P: Protocol> SyncService<P> {
    pub fn new(node_state: Arc<RwLock<Option<NodeState>>>) -> Self {
        Self {
            node_state,
            syncing_peers: Mutex::new(HashMap::new()),
            sync_notif: Notify::new(),
            _p: PhantomData,
        }
    }

    /// Counts one sync request of `peer`; returns that peer's count.
    fn add_syncing_peer(&self, peer: NodeId) -> u64 {
        let mut syncing_peers = self.syncing_peers.lock().unwrap();
        let count = syncing_peers.entry(peer).or_insert(0);
        *count += 1;
        *count
    }

    /// Sync with all peers.
    ///
    /// facegan patch: a peer that cannot be reached or told is `PeerLost` (Burn panicked).
    pub async fn sync(&self) -> Result<(), GlobalCollectiveError> {
        // we can't sync while we register
        let node_state = self.node_state.read().await;
        let Some(node_state) = node_state.as_ref() else {
            return Err(GlobalCollectiveError::AllReduceBeforeRegister);
        };

        // this peer is syncing: its `generation`-th sync
        let generation = self.add_syncing_peer(node_state.node_id);
        for (id, addr) in &node_state.nodes {
            if *id == node_state.node_id {
                continue;
            }

            let Some(mut connection) = P::Client::connect(addr.clone(), "sync").await else {
                log::warn!("cannot connect to node {id:?} at {addr} to sync");
                return Err(GlobalCollectiveError::PeerLost(*id));
            };
            let msg = SyncRequest(node_state.node_id);
            let sync_bytes = rmp_serde::to_vec(&msg)
                .map_err(|e| GlobalCollectiveError::Server(format!("{e}")))?;
            if let Err(err) = connection.send(Message::new(sync_bytes.into())).await {
                log::warn!("node {id:?} at {addr} closed the sync connection: {err:?}");
                return Err(GlobalCollectiveError::PeerLost(*id));
            }
        }
        loop {
            // facegan patch: register for the wake-up before looking (`notify_waiters` only
            // wakes registered waiters), and wait until every node has reached this sync's
            // generation (a fast node's next sync may already have arrived).
            let notified = self.sync_notif.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let syncing_peers = self.syncing_peers.lock().unwrap();
                let all_there = node_state
                    .nodes
                    .keys()
                    .all(|id| syncing_peers.get(id).copied().unwrap_or(0) >= generation);
                if all_there {
                    return Ok(());
                }
            }
            // facegan patch: bounded by the idle limit (a peer that never syncs).
            if burn_communication::access::within_idle_limit(notified)
                .await
                .is_none()
            {
                let missing = {
                    let syncing_peers = self.syncing_peers.lock().unwrap();
                    node_state
                        .nodes
                        .keys()
                        .copied()
                        .find(|id| syncing_peers.get(id).copied().unwrap_or(0) < generation)
                };
                log::warn!("a node did not sync within the idle limit");
                return Err(GlobalCollectiveError::PeerLost(
                    missing.unwrap_or(node_state.node_id),
                ));
            }
        }
    }

    /// facegan patch: a sync request that does not arrive within the idle limit, fails or does
    /// not decode is logged and dropped (Burn panicked); one from a node outside the run too.
    pub async fn handle_sync_connection<C: CommunicationChannel>(&self, mut channel: C) {
        let msg = match burn_communication::access::within_idle_limit(channel.recv()).await {
            None => {
                log::warn!("[Sync] no sync request within the idle limit; connection closed");
                return;
            }
            Some(Err(err)) => {
                log::warn!("[Sync] a sync connection failed: {err:?}");
                return;
            }
            Some(Ok(None)) => return,
            Some(Ok(Some(msg))) => msg,
        };

        let peer = match decode_sync_request(&msg.data) {
            Ok(peer) => peer,
            Err(why) => {
                log::warn!("[Sync] refused a sync request: {why}");
                return;
            }
        };
        let known = match self.node_state.read().await.as_ref() {
            Some(state) => state.nodes.contains_key(&peer),
            None => true, // not registered yet: a fast peer's first sync may come first
        };
        if !known {
            log::warn!("[Sync] refused a sync request from {peer:?}, not a node of this run");
            return;
        }

        self.add_syncing_peer(peer);

        self.sync_notif.notify_waiters();
    }
}

/// facegan patch: decodes a sync request (the sending node's id), an error for anything else.
pub(crate) fn decode_sync_request(bytes: &[u8]) -> Result<NodeId, String> {
    rmp_serde::from_slice::<SyncRequest>(bytes)
        .map(|r| r.0)
        .map_err(|e| format!("not a sync request ({} bytes): {e}", bytes.len()))
}
