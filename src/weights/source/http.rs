//! A small blocking HTTP client for weight sources: each call runs on its own
//! thread with its own runtime (safe to call from any context), retries
//! network errors, 429 and 5xx with exponential backoff, and streams bodies.

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use std::time::Duration;

/// Retry and auth settings.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Bearer token sent with every request (never printed).
    pub bearer: Option<String>,
    /// Retries after the first attempt.
    pub retries: u32,
    /// First backoff delay; doubled each retry.
    pub backoff: Duration,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            bearer: None,
            retries: 3,
            backoff: Duration::from_secs(1),
        }
    }
}

/// Why a request failed after retries.
#[derive(Debug)]
pub enum HttpFailure {
    /// The server answered with a non-success status.
    Status(StatusCode, String),
    /// The request could not be completed.
    Transport(String),
}

impl std::fmt::Display for HttpFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpFailure::Status(s, body) if body.is_empty() => write!(f, "HTTP {s}"),
            HttpFailure::Status(s, body) => write!(f, "HTTP {s}: {body}"),
            HttpFailure::Transport(e) => write!(f, "{e}"),
        }
    }
}

/// A successful response head.
pub struct Head {
    /// Status code.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
}

fn retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

fn run_blocking<'a, T: Send>(
    work: impl FnOnce(reqwest::Client) -> BoxFuture<'a, T> + Send + 'a,
) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a current-thread runtime builds");
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .connect_timeout(Duration::from_secs(30))
                .build()
                .expect("the HTTP client builds");
            rt.block_on(work(client))
        })
        .join()
        .expect("the HTTP worker thread does not panic")
    })
}

async fn send_with_retries(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    opts: &HttpOptions,
) -> Result<reqwest::Response, HttpFailure> {
    let mut delay = opts.backoff;
    let mut attempt = 0;
    loop {
        let mut req = client.request(method.clone(), url);
        if let Some(token) = &opts.bearer {
            req = req.bearer_auth(token);
        }
        let outcome = req.send().await;
        let retry = match &outcome {
            Ok(resp) => retryable(resp.status()),
            Err(_) => true,
        };
        if !retry || attempt >= opts.retries {
            return match outcome {
                Ok(resp) if resp.status().is_success() => Ok(resp),
                Ok(resp) => {
                    let status = resp.status();
                    let body = resp.text().await.unwrap_or_default();
                    Err(HttpFailure::Status(
                        status,
                        body.chars().take(300).collect(),
                    ))
                }
                Err(e) => Err(HttpFailure::Transport(e.to_string())),
            };
        }
        attempt += 1;
        tokio::time::sleep(delay).await;
        delay *= 2;
    }
}

/// GET a URL and return the head and the whole body (for small API answers).
pub fn get_text(url: &str, opts: &HttpOptions) -> Result<(Head, String), HttpFailure> {
    let (url, opts) = (url.to_string(), opts.clone());
    run_blocking(move |client| {
        Box::pin(async move {
            let resp = send_with_retries(&client, reqwest::Method::GET, &url, &opts).await?;
            let head = Head {
                status: resp.status(),
                headers: resp.headers().clone(),
            };
            let text = resp
                .text()
                .await
                .map_err(|e| HttpFailure::Transport(e.to_string()))?;
            Ok((head, text))
        })
    })
}

/// HEAD a URL.
pub fn head(url: &str, opts: &HttpOptions) -> Result<Head, HttpFailure> {
    let (url, opts) = (url.to_string(), opts.clone());
    run_blocking(move |client| {
        Box::pin(async move {
            let resp = send_with_retries(&client, reqwest::Method::HEAD, &url, &opts).await?;
            Ok(Head {
                status: resp.status(),
                headers: resp.headers().clone(),
            })
        })
    })
}

/// A destination for a streamed body that can start over on a retry.
pub trait BodySink: Send {
    /// Discards what was written (a retry follows).
    fn restart(&mut self) -> std::io::Result<()>;
    /// Appends a chunk.
    fn write_chunk(&mut self, chunk: &[u8]) -> std::io::Result<()>;
}

/// Streams a body into `sink`, failing past `cap` bytes; a body cut short is
/// retried from the start. Returns the byte count.
pub fn download(
    url: &str,
    opts: &HttpOptions,
    cap: u64,
    sink: &mut dyn BodySink,
) -> Result<u64, HttpFailure> {
    let (url, opts) = (url.to_string(), opts.clone());
    run_blocking(move |client| {
        Box::pin(async move {
            let mut attempt = 0;
            loop {
                sink.restart()
                    .map_err(|e| HttpFailure::Transport(format!("writing: {e}")))?;
                match stream_once(&client, &url, &opts, cap, sink).await {
                    Err(HttpFailure::Transport(e))
                        if attempt < opts.retries
                            && !e.starts_with("writing")
                            && !e.contains("larger than") =>
                    {
                        attempt += 1;
                        tokio::time::sleep(opts.backoff * attempt).await;
                    }
                    other => return other,
                }
            }
        })
    })
}

async fn stream_once(
    client: &reqwest::Client,
    url: &str,
    opts: &HttpOptions,
    cap: u64,
    sink: &mut dyn BodySink,
) -> Result<u64, HttpFailure> {
    let mut resp = send_with_retries(client, reqwest::Method::GET, url, opts).await?;
    let mut total = 0u64;
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| HttpFailure::Transport(e.to_string()))?
    {
        total += chunk.len() as u64;
        if total > cap {
            return Err(HttpFailure::Transport(format!(
                "body larger than the expected {cap} bytes"
            )));
        }
        sink.write_chunk(&chunk)
            .map_err(|e| HttpFailure::Transport(format!("writing: {e}")))?;
    }
    Ok(total)
}

/// The `rel="next"` target of a `Link` header, if any.
pub fn next_link(headers: &HeaderMap) -> Option<String> {
    let link = headers.get(reqwest::header::LINK)?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"" || p.trim() == "rel=next");
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        is_next.then(|| target.to_string())
    })
}
