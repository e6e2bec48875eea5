//! Blob upload: HEAD → cross-repository mount → monolithic PUT or chunked
//! PATCHes → commit, with retries that resume from the registry's `Range`.

use super::auth::Scope;
use super::client::{Client, status_error};
use super::progress::{BlobOutcome, Progress, ProgressEvent};
use super::{Reference, RegistryError};
use crate::oci::{Blob, Digest};
use reqwest::{Method, Response, header};
use sha2::{Digest as _, Sha256};
use std::io::Read;
use std::sync::Arc;

/// Default chunk size for chunked uploads (96 MiB, like cog).
pub const DEFAULT_CHUNK_SIZE: u64 = 96 << 20;
/// Default size above which blobs are uploaded in chunks (128 MiB, like cog).
pub const DEFAULT_MULTIPART_THRESHOLD: u64 = 128 << 20;
/// Default number of blobs uploaded at once.
pub const DEFAULT_CONCURRENCY: usize = 5;
/// Smallest chunk a 413 may shrink the chunk size to.
const MIN_CHUNK_SIZE: u64 = 1 << 20;
/// Size of one read from the source and one body frame.
const FRAME_SIZE: usize = 1 << 20;
/// Offset corrections (413 shrinks, 416s, Range disagreements) tolerated
/// within one attempt.
const MAX_RESYNCS: u32 = 16;
/// Emit byte progress at least every this many bytes.
const PROGRESS_STEP: u64 = 8 << 20;

/// Tunables of blob uploads.
#[derive(Debug, Clone)]
pub struct UploadOptions {
    /// Bytes per PATCH in chunked uploads (`COG_PUSH_DEFAULT_CHUNK_SIZE`).
    pub chunk_size: u64,
    /// Blobs larger than this are uploaded in chunks (`COG_PUSH_MULTIPART_THRESHOLD`).
    pub multipart_threshold: u64,
    /// Blobs uploaded at once (`COG_PUSH_CONCURRENCY`).
    pub concurrency: usize,
    /// Repositories on the target registry to mount missing blobs from
    /// (typically the base image's repository).
    pub mount_from: Vec<String>,
}

impl Default for UploadOptions {
    fn default() -> Self {
        UploadOptions {
            chunk_size: DEFAULT_CHUNK_SIZE,
            multipart_threshold: DEFAULT_MULTIPART_THRESHOLD,
            concurrency: DEFAULT_CONCURRENCY,
            mount_from: Vec::new(),
        }
    }
}

impl UploadOptions {
    /// Defaults overridden by `COG_PUSH_CONCURRENCY`,
    /// `COG_PUSH_DEFAULT_CHUNK_SIZE` and `COG_PUSH_MULTIPART_THRESHOLD`.
    pub fn from_env() -> Result<Self, RegistryError> {
        let mut options = UploadOptions::default();
        if let Some(n) = env_number("COG_PUSH_CONCURRENCY")? {
            options.concurrency = n as usize;
        }
        if let Some(n) = env_number("COG_PUSH_DEFAULT_CHUNK_SIZE")? {
            options.chunk_size = n;
        }
        if let Some(n) = env_number("COG_PUSH_MULTIPART_THRESHOLD")? {
            options.multipart_threshold = n;
        }
        Ok(options)
    }
}

fn env_number(name: &str) -> Result<Option<u64>, RegistryError> {
    match std::env::var(name) {
        Err(_) => Ok(None),
        Ok(text) => match text.trim().parse::<u64>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(RegistryError::Config {
                detail: format!(
                    "environment variable {name}={text:?} is not a positive integer; hint: unset it or set a number"
                ),
            }),
        },
    }
}

/// An open upload session on the registry.
struct Session {
    location: String,
    chunk_size: u64,
    min_chunk: u64,
    chunked: bool,
}

/// Reads a blob front to back, hashing what it has read.
struct Cursor {
    reader: Box<dyn Read + Send>,
    offset: u64,
    hasher: Sha256,
}

