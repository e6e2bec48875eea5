//! Progress reporting. The library never prints: it sends [`ProgressEvent`]s
//! to a [`Progress`] reporter chosen by the caller (bars, plain lines, JSON
//! lines, or nothing).

use crate::oci::Digest;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde::Serialize;
use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;

/// How a blob got into the target repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BlobOutcome {
    /// It was already there (HEAD 200).
    Existed,
    /// Mounted from another repository of the same registry.
    Mounted,
    /// Uploaded.
    Uploaded,
}

/// One thing worth telling the user.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ProgressEvent {
    /// A phase starts (`checking`, `pushing layers`, `pushing manifest`, …).
    Phase {
        /// Phase name.
        name: String,
    },
    /// A blob is being handled.
    BlobStart {
        /// Blob digest.
        digest: Digest,
        /// Blob size.
        size: u64,
    },
    /// Bytes of a blob confirmed sent so far (may go back after a resume).
    BlobBytes {
        /// Blob digest.
        digest: Digest,
        /// Bytes sent.
        sent: u64,
        /// Blob size.
        size: u64,
    },
    /// A blob is in the target repository.
    BlobDone {
        /// Blob digest.
        digest: Digest,
        /// How it got there.
        outcome: BlobOutcome,
    },
    /// A request failed and will be retried.
    Retry {
        /// What is retried (a blob digest or a manifest).
        what: String,
        /// Retry number, from 1.
        attempt: u32,
        /// Why.
        reason: String,
    },
    /// A manifest or index was written.
    ManifestPushed {
        /// Reference written.
        reference: String,
        /// Its digest.
        digest: Digest,
    },
}

/// Receives progress events. Implementations must be cheap: events come
/// from upload threads.
pub trait Progress: Send + Sync {
    /// Handles one event.
    fn event(&self, event: &ProgressEvent);
}

/// How progress is shown (`--progress` / `--json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// Bars when stderr is a terminal (and `TERM` is not `dumb`), else plain lines.
    Auto,
    /// Plain lines on stderr.
    Plain,
    /// JSON lines on stdout.
    Json,
    /// Nothing.
    Quiet,
}

/// A reporter for a mode.
pub fn reporter(mode: ProgressMode) -> std::sync::Arc<dyn Progress> {
    use std::io::IsTerminal;
    match mode {
        ProgressMode::Auto => {
            let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
            if std::io::stderr().is_terminal() && !dumb {
                std::sync::Arc::new(BarProgress::default())
            } else {
                std::sync::Arc::new(PlainProgress)
            }
        }
        ProgressMode::Plain => std::sync::Arc::new(PlainProgress),
        ProgressMode::Json => std::sync::Arc::new(JsonProgress::new(std::io::stdout())),
        ProgressMode::Quiet => std::sync::Arc::new(NoProgress),
    }
}

/// Discards every event.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn event(&self, _event: &ProgressEvent) {}
}

/// One line per blob start/finish, retry and phase on stderr (`--progress plain`).
#[derive(Debug, Default)]
pub struct PlainProgress;

impl Progress for PlainProgress {
    fn event(&self, event: &ProgressEvent) {
        if let Some(line) = plain_line(event) {
            eprintln!("{line}");
        }
    }
}

/// The text [`PlainProgress`] prints for an event (byte counts are skipped).
pub fn plain_line(event: &ProgressEvent) -> Option<String> {
    match event {
        ProgressEvent::Phase { name } => Some(format!("=> {name}")),
        ProgressEvent::BlobStart { digest, size } => {
            Some(format!("{} {}: {}", short(digest), "start", human(*size)))
        }
        ProgressEvent::BlobBytes { .. } => None,
        ProgressEvent::BlobDone { digest, outcome } => Some(format!(
            "{} {}",
            short(digest),
            match outcome {
                BlobOutcome::Existed => "already exists",
                BlobOutcome::Mounted => "mounted",
                BlobOutcome::Uploaded => "pushed",
            }
        )),
        ProgressEvent::Retry {
            what,
            attempt,
            reason,
        } => Some(format!("retry {attempt} for {what}: {reason}")),
        ProgressEvent::ManifestPushed { reference, digest } => {
            Some(format!("pushed {reference}@{digest}"))
        }
    }
}

