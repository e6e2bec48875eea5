//! Parallel ingest of local files. Each file is mapped once and up to three
//! streams run over the mapping: the file digest, the raw-layer digest (tar
//! header + content + padding + end blocks) and the copy into the store
//! (`copy_file_range`, no userspace buffer). The streams of all open files
//! are advanced one chunk at a time by one worker per core, so every core
//! stays busy until the last byte whatever the mix of file sizes; follow-up
//! work (compressing a bundle whose files are all stored) joins the same
//! queue as soon as the files it needs are done.
//!
//! Memory is flat in file size: content is only read through the mapping
//! (file-backed pages); each stream holds a SHA-256 state.
//!
//! Durability: a store copy is written to a temporary file and renamed to
//! its digest only after every stream finished and the source's size and
//! modification time are unchanged; it is not fsynced (that would put the
//! disk, ~10 s per 4 GiB here, on the import's path). A crash can therefore
//! lose or shorten store files whose data was still in the page cache, never
//! the source files or `weights.lock` (which is fsynced); the
//! [`store`](super::store) documentation says how a damaged blob is caught.

use super::error::{Result, WeightsError};
use super::sha_pair::{Sha256Lane, Sha256Pair};
use super::store::{StoreTemp, WeightStore};
use super::tar;
use crate::oci::Digest;
use sha2::{Digest as _, Sha256};
use std::collections::VecDeque;
use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::SystemTime;

/// Bytes one step of a stream handles.
pub const CHUNK: u64 = 8 << 20;
/// Files open (mapped) at once per worker.
const OPEN_PER_WORKER: usize = 4;

/// One local file to ingest.
#[derive(Debug, Clone)]
pub struct LocalJob {
    /// Where the file is.
    pub path: PathBuf,
    /// The file's path inside the weight (for messages).
    pub label: String,
    /// The listed size; another size on disk is an error.
    pub size: u64,
    /// The listed modification time, checked before and after reading.
    pub modified: Option<SystemTime>,
    /// Copy the file into this store, under its digest.
    pub store: Option<WeightStore>,
    /// Tar bytes before the content of a one-file raw layer: also compute
    /// that layer's digest and size.
    pub layer_prefix: Option<Vec<u8>>,
}

/// What ingesting one file produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalOutcome {
    /// SHA-256 of the content.
    pub digest: Digest,
    /// Digest and size of the one-file raw layer, when asked for.
    pub layer: Option<(Digest, u64)>,
}

/// Work run once the jobs it needs are done; gets their outcomes in the
/// order of `needs`.
pub type FollowUpFn<'a, T> = Box<dyn FnOnce(Vec<LocalOutcome>) -> Result<T> + Send + 'a>;

/// A follow-up and the jobs (indexes) it needs.
pub struct FollowUp<'a, T> {
    /// Indexes into the job list.
    pub needs: Vec<usize>,
    /// The work.
    pub run: FollowUpFn<'a, T>,
}

/// Ingests `jobs` with `workers` threads (at least one), running each
/// follow-up as soon as the jobs it needs are done. Returns per-job and
/// per-follow-up results in input order; a follow-up whose jobs failed does
/// not run and reports the first such failure.
pub fn run<'a, T: Send>(
    jobs: &[LocalJob],
    follow_ups: Vec<FollowUp<'a, T>>,
    workers: usize,
) -> (Vec<Result<LocalOutcome>>, Vec<Result<T>>) {
    let workers = workers.max(1);
    let sched = Scheduler::new(jobs, follow_ups, workers);
    std::thread::scope(|scope| {
        for _ in 1..workers {
            scope.spawn(|| sched.work());
        }
        sched.work();
    });
    sched.into_results()
}

/// Ingests one file on the calling thread (used for single files and as
/// the reference the parallel path is tested against).
pub fn ingest_one(job: &LocalJob) -> Result<LocalOutcome> {
    let (mut results, _) = run::<()>(std::slice::from_ref(job), Vec::new(), 1);
    results.pop().expect("one job, one result")
}