impl Cursor {
    /// Opens the blob and skips (hashing) to `offset`.
    fn open_at(blob: &dyn Blob, offset: u64) -> Result<Cursor, RegistryError> {
        let io_error = |source| RegistryError::Io {
            what: format!("blob {}", blob.digest()),
            source,
        };
        let mut cursor = Cursor {
            reader: blob.open().map_err(io_error)?,
            offset: 0,
            hasher: Sha256::new(),
        };
        let mut buffer = vec![0u8; FRAME_SIZE];
        while cursor.offset < offset {
            let want = (offset - cursor.offset).min(FRAME_SIZE as u64) as usize;
            let n = cursor.reader.read(&mut buffer[..want]).map_err(io_error)?;
            if n == 0 {
                return Err(io_error(std::io::ErrorKind::UnexpectedEof.into()));
            }
            cursor.hasher.update(&buffer[..n]);
            cursor.offset += n as u64;
        }
        Ok(cursor)
    }
}

/// The state of one blob's upload across attempts.
struct BlobUpload<'a> {
    client: &'a Client,
    target: &'a Reference,
    blob: Arc<dyn Blob>,
    scope: Scope,
    options: &'a UploadOptions,
    progress: &'a Arc<dyn Progress>,
    session: Option<Session>,
    cursor: Option<Cursor>,
    mount_tried: bool,
    chunk_failures: u32,
}

impl Client {
    /// True if the blob exists in the repository (`HEAD /blobs/<digest>`).
    pub async fn blob_exists(
        &self,
        target: &Reference,
        digest: &Digest,
        scope: &Scope,
    ) -> Result<bool, RegistryError> {
        let host = &target.registry;
        let url = self.api_url(host, &format!("{}/blobs/{digest}", target.repository));
        let response = self
            .send_retrying(host, scope, |http| http.head(&url))
            .await?;
        match response.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(status_error(
                host,
                scope,
                "HEAD",
                &url,
                &format!("blob {digest}"),
                response,
            )
            .await),
        }
    }

    /// Makes sure a blob is in the target repository: skip if present, else
    /// mount, else upload (retrying and resuming).
    pub async fn push_blob(
        &self,
        target: &Reference,
        blob: Arc<dyn Blob>,
        options: &UploadOptions,
        progress: &Arc<dyn Progress>,
    ) -> Result<BlobOutcome, RegistryError> {
        let digest = blob.digest().clone();
        progress.event(&ProgressEvent::BlobStart {
            digest: digest.clone(),
            size: blob.size(),
        });
        let scope = Scope {
            repository: target.repository.clone(),
            push: true,
            mount_from: options.mount_from.clone(),
        };
        let outcome = if self.blob_exists(target, &digest, &scope).await? {
            BlobOutcome::Existed
        } else {
            let mut upload = BlobUpload {
                client: self,
                target,
                blob,
                scope,
                options,
                progress,
                session: None,
                cursor: None,
                mount_tried: false,
                chunk_failures: 0,
            };
            upload.run().await?
        };
        progress.event(&ProgressEvent::BlobDone { digest, outcome });
        Ok(outcome)
    }
}

