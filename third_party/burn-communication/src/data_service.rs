//! This module enables direct data transfer between servers without blocking the client or any server.
//!
//! It eliminates the need for intermediate data transfer through the client, avoiding the process of downloading data from one server and reuploading it to another.
//!
//! The module provides an optimized mechanism for servers to communicate directly, streamlining data movement between them without involving the client.

use crate::Message;
use crate::base::Protocol;
use crate::base::{Address, CommunicationChannel, ProtocolClient, ProtocolServer};
use burn_tensor::{TensorData, backend::Backend};
use serde::{Deserialize, Serialize};
use std::{collections::HashMap, marker::PhantomData, sync::Arc};
use tokio::sync::Mutex;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TensorTransferId(u64);

impl From<u64> for TensorTransferId {
    fn from(value: u64) -> Self {
        Self(value)
    }
}

impl TensorTransferId {
    pub fn next(&mut self) {
        self.0 += 1;
    }
}

#[derive(Debug, Serialize, Deserialize)]
enum DataServiceMessage {
    TensorRequest(TensorTransferId),
    Tensor(TensorData),
}

type ClientChannelRef<C> = Arc<Mutex<<C as ProtocolClient>::Channel>>;

pub struct TensorDataService<B: Backend, P: Protocol<Client: ProtocolClient>> {
    /// Maps tensor transfer IDs to their exposed state.
    pub exposed_tensors: Mutex<HashMap<TensorTransferId, TensorExposeState>>,
    /// Maps node addresses to their channels.
    pub channels: Mutex<HashMap<Address, ClientChannelRef<P::Client>>>,
    /// Notify when a new tensor is exposed.
    pub new_tensor_notify: Arc<Notify>,

    cancel_token: CancellationToken,

    _phantom_data: PhantomData<B>,
}

pub struct TensorExposeState {
    /// The bytes of the tensor data message. Message::Data(...) serialized with rmp_serde
    pub bytes: bytes::Bytes,
    /// How many times the tensor will be downloaded
    pub max_downloads: u32,
    /// How man times the tensor has been downloaded
    pub cur_download_count: u32,
}

/// Provides a routing function for a tensor data service for a communications server
pub trait TensorDataServer<B: Backend, P: Protocol> {
    /// Routes the tensor data service to the "/data" route
    fn route_tensor_data_service(self, state: Arc<TensorDataService<B, P>>) -> Self;
}

impl<B: Backend, S: ProtocolServer + Sized, P: Protocol<Server = S> + 'static>
    TensorDataServer<B, P> for S
{
    fn route_tensor_data_service(self, state: Arc<TensorDataService<B, P>>) -> Self {
        self.route("/data", async move |stream: S::Channel| {
            state.handle_data_channel(stream).await;
        })
    }
}

impl<B: Backend, P: Protocol> TensorDataService<B, P> {
    pub fn new(cancel_token: CancellationToken) -> Self {
        Self {
            exposed_tensors: Mutex::new(HashMap::new()),
            channels: Mutex::new(HashMap::new()),
            new_tensor_notify: Arc::new(Notify::new()),
            cancel_token,
            _phantom_data: PhantomData::<B>,
        }
    }

    /// Exposes a tensor to the data server, allowing it to be downloaded by other nodes.
    pub async fn expose(
        &self,
        tensor: B::FloatTensorPrimitive,
        max_downloads: u32,
        transfer_id: TensorTransferId,
    ) {
        let data = B::float_into_data(tensor).await.unwrap();
        self.expose_data(data, max_downloads, transfer_id).await
    }

    /// Exposes a tensor data to the data server, allowing it to be downloaded by other nodes.
    pub async fn expose_data(
        &self,
        tensor_data: TensorData,
        max_downloads: u32,
        transfer_id: TensorTransferId,
    ) {
        let bytes: bytes::Bytes = rmp_serde::to_vec(&DataServiceMessage::Tensor(tensor_data))
            .unwrap()
            .into();
        let mut exposed_tensors = self.exposed_tensors.lock().await;
        exposed_tensors.insert(
            transfer_id,
            TensorExposeState {
                bytes,
                max_downloads,
                cur_download_count: 0,
            },
        );
        core::mem::drop(exposed_tensors);
        self.new_tensor_notify.notify_waiters();
    }

