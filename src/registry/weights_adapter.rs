//! The async registry [`Client`] as the blocking
//! [`WeightRegistry`] the weights pipeline expects, bound to one repository.
//!
//! Calls run on a tokio runtime through its [`Handle`]; they must come from
//! threads that are not runtime threads (the weights pipeline's own
//! threads). Blob uploads go through [`Client::push_blob`] (HEAD, monolithic
//! or chunked upload, retries) driven on a helper thread, while the calling
//! thread reads the weight bytes and hands them over in small frames, so
//! memory stays flat whatever the weight's size.

use super::auth::Scope;
use super::client::status_error;
use super::progress::{NoProgress, Progress};
use super::upload::UploadOptions;
use super::{Client, Reference};
use crate::oci::{Blob, Descriptor, Digest};
use crate::weights::registry::{BlobOpener, RegistryError, WeightRegistry};
use futures::StreamExt;
use std::io::{self, Read};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use tokio::runtime::Handle;

/// Frames buffered between the reading thread and the upload.
const FRAMES_IN_FLIGHT: usize = 4;
/// Bytes per frame read from a weight layer.
const FRAME_SIZE: usize = 1 << 20;

/// A registry client bound to the model repository, usable from the
/// weights pipeline's threads.
pub struct ClientWeightRegistry {
    client: Client,
    repository: Reference,
    runtime: Handle,
    upload: UploadOptions,
    progress: Arc<dyn Progress>,
}

impl ClientWeightRegistry {
    /// Binds `client` to the repository of `repository` (its tag or digest
    /// is ignored); async calls run on `runtime`.
    pub fn new(client: Client, repository: &Reference, runtime: Handle) -> Self {
        ClientWeightRegistry {
            client,
            repository: Reference {
                tag: None,
                digest: None,
                ..repository.clone()
            },
            runtime,
            upload: UploadOptions::default(),
            progress: Arc::new(NoProgress),
        }
    }

    /// Uses these upload tunables (chunk size, multipart threshold).
    pub fn with_upload_options(mut self, upload: UploadOptions) -> Self {
        self.upload = upload;
        self
    }

    /// Reports upload progress to `progress`.
    pub fn with_progress(mut self, progress: Arc<dyn Progress>) -> Self {
        self.progress = progress;
        self
    }

    /// The repository as a reference to a tag or a digest (`sha256:…`).
    fn at(&self, reference: &str) -> Result<Reference, RegistryError> {
        if reference.contains(':') {
            let digest: Digest = reference.parse().map_err(|e| {
                RegistryError(format!("{reference:?} is neither a tag nor a digest: {e}"))
            })?;
            Ok(self.repository.with_digest(digest))
        } else {
            Ok(self.repository.with_tag(reference))
        }
    }

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }
}

fn failed(error: super::RegistryError) -> RegistryError {
    RegistryError(error.to_string())
}

impl WeightRegistry for ClientWeightRegistry {
    fn head_blob(&self, digest: &Digest) -> Result<Option<u64>, RegistryError> {
        self.block_on(head_blob_size(&self.client, &self.repository, digest))
            .map_err(failed)
    }

    fn push_blob(&self, desc: &Descriptor, open: &BlobOpener<'_>) -> Result<(), RegistryError> {
        let (events, inbox) = mpsc::channel();
        let blob: Arc<dyn Blob> = Arc::new(RelayedBlob {
            descriptor: desc.clone(),
            events: events.clone(),
        });
        let client = self.client.clone();
        let target = self.repository.clone();
        let upload = self.upload.clone();
        let progress = Arc::clone(&self.progress);
        let runtime = self.runtime.clone();
        std::thread::scope(|scope| {
            scope.spawn(move || {
                let result = runtime.block_on(client.push_blob(&target, blob, &upload, &progress));
                let _ = events.send(UploadEvent::Done(result.map(|_| ())));
            });
            serve_upload(&inbox, open)
        })
    }