/// One JSON object per line on a writer (`--json`).
pub struct JsonProgress<W: Write + Send> {
    out: Mutex<W>,
}

impl<W: Write + Send> JsonProgress<W> {
    /// Writes events to `out`.
    pub fn new(out: W) -> Self {
        JsonProgress {
            out: Mutex::new(out),
        }
    }

    /// Returns the writer.
    pub fn into_inner(self) -> W {
        self.out.into_inner().unwrap_or_else(|p| p.into_inner())
    }
}

impl<W: Write + Send> Progress for JsonProgress<W> {
    fn event(&self, event: &ProgressEvent) {
        if let Ok(line) = serde_json::to_string(event)
            && let Ok(mut out) = self.out.lock()
        {
            let _ = writeln!(out, "{line}");
        }
    }
}

/// Interactive indicatif bars: one per blob with bytes, rate and ETA.
pub struct BarProgress {
    multi: MultiProgress,
    bars: Mutex<HashMap<Digest, ProgressBar>>,
}

impl Default for BarProgress {
    fn default() -> Self {
        BarProgress {
            multi: MultiProgress::new(),
            bars: Mutex::new(HashMap::new()),
        }
    }
}

impl BarProgress {
    fn bar(&self, digest: &Digest, size: u64) -> ProgressBar {
        let mut bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        bars.entry(digest.clone())
            .or_insert_with(|| {
                let bar = self.multi.add(ProgressBar::new(size));
                let style = ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
                bar.set_style(style);
                bar.set_prefix(short(digest));
                bar
            })
            .clone()
    }
}

impl Progress for BarProgress {
    fn event(&self, event: &ProgressEvent) {
        match event {
            ProgressEvent::BlobStart { digest, size } => {
                self.bar(digest, *size);
            }
            ProgressEvent::BlobBytes { digest, sent, size } => {
                self.bar(digest, *size).set_position(*sent)
            }
            ProgressEvent::BlobDone { digest, outcome } => {
                let bar = self.bar(digest, 0);
                bar.finish_with_message(format!("{outcome:?}").to_lowercase());
            }
            other => {
                if let Some(line) = plain_line(other) {
                    let _ = self.multi.println(line);
                }
            }
        }
    }
}

fn short(digest: &Digest) -> String {
    digest.hex()[..12].to_string()
}

fn human(bytes: u64) -> String {
    indicatif::HumanBytes(bytes).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_name_the_blob_and_outcome_and_skip_byte_counts() {
        let digest = crate::oci::Digest::of_bytes(b"y");
        let short = &digest.hex()[..12];
        let done = ProgressEvent::BlobDone {
            digest: digest.clone(),
            outcome: BlobOutcome::Existed,
        };
        assert_eq!(
            plain_line(&done).unwrap(),
            format!("{short} already exists")
        );
        let bytes = ProgressEvent::BlobBytes {
            digest,
            sent: 1,
            size: 2,
        };
        assert!(plain_line(&bytes).is_none());
    }

    #[test]
    fn json_events_are_one_line_each_with_a_tag() {
        let progress = JsonProgress::new(Vec::new());
        let digest = crate::oci::Digest::of_bytes(b"x");
        progress.event(&ProgressEvent::BlobDone {
            digest: digest.clone(),
            outcome: BlobOutcome::Mounted,
        });
        progress.event(&ProgressEvent::Phase {
            name: "pushing".into(),
        });
        let text = String::from_utf8(progress.into_inner()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["event"], "blob_done");
        assert_eq!(lines[0]["outcome"], "mounted");
        assert_eq!(lines[0]["digest"], digest.to_string());
        assert_eq!(lines[1]["event"], "phase");
    }
}