    pub async fn close(&self) {
        // Send a closing message to every open WebSocket stream

        let mut streams = self.channels.lock().await;
        for (address, stream) in streams.drain() {
            let mut stream = stream.lock().await;

            // facegan patch: a peer that is already gone is no reason to panic.
            if let Err(err) = stream.close().await {
                log::info!("the data channel to {address} was already closed: {err:?}");
            }
        }
    }

    /// Downloads a tensor that is exposed on another server. Requires a Tokio 1.x runtime
    ///
    /// Returns None if the peer closes the connection
    ///
    /// facegan patch: also None (with a log line, never a panic) when the peer cannot be
    /// reached, does not answer within the idle limit (see `crate::access`), or answers with
    /// anything but a tensor; the channel is then forgotten.
    pub async fn download_tensor(
        &self,
        remote: Address,
        transfer_id: TensorTransferId,
    ) -> Option<TensorData> {
        log::info!("Downloading tensor from {remote:?}");

        let stream = self.get_data_stream(remote.clone()).await?;
        let answer = {
            let mut stream = stream.lock().await;
            Self::request_tensor(&mut *stream, transfer_id).await
        };
        match answer {
            Ok(data) => Some(data),
            Err(why) => {
                log::warn!("no tensor {transfer_id:?} from {remote}: {why}");
                self.channels.lock().await.remove(&remote);
                None
            }
        }
    }

    /// facegan patch: one download request and its answer, every failure as a message.
    async fn request_tensor(
        stream: &mut <P::Client as ProtocolClient>::Channel,
        transfer_id: TensorTransferId,
    ) -> Result<TensorData, String> {
        let bytes: bytes::Bytes =
            rmp_serde::to_vec(&DataServiceMessage::TensorRequest(transfer_id))
                .map_err(|e| format!("cannot encode the request: {e}"))?
                .into();
        stream
            .send(Message::new(bytes))
            .await
            .map_err(|e| format!("the request could not be sent: {e:?}"))?;
        let msg = crate::access::within_idle_limit(stream.recv())
            .await
            .ok_or("no answer within the idle limit")?
            .map_err(|e| format!("the connection failed: {e:?}"))?
            .ok_or("the peer closed the connection")?;
        match decode_data_message(&msg.data)? {
            DataServiceMessage::Tensor(data) => Ok(data),
            DataServiceMessage::TensorRequest(_) => {
                Err("the peer answered with a request, not a tensor".into())
            }
        }
    }

    /// Get the WebSocket stream for the given address, or create a new one if it doesn't exist.
    /// facegan patch: None (with a log line) when the peer cannot be reached (Burn panicked).
    async fn get_data_stream(
        &self,
        address: Address,
    ) -> Option<Arc<Mutex<<P::Client as ProtocolClient>::Channel>>> {
        let mut streams = self.channels.lock().await;
        match streams.get(&address) {
            Some(stream) => Some(stream.clone()),
            None => {
                // Open a new WebSocket connection to the address
                let stream = P::Client::connect(address.clone(), "data").await;

                let Some(stream) = stream else {
                    log::warn!("cannot connect to the data server at {address}");
                    return None;
                };

                let stream = Arc::new(Mutex::new(stream));
                streams.insert(address.clone(), stream.clone());

                Some(stream)
            }
        }
    }