/// One unit of work.
enum Task<'a, T> {
    /// Open job `n` and queue its streams.
    Open(usize),
    /// Advance a stream by one chunk.
    Step(Step),
    /// Run follow-up `n`.
    Follow(usize, FollowUpFn<'a, T>),
}

/// What a stream computes.
enum StreamKind {
    FileDigest(Sha256),
    LayerDigest(Sha256),
    /// Both digests in one pass (see [`Sha256Pair`]).
    BothDigests(Box<Sha256Pair>),
    Copy,
}

/// A stream over one open file and how far it got.
struct Step {
    job: usize,
    input: Arc<Input>,
    offset: u64,
    kind: StreamKind,
}

/// An open file: handle, mapping and the store temp file it is copied to.
struct Input {
    handle: File,
    map: Option<memmap2::Mmap>,
    before: (u64, Option<SystemTime>),
    temp: Option<StoreTemp>,
}

impl Input {
    fn data(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }
}

/// What the streams of an open job produced so far.
#[derive(Default)]
struct Progress {
    streams_left: usize,
    digest: Option<Digest>,
    layer: Option<(Digest, u64)>,
    failed: Option<WeightsError>,
}

struct State<'a, T> {
    /// A task panicked: the other workers stop (the panic then propagates).
    aborted: bool,
    queue: VecDeque<Task<'a, T>>,
    pending_jobs: VecDeque<usize>,
    open_jobs: usize,
    running: usize,
    progress: Vec<Progress>,
    job_results: Vec<Option<Result<LocalOutcome>>>,
    follow_needs: Vec<Vec<usize>>,
    follow_runs: Vec<Option<FollowUpFn<'a, T>>>,
    follow_results: Vec<Option<Result<T>>>,
}

struct Scheduler<'j, 'a, T> {
    jobs: &'j [LocalJob],
    max_open: usize,
    state: Mutex<State<'a, T>>,
    wake: Condvar,
}

impl<'j, 'a, T: Send> Scheduler<'j, 'a, T> {
    fn new(jobs: &'j [LocalJob], follow_ups: Vec<FollowUp<'a, T>>, workers: usize) -> Self {
        let (follow_needs, follow_runs): (Vec<_>, Vec<_>) = follow_ups
            .into_iter()
            .map(|f| (f.needs, Some(f.run)))
            .unzip();
        let sched = Scheduler {
            jobs,
            max_open: OPEN_PER_WORKER * workers,
            state: Mutex::new(State {
                aborted: false,
                queue: VecDeque::new(),
                pending_jobs: (0..jobs.len()).collect(),
                open_jobs: 0,
                running: 0,
                progress: (0..jobs.len()).map(|_| Progress::default()).collect(),
                job_results: (0..jobs.len()).map(|_| None).collect(),
                follow_results: follow_runs.iter().map(|_| None).collect(),
                follow_needs,
                follow_runs,
            }),
            wake: Condvar::new(),
        };
        sched.queue_ready_follow_ups(&mut sched.lock());
        sched
    }

    fn into_results(self) -> (Vec<Result<LocalOutcome>>, Vec<Result<T>>) {
        let state = self.state.into_inner().unwrap_or_else(|e| e.into_inner());
        let jobs = state
            .job_results
            .into_iter()
            .map(|r| r.expect("every job finishes"))
            .collect();
        let follows = state
            .follow_results
            .into_iter()
            .map(|r| r.expect("every follow-up finishes"))
            .collect();
        (jobs, follows)
    }

    fn lock(&self) -> MutexGuard<'_, State<'a, T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A worker: runs tasks until there are none left.
    fn work(&self) {
        while let Some(task) = self.next_task() {
            let _guard = PanicGuard(self);
            match task {
                Task::Open(n) => self.open_job(n),
                Task::Step(step) => self.advance(step),
                Task::Follow(n, run) => self.follow_up(n, run),
            }
        }
    }