impl BlobUpload<'_> {
    async fn run(&mut self) -> Result<BlobOutcome, RegistryError> {
        let policy = self.client.retry_policy().clone();
        let mut attempt = 1;
        loop {
            match self.attempt().await {
                Ok(outcome) => return Ok(outcome),
                Err(e) if e.is_retryable() && attempt < policy.attempts => {
                    self.progress.event(&ProgressEvent::Retry {
                        what: format!("blob {}", self.blob.digest()),
                        attempt,
                        reason: e.to_string(),
                    });
                    self.cursor = None;
                    tokio::time::sleep(policy.delay(attempt)).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn attempt(&mut self) -> Result<BlobOutcome, RegistryError> {
        let chunked_session = self.session.as_ref().is_some_and(|s| s.chunked);
        if !chunked_session && self.blob.size() <= self.options.multipart_threshold {
            // A monolithic upload is never resumed: a failed PUT may have
            // left bytes in its session, so every attempt gets a fresh one.
            self.session = None;
        }
        let offset = if self.session.is_some() {
            self.resume_offset().await?
        } else {
            0
        };
        if self.session.is_none()
            && let Some(outcome) = self.start_session().await?
        {
            return Ok(outcome);
        }
        let size = self.blob.size();
        let chunked = self.session.as_ref().is_some_and(|s| s.chunked)
            || size > self.options.multipart_threshold;
        if !chunked {
            return self.upload_monolithic().await;
        }
        self.upload_chunks(offset).await?;
        self.commit().await
    }

    /// POST a new session (with a mount attempt the first time). `Some` if
    /// the blob was mounted.
    async fn start_session(&mut self) -> Result<Option<BlobOutcome>, RegistryError> {
        let host = &self.target.registry;
        let mut url = self
            .client
            .api_url(host, &format!("{}/blobs/uploads/", self.target.repository));
        let mount_from = self
            .options
            .mount_from
            .iter()
            .find(|repo| **repo != self.target.repository)
            .filter(|_| !self.mount_tried);
        if let Some(from) = mount_from {
            url = format!("{url}?mount={}&from={from}", self.blob.digest());
            self.mount_tried = true;
        }
        let response = self
            .client
            .send_retrying(host, &self.scope, |http| {
                http.post(&url).header(header::CONTENT_LENGTH, "0")
            })
            .await?;
        match response.status().as_u16() {
            201 => Ok(Some(BlobOutcome::Mounted)),
            202 => {
                let location = self.location_of(&response)?;
                let (min_chunk, max_chunk) = chunk_limits(&response);
                let mut chunk_size = self.options.chunk_size.max(min_chunk);
                if let Some(max) = max_chunk {
                    chunk_size = chunk_size.min(max);
                }
                self.session = Some(Session {
                    location,
                    chunk_size,
                    min_chunk,
                    chunked: false,
                });
                self.cursor = None;
                Ok(None)
            }
            _ => {
                Err(status_error(host, &self.scope, "POST", &url, "upload session", response).await)
            }
        }
    }

    /// Where an interrupted session stands: `GET <location>` → `Range`.
    /// A lost session is dropped so the next attempt starts over.
    async fn resume_offset(&mut self) -> Result<u64, RegistryError> {
        let Some(session) = &self.session else {
            return Ok(0);
        };
        let host = &self.target.registry;
        let url = session.location.clone();
        let response = self
            .client
            .send_retrying(host, &self.scope, |http| http.get(&url))
            .await?;
        if response.status().as_u16() != 204 && !response.status().is_success() {
            self.session = None;
            return Ok(0);
        }
        let location = self.location_of(&response).unwrap_or(url);
        let offset = response
            .headers()
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
            .map_or(0, offset_from_range);
        if let Some(session) = &mut self.session {
            session.location = location;
        }
        Ok(offset)
    }

    async fn upload_monolithic(&mut self) -> Result<BlobOutcome, RegistryError> {
        let size = self.blob.size();
        let url = self.commit_url()?;
        let (body, producer) = self.body(0, size);
        let request = self
            .client
            .http()
            .request(Method::PUT, &url)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_LENGTH, size)
            .body(body);
        let response = self
            .client
            .send_once(&self.target.registry, &self.scope, request)
            .await;
        let cursor = producer.await.into_cursor()?;
        let response = response?;
        match response.status().as_u16() {
            201 => {
                self.check_digest(cursor)?;
                Ok(BlobOutcome::Uploaded)
            }
            413 => {
                if let Some(session) = &mut self.session {
                    session.chunked = true;
                    session.chunk_size = session.chunk_size.min((size / 2).max(MIN_CHUNK_SIZE));
                }
                self.session = None;
                self.force_chunked_retry().await
            }
            _ => {
                self.check_digest(cursor)?;
                Err(self.failure("PUT", &url, response).await)
            }
        }
    }

    /// After a 413 on a monolithic PUT: new session, chunked from byte 0.
    async fn force_chunked_retry(&mut self) -> Result<BlobOutcome, RegistryError> {
        let size = self.blob.size();
        if let Some(outcome) = self.start_session().await? {
            return Ok(outcome);
        }
        if let Some(session) = &mut self.session {
            session.chunked = true;
            session.chunk_size = session.chunk_size.min((size / 2).max(MIN_CHUNK_SIZE));
        }
        self.upload_chunks(0).await?;
        self.commit().await
    }

    async fn upload_chunks(&mut self, mut offset: u64) -> Result<(), RegistryError> {
        let size = self.blob.size();
        if let Some(session) = &mut self.session {
            session.chunked = true;
        }
        let mut resyncs = 0;
        while offset < size {
            let session = self
                .session
                .as_ref()
                .ok_or_else(|| lost_session(&self.target.registry))?;
            let length = session.chunk_size.min(size - offset);
            let url = session.location.clone();
            let (body, producer) = self.body(offset, length);
            let request = self
                .client
                .http()
                .request(Method::PATCH, &url)
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .header(header::CONTENT_LENGTH, length)
                .header(
                    header::CONTENT_RANGE,
                    format!("{}-{}", offset, offset + length - 1),
                )
                .body(body);
            let response = self
                .client
                .send_once(&self.target.registry, &self.scope, request)
                .await;
            let cursor = producer.await.into_cursor()?;
            let response = match response {
                Ok(response) => response,
                Err(e) => {
                    self.note_chunk_failure(length);
                    return Err(e);
                }
            };
            let status = response.status().as_u16();
            if (200..300).contains(&status) {
                let location = self.location_of(&response)?;
                if let Some(session) = &mut self.session {
                    session.location = location;
                }
            }
            match status {
                200..=299 if range_confirms(&response, offset + length) => {
                    self.chunk_failures = 0;
                    self.cursor = cursor;
                    offset += length;
                    self.report_bytes(offset);
                    continue;
                }
                200..=299 | 416 => {}
                413 => self.shrink_chunk(length)?,
                _ => return Err(self.failure("PATCH", &url, response).await),
            }
            resyncs += 1;
            if resyncs > MAX_RESYNCS {
                return Err(RegistryError::Network {
                    registry: self.target.registry.clone(),
                    detail: format!(
                        "the upload offset kept disagreeing with the registry after {MAX_RESYNCS} resyncs"
                    ),
                });
            }
            offset = self.resume_offset().await?;
        }
        Ok(())
    }

    /// A proxy that caps bodies may cut the connection instead of answering
    /// 413: after two network failures of the same chunk, halve the chunk.
    fn note_chunk_failure(&mut self, length: u64) {
        self.chunk_failures += 1;
        if self.chunk_failures >= 2 && length > MIN_CHUNK_SIZE {
            self.chunk_failures = 0;
            let _ = self.shrink_chunk(length);
        }
    }

    fn shrink_chunk(&mut self, rejected: u64) -> Result<(), RegistryError> {
        let session = self
            .session
            .as_mut()
            .ok_or_else(|| lost_session(&self.target.registry))?;
        let smaller = (rejected / 2).max(MIN_CHUNK_SIZE).max(session.min_chunk);
        if smaller >= rejected {
            return Err(RegistryError::Http {
                method: "PATCH".into(),
                url: session.location.split('?').next().unwrap_or("").to_string(),
                status: 413,
                body: String::new(),
                hint: format!(
                    "a proxy in front of the registry rejects request bodies of {rejected} bytes, the smallest chunk allowed; raise its body size limit"
                ),
            });
        }
        session.chunk_size = smaller;
        Ok(())
    }

    async fn commit(&mut self) -> Result<BlobOutcome, RegistryError> {
        let cursor = self.cursor.take();
        self.check_digest(cursor)?;
        let url = self.commit_url()?;
        let response = self
            .client
            .send_retrying(&self.target.registry, &self.scope, |http| {
                http.put(&url)
                    .header(header::CONTENT_TYPE, "application/octet-stream")
                    .header(header::CONTENT_LENGTH, "0")
            })
            .await?;
        if response.status().as_u16() == 201 {
            return Ok(BlobOutcome::Uploaded);
        }
        Err(self.failure("PUT", &url, response).await)
    }

    /// Refuses to commit content whose hash is not the blob's digest.
    fn check_digest(&self, cursor: Option<Cursor>) -> Result<(), RegistryError> {
        let Some(cursor) = cursor else {
            return Ok(());
        };
        if cursor.offset != self.blob.size() {
            return Ok(());
        }
        let actual = Digest::from_sha256(cursor.hasher.finalize().into());
        if &actual != self.blob.digest() {
            return Err(RegistryError::DigestMismatch {
                what: format!("local blob {}", self.blob.digest()),
                expected: self.blob.digest().clone(),
                actual,
            });
        }
        Ok(())
    }

    fn commit_url(&self) -> Result<String, RegistryError> {
        let session = self
            .session
            .as_ref()
            .ok_or_else(|| lost_session(&self.target.registry))?;
        let mut url = url::Url::parse(&session.location).map_err(|e| RegistryError::Network {
            registry: self.target.registry.clone(),
            detail: format!("the registry returned an invalid upload location: {e}"),
        })?;
        url.query_pairs_mut()
            .append_pair("digest", &self.blob.digest().to_string());
        Ok(url.to_string())
    }

    fn location_of(&self, response: &Response) -> Result<String, RegistryError> {
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| RegistryError::Network {
                registry: self.target.registry.clone(),
                detail: "upload response without a Location header".into(),
            })?;
        Ok(self
            .client
            .resolve_location(&self.target.registry, location))
    }

    async fn failure(&self, method: &str, url: &str, response: Response) -> RegistryError {
        let what = format!("upload of blob {}", self.blob.digest());
        status_error(
            &self.target.registry,
            &self.scope,
            method,
            url,
            &what,
            response,
        )
        .await
    }

    fn report_bytes(&self, sent: u64) {
        self.progress.event(&ProgressEvent::BlobBytes {
            digest: self.blob.digest().clone(),
            sent,
            size: self.blob.size(),
        });
    }

    /// A request body streaming `length` bytes from `offset`, read on a
    /// blocking thread through a small bounded channel (flat memory). The
    /// returned future yields the cursor back when the whole range was read,
    /// or the error reading the source.
    fn body(
        &mut self,
        offset: u64,
        length: u64,
    ) -> (reqwest::Body, impl Future<Output = Produced> + use<>) {
        let cursor = self.cursor.take().filter(|c| c.offset == offset);
        let (sender, receiver) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
        let progress = Arc::clone(self.progress);
        let blob = Arc::clone(&self.blob);
        let handle = tokio::task::spawn_blocking(move || {
            let cursor = match cursor {
                Some(cursor) => cursor,
                None => match Cursor::open_at(blob.as_ref(), offset) {
                    Ok(cursor) => cursor,
                    Err(e) => {
                        let _ =
                            sender.blocking_send(Err(std::io::Error::other("source unreadable")));
                        return Produced::Failed(e);
                    }
                },
            };
            produce(cursor, length, sender, &*progress, blob.as_ref())
        });
        let stream = futures::stream::unfold(receiver, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let body = reqwest::Body::wrap_stream(stream);
        let done = async move {
            handle.await.unwrap_or_else(|e| {
                Produced::Failed(RegistryError::Io {
                    what: "blob reader".into(),
                    source: std::io::Error::other(e.to_string()),
                })
            })
        };
        (body, done)
    }
}

/// What the reading side of a request body ended with.
enum Produced {
    /// The whole range was read; the cursor can continue.
    Complete(Cursor),
    /// The request stopped taking bytes (the request failed).
    Abandoned,
    /// The source could not be read.
    Failed(RegistryError),
}

impl Produced {
    /// The cursor if complete; a source error wins over the request's result.
    fn into_cursor(self) -> Result<Option<Cursor>, RegistryError> {
        match self {
            Produced::Complete(cursor) => Ok(Some(cursor)),
            Produced::Abandoned => Ok(None),
            Produced::Failed(e) => Err(e),
        }
    }
}

/// Reads `length` bytes from the cursor into the channel.
fn produce(
    mut cursor: Cursor,
    length: u64,
    sender: tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>,
    progress: &dyn Progress,
    blob: &dyn Blob,
) -> Produced {
    let end = cursor.offset + length;
    let mut last_report = cursor.offset;
    while cursor.offset < end {
        let want = (end - cursor.offset).min(FRAME_SIZE as u64) as usize;
        let mut buffer = vec![0u8; want];
        let n = match read_full(&mut cursor.reader, &mut buffer) {
            Ok(0) => Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => Ok(n),
            Err(e) => Err(e),
        };
        let n = match n {
            Ok(n) => n,
            Err(e) => {
                let _ = sender.blocking_send(Err(std::io::Error::other("source unreadable")));
                return Produced::Failed(RegistryError::Io {
                    what: format!("blob {} at byte {}", blob.digest(), cursor.offset),
                    source: e,
                });
            }
        };
        buffer.truncate(n);
        cursor.hasher.update(&buffer);
        cursor.offset += n as u64;
        if sender
            .blocking_send(Ok(bytes::Bytes::from(buffer)))
            .is_err()
        {
            return Produced::Abandoned;
        }
        if cursor.offset - last_report >= PROGRESS_STEP {
            last_report = cursor.offset;
            progress.event(&ProgressEvent::BlobBytes {
                digest: blob.digest().clone(),
                sent: cursor.offset,
                size: blob.size(),
            });
        }
    }
    Produced::Complete(cursor)
}

fn read_full(reader: &mut dyn Read, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn chunk_limits(response: &Response) -> (u64, Option<u64>) {
    let number = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let min = number("oci-chunk-min-length").unwrap_or(0);
    let max = number("oci-chunk-max-length").map(|max| if max > 65536 { max - 65536 } else { max });
    (min, max)
}

/// False if the response's `Range` says the registry holds a different
/// number of bytes than we sent (registries do not all check
/// `Content-Range`, so we do). No `Range` header counts as confirmation.
fn range_confirms(response: &Response, expected_size: u64) -> bool {
    match response
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
    {
        Some(range) => offset_from_range(range) == expected_size,
        None => true,
    }
}

/// The next byte to send, from an upload's `Range: 0-N` header.
///
/// Distribution reports an empty upload as `0-0` (not `0--1`), so `0-0`
/// means "nothing yet": resuming from byte 0 is always safe, whereas
/// assuming one byte would silently corrupt the blob.
pub fn offset_from_range(range: &str) -> u64 {
    match parse_range_end(range) {
        None | Some(0) => 0,
        Some(end) => end + 1,
    }
}

/// The inclusive end of a `Range: 0-N` (or `bytes=0-N`) header.
pub fn parse_range_end(range: &str) -> Option<u64> {
    let range = range.trim().trim_start_matches("bytes=");
    let (_, end) = range.split_once('-')?;
    end.trim().parse().ok()
}

fn lost_session(host: &str) -> RegistryError {
    RegistryError::Network {
        registry: host.to_string(),
        detail: "the upload session was lost".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_end_parsing() {
        assert_eq!(parse_range_end("0-1048575"), Some(1048575));
        assert_eq!(parse_range_end("bytes=0-9"), Some(9));
        assert_eq!(parse_range_end("garbage"), None);
        assert_eq!(offset_from_range("0-0"), 0, "distribution's empty upload");
        assert_eq!(offset_from_range("0--1"), 0);
        assert_eq!(offset_from_range("0-4194303"), 4194304);
    }
}