    /// Get the requested exposed tensor data, and update download counter
    async fn get_exposed_tensor_bytes(
        &self,
        transfer_id: TensorTransferId,
    ) -> Option<bytes::Bytes> {
        loop {
            // facegan patch: register interest before looking, so an `expose` between the look
            // and the wait is not missed (`notify_waiters` wakes only registered waiters; the
            // original code created the `notified()` future after releasing the lock, and a
            // download requested just before the tensor was exposed could wait forever).
            let notified = self.new_tensor_notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut exposed_tensors = self.exposed_tensors.lock().await;
                // take the tensor out of the hashmap while we download
                if let Some(mut exposed_state) = exposed_tensors.remove(&transfer_id) {
                    exposed_state.cur_download_count += 1;
                    let bytes = if exposed_state.cur_download_count == exposed_state.max_downloads {
                        exposed_state.bytes
                    } else {
                        let bytes = exposed_state.bytes.clone();
                        exposed_tensors.insert(transfer_id, exposed_state);
                        bytes
                    };
                    return Some(bytes);
                }
            }
            // No matching tensor, wait for a new one to come in.
            notified.await;
        }
    }

    /// Handle incoming connections for downloading tensors.
    ///
    /// facegan patch: a message that is not a tensor request, a request for a tensor that is
    /// not exposed within the idle limit, a connection silent past it, or a failed send ends
    /// this connection with a log line (Burn panicked, or waited forever).
    pub(crate) async fn handle_data_channel(
        &self,
        mut channel: <P::Server as ProtocolServer>::Channel,
    ) {
        log::info!("[Data Handler] New connection for download.");

        while !self.cancel_token.is_cancelled() {
            let received = crate::access::within_idle_limit(channel.recv()).await;
            let message = match received {
                None => {
                    log::warn!("[Data Service] a connection idle past the idle limit was closed");
                    let _ = channel.close().await;
                    return;
                }
                Some(Err(err)) => {
                    log::warn!("[Data Service] a connection failed: {err:?}");
                    return;
                }
                Some(Ok(None)) => {
                    log::info!("Closed connection");
                    return;
                }
                Some(Ok(Some(message))) => message,
            };
            let transfer_id = match decode_data_message(&message.data) {
                Ok(DataServiceMessage::TensorRequest(id)) => id,
                Ok(DataServiceMessage::Tensor(_)) => {
                    log::warn!("[Data Service] refused a tensor sent as a request; connection closed");
                    let _ = channel.close().await;
                    return;
                }
                Err(why) => {
                    log::warn!("[Data Service] refused a request: {why}; connection closed");
                    let _ = channel.close().await;
                    return;
                }
            };
            let Some(Some(bytes)) =
                crate::access::within_idle_limit(self.get_exposed_tensor_bytes(transfer_id)).await
            else {
                log::warn!(
                    "[Data Service] tensor {transfer_id:?} was not exposed within the idle limit; connection closed"
                );
                let _ = channel.close().await;
                return;
            };
            if let Err(err) = channel.send(Message::new(bytes)).await {
                log::warn!("[Data Service] could not send tensor {transfer_id:?}: {err:?}");
                return;
            }
        }
        log::info!("[Data Service] Closing connection for download.");
    }
}

/// facegan patch: the largest message a node decodes (a tensor of 4 GiB; the websocket layer
/// bounds frames as well).
const MAX_DATA_MESSAGE: usize = 4 << 30;

/// facegan patch: decodes one message of a node's data service, an error (never a panic)
/// for anything that is not one. Public so that a fuzzer can drive it.
pub fn decode_data_message_for_fuzzing(bytes: &[u8]) -> Result<(), String> {
    decode_data_message(bytes).map(|_| ())
}

fn decode_data_message(bytes: &[u8]) -> Result<DataServiceMessage, String> {
    if bytes.len() > MAX_DATA_MESSAGE {
        return Err(format!("a message of {} bytes is too large", bytes.len()));
    }
    let message: DataServiceMessage = rmp_serde::from_slice(bytes)
        .map_err(|e| format!("not a data service message ({} bytes): {e}", bytes.len()))?;
    // (A quantized tensor's bytes follow its scheme; facegan sends none.)
    if let DataServiceMessage::Tensor(data) = &message
        && !matches!(data.dtype, burn_tensor::DType::QFloat(_))
    {
        let elements = data.shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        let expected = elements.and_then(|n| n.checked_mul(data.dtype.size()));
        if expected != Some(data.bytes.len()) {
            return Err(format!(
                "a tensor of shape {:?} ({:?}) with {} bytes of data",
                data.shape,
                data.dtype,
                data.bytes.len()
            ));
        }
    }
    Ok(message)
}

/// facegan patch: well-formed data service messages (a request, a 2x3 f32 tensor), the seeds
/// a fuzzer mutates.
pub fn data_messages_for_fuzzing() -> Vec<Vec<u8>> {
    let tensor = TensorData::new(vec![0.5f32, -1.0, 2.0, 0.0, 3.25, -0.125], [2, 3]);
    [
        DataServiceMessage::TensorRequest(TensorTransferId(7)),
        DataServiceMessage::Tensor(tensor),
    ]
    .iter()
    .filter_map(|m| rmp_serde::to_vec(m).ok())
    .collect()
}