    /// The next task; waits while running tasks may still produce work.
    fn next_task(&self) -> Option<Task<'a, T>> {
        let mut state = self.lock();
        loop {
            let task = if state.open_jobs < self.max_open && !state.pending_jobs.is_empty() {
                let n = state.pending_jobs.pop_front().expect("not empty");
                state.open_jobs += 1;
                Some(Task::Open(n))
            } else {
                state.queue.pop_front()
            };
            if let Some(task) = task {
                state.running += 1;
                return Some(task);
            }
            if state.running == 0 || state.aborted {
                return None;
            }
            state = self.wake.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn task_finished(&self, mut state: MutexGuard<'_, State<'a, T>>) {
        state.running -= 1;
        drop(state);
        self.wake.notify_all();
    }

    fn open_job(&self, n: usize) {
        let job = &self.jobs[n];
        let opened = open_input(job);
        let mut state = self.lock();
        match opened {
            Ok(input) => {
                let input = Arc::new(input);
                let mut kinds = digest_streams(job);
                if input.temp.is_some() && job.size > 0 {
                    kinds.push(StreamKind::Copy);
                }
                state.progress[n].streams_left = kinds.len();
                for kind in kinds {
                    state.queue.push_back(Task::Step(Step {
                        job: n,
                        input: input.clone(),
                        offset: 0,
                        kind,
                    }));
                }
            }
            Err(e) => {
                state.open_jobs -= 1;
                self.job_done(&mut state, n, Err(e));
            }
        }
        self.task_finished(state);
    }

    /// Runs one chunk of a stream (outside the lock), then requeues the
    /// stream or records what it produced.
    fn advance(&self, mut step: Step) {
        let job = &self.jobs[step.job];
        let end = (step.offset + CHUNK).min(job.size);
        let result = run_chunk(job, &mut step, end);
        step.offset = end;
        let mut state = self.lock();
        if let Err(e) = result {
            state.progress[step.job].failed.get_or_insert(e);
            step.offset = job.size;
        }
        if step.offset < job.size {
            state.queue.push_back(Task::Step(step));
        } else {
            self.stream_done(&mut state, step);
        }
        self.task_finished(state);
    }

    fn stream_done(&self, state: &mut State<'a, T>, step: Step) {
        let job = &self.jobs[step.job];
        let progress = &mut state.progress[step.job];
        match step.kind {
            StreamKind::FileDigest(h) => {
                progress.digest = Some(Digest::from_sha256(h.finalize().into()));
            }
            StreamKind::LayerDigest(h) => {
                let prefix = job.layer_prefix.as_ref().map_or(0, |p| p.len());
                progress.layer = Some(finish_layer(h, prefix, job.size));
            }
            StreamKind::BothDigests(pair) => {
                let (digest, lane) = pair.finish();
                let prefix = job.layer_prefix.as_ref().map_or(0, |p| p.len());
                progress.digest = Some(digest);
                progress.layer = Some(finish_layer_lane(lane, prefix, job.size));
            }
            StreamKind::Copy => {}
        }
        progress.streams_left -= 1;
        if progress.streams_left > 0 {
            return;
        }
        let progress = std::mem::take(progress);
        let input = Arc::into_inner(step.input).expect("the last stream holds the last reference");
        state.open_jobs -= 1;
        let result = close_input(job, input, progress);
        self.job_done(state, step.job, result);
    }

    /// Records a job's result and queues the follow-ups now complete.
    fn job_done(&self, state: &mut State<'a, T>, n: usize, result: Result<LocalOutcome>) {
        state.job_results[n] = Some(result);
        self.queue_ready_follow_ups(state);
    }

    fn queue_ready_follow_ups(&self, state: &mut State<'a, T>) {
        for f in 0..state.follow_runs.len() {
            let ready = state.follow_runs[f].is_some()
                && state.follow_needs[f]
                    .iter()
                    .all(|&j| state.job_results[j].is_some());
            if ready {
                let run = state.follow_runs[f].take().expect("checked");
                state.queue.push_front(Task::Follow(f, run));
            }
        }
    }

    fn follow_up(&self, n: usize, run: FollowUpFn<'a, T>) {
        let outcomes: Result<Vec<LocalOutcome>> = {
            let state = self.lock();
            state.follow_needs[n]
                .iter()
                .map(|&j| match state.job_results[j].as_ref().expect("done") {
                    Ok(o) => Ok(o.clone()),
                    Err(e) => Err(WeightsError::Invalid(format!(
                        "{}: {e}",
                        self.jobs[j].label
                    ))),
                })
                .collect()
        };
        let result = outcomes.and_then(run);
        let mut state = self.lock();
        state.follow_results[n] = Some(result);
        self.task_finished(state);
    }
}

/// Stops the other workers when a task panics, so that they do not wait
/// for work the panicked task would have queued.
struct PanicGuard<'s, 'j, 'a, T: Send>(&'s Scheduler<'j, 'a, T>);