    fn put_manifest(
        &self,
        reference: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Digest, RegistryError> {
        let target = self.at(reference)?;
        let pushed = self
            .block_on(
                self.client
                    .push_manifest(&target, media_type, bytes, &self.progress),
            )
            .map_err(failed)?;
        Ok(pushed.digest)
    }

    fn head_manifest(&self, reference: &str) -> Result<Option<Descriptor>, RegistryError> {
        let target = self.at(reference)?;
        self.block_on(self.client.head_manifest_direct(&target))
            .map_err(failed)
    }

    fn get_manifest(&self, reference: &str) -> Result<(Vec<u8>, String), RegistryError> {
        let target = self.at(reference)?;
        let fetched = self
            .block_on(self.client.get_manifest_direct(&target))
            .map_err(failed)?;
        Ok((fetched.bytes, fetched.media_type))
    }

    fn get_blob(&self, digest: &Digest) -> Result<Box<dyn Read + Send>, RegistryError> {
        let size = self.head_blob(digest)?.ok_or_else(|| {
            RegistryError(format!(
                "blob {digest} not found in {}",
                self.repository.repository_name()
            ))
        })?;
        let descriptor = Descriptor::new("application/octet-stream", size, digest.clone());
        let stream = self
            .block_on(self.client.get_blob_stream(&self.repository, &descriptor))
            .map_err(failed)?;
        Ok(Box::new(StreamReader {
            stream: Box::pin(stream),
            runtime: self.runtime.clone(),
            frame: bytes::Bytes::new(),
        }))
    }
}

/// `HEAD /v2/<repo>/blobs/<digest>`: the size the registry reports.
async fn head_blob_size(
    client: &Client,
    repository: &Reference,
    digest: &Digest,
) -> Result<Option<u64>, super::RegistryError> {
    let host = &repository.registry;
    let url = client.api_url(host, &format!("{}/blobs/{digest}", repository.repository));
    let scope = Scope::pull(&repository.repository);
    let response = client
        .send_retrying(host, &scope, |http| http.head(&url))
        .await?;
    match response.status().as_u16() {
        200 => Ok(Some(
            response
                .headers()
                .get(reqwest::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        )),
        404 => Ok(None),
        _ => {
            let what = format!("blob {digest}");
            Err(status_error(host, &scope, "HEAD", &url, &what, response).await)
        }
    }
}

/// What the upload task tells the thread that owns the blob's bytes.
enum UploadEvent {
    /// The upload wants a fresh reader (first attempt or a retry).
    Open(SyncSender<io::Result<Vec<u8>>>),
    /// The upload finished.
    Done(Result<(), super::RegistryError>),
}

/// Answers the upload's requests for readers until it is done.
fn serve_upload(inbox: &Receiver<UploadEvent>, open: &BlobOpener<'_>) -> Result<(), RegistryError> {
    loop {
        match inbox.recv() {
            Ok(UploadEvent::Open(frames)) => relay(open, &frames),
            Ok(UploadEvent::Done(result)) => return result.map_err(failed),
            Err(_) => {
                return Err(RegistryError(
                    "the upload task stopped without a result; hint: retry".into(),
                ));
            }
        }
    }
}

/// Streams one reader into the frame channel until EOF, an error, or the
/// upload drops its end (an attempt abandoned or finished).
fn relay(open: &BlobOpener<'_>, frames: &SyncSender<io::Result<Vec<u8>>>) {
    let mut reader = match open() {
        Ok(reader) => reader,
        Err(e) => {
            let _ = frames.send(Err(e));
            return;
        }
    };
    loop {
        let mut buffer = vec![0u8; FRAME_SIZE];
        match reader.read(&mut buffer) {
            Ok(0) => return,
            Ok(n) => {
                buffer.truncate(n);
                if frames.send(Ok(buffer)).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                let _ = frames.send(Err(e));
                return;
            }
        }
    }
}

/// A blob whose bytes are read on another thread and relayed in frames.
struct RelayedBlob {
    descriptor: Descriptor,
    events: Sender<UploadEvent>,
}

impl Blob for RelayedBlob {
    fn digest(&self) -> &Digest {
        &self.descriptor.digest
    }

    fn size(&self) -> u64 {
        self.descriptor.size
    }

    fn media_type(&self) -> &str {
        &self.descriptor.media_type
    }

    fn open(&self) -> io::Result<Box<dyn Read + Send>> {
        let (frames, incoming) = mpsc::sync_channel(FRAMES_IN_FLIGHT);
        self.events
            .send(UploadEvent::Open(frames))
            .map_err(|_| io::Error::other("the weight reader is gone"))?;
        Ok(Box::new(FrameReader {
            incoming,
            frame: Vec::new(),
            position: 0,
        }))
    }
}

/// Reads the frames relayed by [`relay`]; a closed channel is the end.
struct FrameReader {
    incoming: Receiver<io::Result<Vec<u8>>>,
    frame: Vec<u8>,
    position: usize,
}

impl Read for FrameReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.position == self.frame.len() {
            match self.incoming.recv() {
                Ok(Ok(frame)) => {
                    self.frame = frame;
                    self.position = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.frame.len() - self.position);
        out[..n].copy_from_slice(&self.frame[self.position..self.position + n]);
        self.position += n;
        Ok(n)
    }
}

type BlobStream =
    Pin<Box<dyn futures::Stream<Item = Result<bytes::Bytes, super::RegistryError>> + Send>>;

/// A blocking reader over a verified blob stream.
struct StreamReader {
    stream: BlobStream,
    runtime: Handle,
    frame: bytes::Bytes,
}

impl Read for StreamReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.frame.is_empty() {
            match self.runtime.block_on(self.stream.next()) {
                Some(Ok(frame)) => self.frame = frame,
                Some(Err(e)) => return Err(io::Error::other(e.to_string())),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.frame.len());
        out[..n].copy_from_slice(&self.frame[..n]);
        let _ = self.frame.split_to(n);
        Ok(n)
    }
}