impl<T: Send> Drop for PanicGuard<'_, '_, '_, T> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.lock().aborted = true;
            self.0.wake.notify_all();
        }
    }
}

/// Processes bytes `[step.offset, end)` of a stream.
fn run_chunk(job: &LocalJob, step: &mut Step, end: u64) -> Result<()> {
    let data = step.input.data();
    let chunk = &data[step.offset as usize..end as usize];
    match &mut step.kind {
        StreamKind::FileDigest(h) => {
            prefetch(&step.input, end);
            h.update(chunk);
        }
        StreamKind::LayerDigest(h) => h.update(chunk),
        StreamKind::BothDigests(pair) => {
            prefetch(&step.input, end);
            pair.update(chunk);
        }
        StreamKind::Copy => {
            let temp = step
                .input
                .temp
                .as_ref()
                .expect("copy streams have a store file");
            copy_range(&step.input.handle, temp.file(), chunk, step.offset)
                .map_err(|e| WeightsError::io("copying into the weights store", &job.path, e))?;
        }
    }
    Ok(())
}

/// Asks the kernel to read the next chunks ahead (matters with a cold page
/// cache; cheap when the pages are there).
fn prefetch(input: &Input, from: u64) {
    if let Some(map) = &input.map {
        let len = (map.len() as u64).saturating_sub(from).min(2 * CHUNK) as usize;
        if len > 0 {
            let _ = map.advise_range(memmap2::Advice::WillNeed, from as usize, len);
        }
    }
}

/// Copies `chunk` (bytes at `offset` of `src`, already mapped) to the same
/// offset of `dst`: in the kernel where it can (`copy_file_range`), else by
/// a positioned write from the mapping.
fn copy_range(src: &File, dst: &File, chunk: &[u8], offset: u64) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    if copy_in_kernel(src, dst, chunk.len(), offset)? {
        return Ok(());
    }
    write_at(dst, chunk, offset)
}

#[cfg(target_os = "linux")]
fn copy_in_kernel(src: &File, dst: &File, len: usize, offset: u64) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    let mut done = 0usize;
    while done < len {
        let mut off_in = (offset + done as u64) as libc::loff_t;
        let mut off_out = off_in;
        // SAFETY: both descriptors are open for the duration of the call and
        // the offsets are valid pointers to locals.
        let n = unsafe {
            libc::copy_file_range(
                src.as_raw_fd(),
                &mut off_in,
                dst.as_raw_fd(),
                &mut off_out,
                len - done,
                0,
            )
        };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            let unsupported = matches!(
                err.raw_os_error(),
                Some(libc::EXDEV | libc::ENOSYS | libc::EOPNOTSUPP | libc::EINVAL)
            );
            if unsupported && done == 0 {
                return Ok(false);
            }
            return Err(err);
        }
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the file became shorter while it was copied",
            ));
        }
        done += n as usize;
    }
    Ok(true)
}

#[cfg(unix)]
fn write_at(dst: &File, chunk: &[u8], offset: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    dst.write_all_at(chunk, offset)
}

#[cfg(not(unix))]
fn write_at(dst: &File, chunk: &[u8], offset: u64) -> std::io::Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    let mut dst = dst;
    dst.seek(SeekFrom::Start(offset))?;
    dst.write_all(chunk)
}

/// The digest streams of a job: one pass for both digests where the CPU
/// allows, else one hasher each.
fn digest_streams(job: &LocalJob) -> Vec<StreamKind> {
    let Some(prefix) = &job.layer_prefix else {
        return vec![StreamKind::FileDigest(Sha256::new())];
    };
    if let Some(pair) = Sha256Pair::new(prefix) {
        return vec![StreamKind::BothDigests(Box::new(pair))];
    }
    let mut layer = Sha256::new();
    layer.update(prefix);
    vec![
        StreamKind::FileDigest(Sha256::new()),
        StreamKind::LayerDigest(layer),
    ]
}

/// [`finish_layer`] for a hash continued from a [`Sha256Pair`].
fn finish_layer_lane(mut lane: Sha256Lane, prefix_len: usize, size: u64) -> (Digest, u64) {
    let pad = tar::padding(size) as usize;
    lane.update(&tar::END[..pad]);
    lane.update(&tar::END);
    let total = prefix_len as u64 + size + pad as u64 + tar::END.len() as u64;
    (lane.finalize(), total)
}

/// Finishes the layer digest: padding to the block, two end blocks.
pub fn finish_layer(mut hasher: Sha256, prefix_len: usize, size: u64) -> (Digest, u64) {
    let pad = tar::padding(size) as usize;
    hasher.update(&tar::END[..pad]);
    hasher.update(tar::END);
    let total = prefix_len as u64 + size + pad as u64 + tar::END.len() as u64;
    (Digest::from_sha256(hasher.finalize().into()), total)
}

fn changed_error(job: &LocalJob, what: &str) -> WeightsError {
    WeightsError::Integrity(format!(
        "{}: {what} while importing (file {}); hint: wait until the file is fully written, then run 'cogpack weights import' again",
        job.path.display(),
        job.label
    ))
}

fn stat(handle: &File, job: &LocalJob) -> Result<(u64, Option<SystemTime>)> {
    let meta = handle
        .metadata()
        .map_err(|e| WeightsError::io("reading metadata of", &job.path, e))?;
    Ok((meta.len(), meta.modified().ok()))
}

fn open_input(job: &LocalJob) -> Result<Input> {
    let handle = File::open(&job.path).map_err(|e| WeightsError::io("opening", &job.path, e))?;
    let before = stat(&handle, job)?;
    if before.0 != job.size || (job.modified.is_some() && before.1 != job.modified) {
        return Err(changed_error(job, "content changed"));
    }
    let map = if job.size > 0 {
        // SAFETY: the map is only read; truncation by another process is
        // the one hazard of a file mapping, and the size checks before and
        // after reading report such a change.
        let map = unsafe { memmap2::Mmap::map(&handle) }
            .map_err(|e| WeightsError::io("mapping", &job.path, e))?;
        let _ = map.advise(memmap2::Advice::Sequential);
        Some(map)
    } else {
        None
    };
    let temp = job.store.as_ref().map(|s| s.temp()).transpose()?;
    Ok(Input {
        handle,
        map,
        before,
        temp,
    })
}

/// Checks the file did not change, files the store copy under the digest.
fn close_input(job: &LocalJob, input: Input, progress: Progress) -> Result<LocalOutcome> {
    if let Some(e) = progress.failed {
        return Err(e);
    }
    let after = stat(&input.handle, job)?;
    if after != input.before {
        return Err(changed_error(job, "content changed"));
    }
    let digest = progress.digest.expect("the file digest stream ran");
    drop(input.map);
    if let Some(temp) = input.temp {
        temp.commit_as(&digest, job.size)?;
    }
    Ok(LocalOutcome {
        digest,
        layer: progress.layer,
    })
}
