//! `weights import` (§8.13, §8.16): list sources, hash every file once while
//! ingesting it into the store (and, for raw-tar layers, while computing the
//! layer digest), pack, build the artifact, record it in `weights.lock`.

use super::artifact::WeightArtifact;
use super::drift::PlanStatus;
use super::envelope::{self, EnvelopeKind};
use super::error::{Result, WeightsError};
use super::ingest::{self, LocalJob};
use super::layerio::{LayerFile, compute_layer};
use super::lockfile::{FileRecord, LayerRecord, LockEntry, LockFile, LockSource};
use super::pack::{self, Compression, PlannedLayer};
use super::source::http::{self as http_source, BodySink};
use super::source::{
    Fetch, Fingerprint, ListedFile, Listing, SourceOptions, filter_and_merge, list_source,
};
use super::spec::WeightSpec;
use super::store::{StoreWriter, WeightStore};
use super::{set_digest, tar};
use crate::oci::Digest;
use rayon::prelude::*;
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::PathBuf;

/// What `import_weights` needs.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Project directory (holds `weights.lock`).
    pub project_dir: PathBuf,
    /// Source settings (HF endpoint/token, retry backoff).
    pub sources: SourceOptions,
    /// The local weights store.
    pub store: WeightStore,
    /// Weights to import; empty means all.
    pub names: Vec<String>,
    /// Plan only: no store writes, no lockfile write.
    pub dry_run: bool,
}

/// The outcome for one weight.
#[derive(Debug, Clone)]
pub struct WeightImport {
    /// Weight name.
    pub name: String,
    /// Plan status before importing.
    pub status: PlanStatus,
    /// The new lockfile entry (`None` on a dry run).
    pub entry: Option<LockEntry>,
    /// Informational messages (overridden paths, reused layers).
    pub notices: Vec<String>,
    /// Layers whose digests came from the lockfile instead of being recomputed.
    pub layers_reused: usize,
}

/// The outcome of an import.
#[derive(Debug, Clone)]
pub struct ImportReport {
    /// Per imported weight, in cog.yaml order.
    pub weights: Vec<WeightImport>,
    /// True if `weights.lock` was (re)written.
    pub lockfile_written: bool,
    /// Names pruned from the lockfile.
    pub pruned: Vec<String>,
}

impl ImportReport {
    /// The plan lines cog prints: `<icon> <name> (<status>)`.
    pub fn plan_lines(&self) -> Vec<String> {
        self.weights
            .iter()
            .map(|w| format!("{} {} ({})", w.status.icon(), w.name, w.status.label()))
            .collect()
    }
}

/// Imports the selected weights of `specs` (all cog.yaml weights, in order).
pub fn import_weights(specs: &[WeightSpec], opts: &ImportOptions) -> Result<ImportReport> {
    if specs.is_empty() {
        return Err(WeightsError::Invalid(
            "no weights declared in cog.yaml; hint: add a weights: section with name, target and source".into(),
        ));
    }
    super::spec::check_disjoint(specs)?;
    let _guard = if opts.dry_run {
        None
    } else {
        Some(lock_project(&opts.project_dir)?)
    };
    let lock = LockFile::load(&opts.project_dir)?;
    let kind = lock
        .as_ref()
        .map(|l| envelope::classify(&l.envelope_format))
        .unwrap_or(EnvelopeKind::Cogpack);
    let selected = select(specs, &opts.names, kind, lock.is_some())?;
    let mut weights = Vec::new();
    for spec in &selected {
        let previous = lock.as_ref().and_then(|l| l.entry(&spec.name));
        weights.push(build_weight(spec, previous, kind, opts)?);
    }
    if opts.dry_run {
        return Ok(ImportReport {
            weights,
            lockfile_written: false,
            pruned: Vec::new(),
        });
    }
    let ours = envelope::cogpack_envelope().to_string();
    let mut next = lock.clone().unwrap_or_else(|| LockFile::new(ours.clone()));
    next.envelope_format = ours;
    for w in &weights {
        next.upsert(w.entry.clone().expect("entries exist outside dry runs"));
    }
    let before: Vec<String> = next.weights.iter().map(|e| e.name.clone()).collect();
    let keep: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    next.prune(&keep);
    let pruned = before
        .into_iter()
        .filter(|n| !keep.contains(&n.as_str()))
        .collect();
    let changed = lock.as_ref() != Some(&next);
    if changed {
        next.save(&opts.project_dir)?;
    }
    Ok(ImportReport {
        weights,
        lockfile_written: changed,
        pruned,
    })
}

/// Takes cog's exclusive project lock `.cog/cog.lock` for the import; the
/// lock is released when the returned file is dropped.
fn lock_project(project_dir: &std::path::Path) -> Result<std::fs::File> {
    let dir = project_dir.join(".cog");
    std::fs::create_dir_all(&dir).map_err(|e| WeightsError::io("creating", &dir, e))?;
    let path = dir.join("cog.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| WeightsError::io("opening", &path, e))?;
    file.lock()
        .map_err(|e| WeightsError::io("locking (another import running?)", &path, e))?;
    Ok(file)
}

/// The weights to import: the named ones, or all. A lockfile written with
/// another envelope is re-imported whole so no untrusted layer digest keeps
/// living under cogpack's envelope.
fn select(
    specs: &[WeightSpec],
    names: &[String],
    kind: EnvelopeKind,
    has_lock: bool,
) -> Result<Vec<WeightSpec>> {
    let unknown: Vec<&String> = names
        .iter()
        .filter(|n| !specs.iter().any(|s| &s.name == *n))
        .collect();
    if !unknown.is_empty() {
        let known: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        return Err(WeightsError::Invalid(format!(
            "unknown weight name(s) {unknown:?}; cog.yaml declares {known:?}; hint: pass names from the weights: section"
        )));
    }
    let all = names.is_empty() || (has_lock && kind != EnvelopeKind::Cogpack);
    Ok(specs
        .iter()
        .filter(|s| all || names.contains(&s.name))
        .cloned()
        .collect())
}

/// Where a listed file sits: (source index, file index in that listing).
type Slot = (usize, usize);

/// Work for the hashing pass.
struct HashJob {
    slot: Slot,
    ingest: bool,
    raw_layer: Option<usize>,
}

struct HashResult {
    slot: Slot,
    digest: Digest,
    layer: Option<(usize, Digest, u64)>,
}

fn build_weight(
    spec: &WeightSpec,
    previous: Option<&LockEntry>,
    kind: EnvelopeKind,
    opts: &ImportOptions,
) -> Result<WeightImport> {
    let listings = spec
        .sources
        .iter()
        .map(|s| list_source(&s.uri, &opts.sources))
        .collect::<Result<Vec<_>>>()
        .map_err(|e| prefix_weight(&spec.name, e))?;
    let (merged, mut notices) = filter_and_merge(&spec.name, &spec.sources, &listings)?;
    let slots: Vec<Slot> = merged
        .iter()
        .map(|m| {
            let index = listings[m.source]
                .files
                .binary_search_by(|f| f.path.as_str().cmp(&m.file.path))
                .expect("merged files come from the listings");
            (m.source, index)
        })
        .collect();
    let sizes: Vec<(&str, u64)> = merged
        .iter()
        .map(|m| (m.file.path.as_str(), m.file.size))
        .collect();
    let layers = pack::plan(&sizes);
    if layers.is_empty() {
        return Err(WeightsError::Invalid(format!(
            "weight \"{}\": inventory is empty; hint: check the source and its filters",
            spec.name
        )));
    }

    let mut digests: Vec<Vec<Option<Digest>>> = listings
        .iter()
        .map(|l| l.files.iter().map(|f| f.digest.clone()).collect())
        .collect();
    let early = known_fingerprints(&listings);
    let early_status = early.as_ref().map(|f| PlanStatus::of(spec, f, previous));
    if early_status == Some(PlanStatus::Unchanged) {
        fill_from_previous(&listings, &slots, previous, &mut digests);
    }
    if opts.dry_run
        && let Some(status) = early_status
    {
        return Ok(dry(spec, status, notices));
    }

    let jobs = hash_jobs(&listings, &slots, &layers, &digests, previous, opts);
    let (results, raw_layers) = run_pass(jobs, &listings, &slots, &layers, opts)?;
    for r in results {
        digests[r.slot.0][r.slot.1] = Some(r.digest);
    }
    let fingerprints = fingerprints(&listings, &digests)?;
    let status = early_status.unwrap_or_else(|| PlanStatus::of(spec, &fingerprints, previous));
    if opts.dry_run {
        return Ok(dry(spec, status, notices));
    }
    ensure_in_store(&slots, &listings, &digests, opts)?;

    let files: Vec<LayerFile> = slots
        .iter()
        .map(|&(s, i)| {
            let f = &listings[s].files[i];
            (
                f.path.clone(),
                f.size,
                digests[s][i].clone().expect("every merged file is hashed"),
            )
        })
        .collect();
    let reusable = if status == PlanStatus::Unchanged {
        previous
            .map(|p| reusable_layers(p, kind))
            .unwrap_or_default()
    } else {
        HashMap::new()
    };
    let (layer_records, reused) =
        layer_records(&layers, &files, &raw_layers, &reusable, &opts.store)?;
    if reused > 0 {
        notices.push(format!(
            "weight \"{}\": reused {reused} layer digest(s) from weights.lock",
            spec.name
        ));
    }
    let entry = make_entry(
        spec,
        &fingerprints,
        &files,
        &layers,
        &layer_records,
        previous,
    );
    Ok(WeightImport {
        name: spec.name.clone(),
        status,
        entry: Some(entry),
        notices,
        layers_reused: reused,
    })
}

fn prefix_weight(name: &str, e: WeightsError) -> WeightsError {
    match e {
        WeightsError::Source(m) => WeightsError::Source(format!("weight \"{name}\": {m}")),
        WeightsError::Invalid(m) => WeightsError::Invalid(format!("weight \"{name}\": {m}")),
        other => other,
    }
}

fn dry(spec: &WeightSpec, status: PlanStatus, notices: Vec<String>) -> WeightImport {
    WeightImport {
        name: spec.name.clone(),
        status,
        entry: None,
        notices,
        layers_reused: 0,
    }
}

fn known_fingerprints(listings: &[Listing]) -> Option<Vec<String>> {
    listings
        .iter()
        .map(|l| match &l.fingerprint {
            Fingerprint::Known(f) => Some(f.clone()),
            _ => None,
        })
        .collect()
}

/// With unchanged fingerprints, digests of files the listing does not hash
/// (e.g. small HF files) are the recorded ones.
fn fill_from_previous(
    listings: &[Listing],
    slots: &[Slot],
    previous: Option<&LockEntry>,
    digests: &mut [Vec<Option<Digest>>],
) {
    let Some(previous) = previous else { return };
    let recorded: HashMap<&str, &FileRecord> = previous
        .files
        .iter()
        .map(|f| (f.path.as_str(), f))
        .collect();
    for &(s, i) in slots {
        let file = &listings[s].files[i];
        if digests[s][i].is_none()
            && let Some(rec) = recorded.get(file.path.as_str())
            && rec.size == file.size
        {
            digests[s][i] = Some(rec.digest.clone());
        }
    }
}

fn hash_jobs(
    listings: &[Listing],
    slots: &[Slot],
    layers: &[PlannedLayer],
    digests: &[Vec<Option<Digest>>],
    previous: Option<&LockEntry>,
    opts: &ImportOptions,
) -> Vec<HashJob> {
    let store = &opts.store;
    let ingest = !opts.dry_run;
    let raw_of: HashMap<usize, usize> = layers
        .iter()
        .enumerate()
        .filter(|(_, l)| l.compression == Compression::None && l.files.len() == 1)
        .map(|(li, l)| (l.files[0], li))
        .collect();
    let recorded: HashMap<&str, &FileRecord> = previous
        .map(|p| p.files.iter().map(|f| (f.path.as_str(), f)).collect())
        .unwrap_or_default();
    let mut jobs = Vec::new();
    let mut in_merged = std::collections::HashSet::new();
    for (m, &(s, i)) in slots.iter().enumerate() {
        in_merged.insert((s, i));
        let file = &listings[s].files[i];
        let needs_store = |d: &Digest| ingest && !store.contains(d, Some(file.size));
        let read = match &digests[s][i] {
            Some(d) => needs_store(d),
            None => true,
        };
        if !read {
            continue;
        }
        let likely_stored = recorded
            .get(file.path.as_str())
            .is_some_and(|r| r.size == file.size && store.contains(&r.digest, Some(r.size)));
        // A file the lockfile already knows is only hashed here; its layer
        // digest then comes from the lockfile (or, if it changed, from the
        // store), so an unchanged re-import costs one SHA-256 pass.
        jobs.push(HashJob {
            slot: (s, i),
            ingest: ingest && !likely_stored,
            raw_layer: if likely_stored {
                None
            } else {
                raw_of.get(&m).copied()
            },
        });
    }
    for (s, listing) in listings.iter().enumerate() {
        if listing.fingerprint == Fingerprint::SetDigestOfAll
            || listing.fingerprint == Fingerprint::ContentDigest
        {
            for (i, known) in digests[s].iter().enumerate() {
                if !in_merged.contains(&(s, i)) && known.is_none() {
                    jobs.push(HashJob {
                        slot: (s, i),
                        ingest: false,
                        raw_layer: None,
                    });
                }
            }
        }
    }
    jobs.sort_by_key(|j| std::cmp::Reverse(listings[j.slot.0].files[j.slot.1].size));
    jobs
}

/// Layer digests and sizes computed during the hashing pass, by layer index.
type ComputedLayers = HashMap<usize, (Digest, u64)>;

/// Runs the hashing pass. Downloads run first (network-bound, on rayon);
/// local files then go through [`ingest::run`], which reads each byte once
/// (file digest, raw-layer digest and store copy over one mapping) and keeps
/// every core busy across files. Gzip layers whose files are all ingested by
/// this pass are compressed as follow-ups as soon as their files are stored,
/// while the large files are still being hashed.
fn run_pass(
    jobs: Vec<HashJob>,
    listings: &[Listing],
    slots: &[Slot],
    layers: &[PlannedLayer],
    opts: &ImportOptions,
) -> Result<(Vec<HashResult>, ComputedLayers)> {
    let ingested: HashMap<Slot, bool> = jobs.iter().map(|j| (j.slot, j.ingest)).collect();
    let early_layers: Vec<usize> = layers
        .iter()
        .enumerate()
        .filter(|(_, l)| matches!(l.compression, Compression::Gzip(_)))
        .filter(|(_, l)| {
            l.files
                .iter()
                .all(|&m| ingested.get(&slots[m]) == Some(&true))
        })
        .map(|(li, _)| li)
        .collect();
    let early_slots: std::collections::HashSet<Slot> = early_layers
        .iter()
        .flat_map(|&li| layers[li].files.iter().map(|&m| slots[m]))
        .collect();
    let (mut local, remote): (Vec<HashJob>, Vec<HashJob>) = jobs.into_iter().partition(|j| {
        matches!(
            listings[j.slot.0].files[j.slot.1].fetch,
            Fetch::Local { .. }
        )
    });
    let mut results = run_url_jobs(&remote, listings, opts)?;
    // Bundle members first, so their compression overlaps the large files.
    local.sort_by_key(|j| !early_slots.contains(&j.slot));
    let local_jobs: Vec<LocalJob> = local.iter().map(|j| local_job(j, listings, opts)).collect();
    let job_of: HashMap<Slot, usize> = local.iter().enumerate().map(|(n, j)| (j.slot, n)).collect();
    let downloaded: HashMap<Slot, Digest> =
        results.iter().map(|r| (r.slot, r.digest.clone())).collect();
    let follow_ups = early_layers
        .iter()
        .map(|&li| bundle_follow_up(li, layers, slots, listings, &job_of, &downloaded, opts))
        .collect();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (outcomes, bundles) = ingest::run(&local_jobs, follow_ups, workers);
    for (job, outcome) in local.iter().zip(outcomes) {
        let outcome = outcome?;
        results.push(HashResult {
            slot: job.slot,
            layer: job
                .raw_layer
                .zip(outcome.layer)
                .map(|(li, (d, size))| (li, d, size)),
            digest: outcome.digest,
        });
    }
    let mut computed = ComputedLayers::new();
    for (li, found) in early_layers.iter().zip(bundles) {
        computed.insert(*li, found?);
    }
    for r in &results {
        if let Some((li, d, size)) = &r.layer {
            computed.insert(*li, (d.clone(), *size));
        }
    }
    Ok((results, computed))
}

/// The ingest job of a local file.
fn local_job(job: &HashJob, listings: &[Listing], opts: &ImportOptions) -> LocalJob {
    let file = &listings[job.slot.0].files[job.slot.1];
    let Fetch::Local { path, modified } = &file.fetch else {
        unreachable!("only local files are ingested through mappings")
    };
    LocalJob {
        path: path.clone(),
        label: file.path.clone(),
        size: file.size,
        modified: *modified,
        store: job.ingest.then(|| opts.store.clone()),
        layer_prefix: job.raw_layer.map(|_| raw_layer_prefix(file)),
    }
}

/// Computes a gzip bundle once its local files are stored; downloaded
/// members are already stored by then.
fn bundle_follow_up<'a>(
    li: usize,
    layers: &'a [PlannedLayer],
    slots: &'a [Slot],
    listings: &'a [Listing],
    job_of: &HashMap<Slot, usize>,
    downloaded: &'a HashMap<Slot, Digest>,
    opts: &'a ImportOptions,
) -> ingest::FollowUp<'a, (Digest, u64)> {
    let members: Vec<Slot> = layers[li].files.iter().map(|&m| slots[m]).collect();
    let needs: Vec<usize> = members
        .iter()
        .filter_map(|s| job_of.get(s).copied())
        .collect();
    let run = move |outcomes: Vec<ingest::LocalOutcome>| {
        let mut local = outcomes.into_iter();
        let files: Vec<LayerFile> = members
            .iter()
            .map(|slot| {
                let f = &listings[slot.0].files[slot.1];
                let digest = match downloaded.get(slot) {
                    Some(d) => d.clone(),
                    None => local.next().expect("one outcome per local member").digest,
                };
                (f.path.clone(), f.size, digest)
            })
            .collect();
        compute_layer(&files, &opts.store, layers[li].compression)
    };
    ingest::FollowUp {
        needs,
        run: Box::new(run),
    }
}

/// Downloads (and hashes, and stores) the files of remote sources.
fn run_url_jobs(
    jobs: &[HashJob],
    listings: &[Listing],
    opts: &ImportOptions,
) -> Result<Vec<HashResult>> {
    jobs.par_iter()
        .map(|job| {
            let file = &listings[job.slot.0].files[job.slot.1];
            let Fetch::Url { url, options } = &file.fetch else {
                unreachable!("only remote files are downloaded")
            };
            let store = job.ingest.then_some(&opts.store);
            let layer_prefix = job.raw_layer.map(|_| raw_layer_prefix(file));
            let (digest, layer) = hash_url(file, url, options, store, layer_prefix)?;
            Ok(HashResult {
                slot: job.slot,
                layer: job
                    .raw_layer
                    .zip(layer)
                    .map(|(li, (d, size))| (li, d, size)),
                digest,
            })
        })
        .collect()
}

/// The tar bytes before a single file's content in a one-file raw layer.
fn raw_layer_prefix(file: &ListedFile) -> Vec<u8> {
    let mut prefix = tar::dir_entries([file.path.as_str()]);
    prefix.extend(tar::entry_header(&file.path, file.size));
    prefix
}

fn changed_error(file: &ListedFile, path: &std::path::Path, what: &str) -> WeightsError {
    WeightsError::Integrity(format!(
        "{}: {what} while importing (file {}); hint: wait until the file is fully written, then run 'cogpack weights import' again",
        path.display(),
        file.path
    ))
}

/// Download sink: hashes, optionally feeds a layer hash and writes the store.
struct UrlSink<'a> {
    store: Option<&'a WeightStore>,
    writer: Option<StoreWriter>,
    hasher: Sha256,
    layer: Option<Sha256>,
    prefix: Option<&'a [u8]>,
}

impl BodySink for UrlSink<'_> {
    fn restart(&mut self) -> std::io::Result<()> {
        self.hasher = Sha256::new();
        self.layer = self.prefix.map(|p| {
            let mut h = Sha256::new();
            h.update(p);
            h
        });
        self.writer = match self.store {
            Some(store) => Some(store.writer().map_err(std::io::Error::other)?),
            None => None,
        };
        Ok(())
    }

    fn write_chunk(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.hasher.update(chunk);
        if let Some(layer) = &mut self.layer {
            layer.update(chunk);
        }
        match &mut self.writer {
            Some(w) => w.write_all(chunk),
            None => Ok(()),
        }
    }
}

fn hash_url(
    file: &ListedFile,
    url: &str,
    options: &http_source::HttpOptions,
    store: Option<&WeightStore>,
    layer_prefix: Option<Vec<u8>>,
) -> Result<(Digest, Option<(Digest, u64)>)> {
    let mut sink = UrlSink {
        store,
        writer: None,
        hasher: Sha256::new(),
        layer: None,
        prefix: layer_prefix.as_deref(),
    };
    let size = http_source::download(url, options, file.size, &mut sink).map_err(|e| {
        WeightsError::Source(format!(
            "downloading {url} ({}): {e}; hint: check the source is reachable and retry",
            file.path
        ))
    })?;
    let digest = Digest::from_sha256(sink.hasher.clone().finalize().into());
    let mismatch = size != file.size || file.digest.as_ref().is_some_and(|d| d != &digest);
    if mismatch {
        return Err(WeightsError::Integrity(format!(
            "{url}: content hash mismatch for {}: expected {} ({} bytes), got {digest} ({size} bytes); the upstream file changed during import or the download was corrupted; hint: run 'cogpack weights import' again",
            file.path,
            file.digest
                .as_ref()
                .map(|d| d.to_string())
                .unwrap_or_else(|| "listed size".into()),
            file.size
        )));
    }
    if let Some(writer) = sink.writer.take() {
        writer.commit()?;
    }
    let layer = sink
        .layer
        .take()
        .map(|h| ingest::finish_layer(h, layer_prefix.as_ref().map_or(0, |p| p.len()), size));
    Ok((digest, layer))
}

/// Copies into the store any merged file still missing there (files hashed
/// without copying because the lockfile suggested they were stored).
fn ensure_in_store(
    slots: &[Slot],
    listings: &[Listing],
    digests: &[Vec<Option<Digest>>],
    opts: &ImportOptions,
) -> Result<()> {
    slots.par_iter().try_for_each(|&(s, i)| {
        let file = &listings[s].files[i];
        let digest = digests[s][i].as_ref().expect("hashed");
        if opts.store.contains(digest, Some(file.size)) {
            return Ok(());
        }
        match &file.fetch {
            Fetch::Local { path, .. } => {
                let handle =
                    std::fs::File::open(path).map_err(|e| WeightsError::io("opening", path, e))?;
                opts.store
                    .put(digest, Some(file.size), std::io::BufReader::new(handle))
                    .map_err(|e| match e {
                        WeightsError::Integrity(_) => changed_error(file, path, "content changed"),
                        other => other,
                    })
            }
            Fetch::Url { url, options } => {
                hash_url(file, url, options, Some(&opts.store), None).map(|_| ())
            }
        }
    })
}

fn fingerprints(listings: &[Listing], digests: &[Vec<Option<Digest>>]) -> Result<Vec<String>> {
    listings
        .iter()
        .zip(digests)
        .map(|(listing, digests)| match &listing.fingerprint {
            Fingerprint::Known(f) => Ok(f.clone()),
            Fingerprint::SetDigestOfAll => {
                let all: Vec<(&str, &Digest)> = listing
                    .files
                    .iter()
                    .zip(digests)
                    .map(|(f, d)| (f.path.as_str(), d.as_ref().expect("hashed")))
                    .collect();
                Ok(set_digest(all).to_string())
            }
            Fingerprint::ContentDigest => Ok(digests
                .first()
                .and_then(|d| d.as_ref())
                .map(|d| d.to_string())
                .expect("single-file sources are hashed")),
        })
        .collect()
}

/// The file-set key cog matches layers by: `path\0digest` lines, path-sorted.
fn file_set_key<'a>(files: impl IntoIterator<Item = (&'a str, &'a Digest)>) -> String {
    let mut lines: Vec<String> = files
        .into_iter()
        .map(|(p, d)| format!("{p}\x00{d}"))
        .collect();
    lines.sort();
    lines.join("\n")
}

/// Recorded layers that may be reused, by file-set key.
fn reusable_layers(previous: &LockEntry, kind: EnvelopeKind) -> HashMap<String, LayerRecord> {
    let mut by_layer: BTreeMap<&Digest, Vec<(&str, &Digest)>> = BTreeMap::new();
    for f in &previous.files {
        by_layer
            .entry(&f.layer)
            .or_default()
            .push((f.path.as_str(), &f.digest));
    }
    previous
        .layers
        .iter()
        .filter(|l| kind.trusts(&l.media_type))
        .filter_map(|l| {
            let files = by_layer.get(&l.digest)?;
            Some((file_set_key(files.iter().copied()), l.clone()))
        })
        .collect()
}

fn layer_records(
    layers: &[PlannedLayer],
    files: &[LayerFile],
    raw: &HashMap<usize, (Digest, u64)>,
    reusable: &HashMap<String, LayerRecord>,
    store: &WeightStore,
) -> Result<(Vec<LayerRecord>, usize)> {
    let results: Vec<(LayerRecord, bool)> = layers
        .par_iter()
        .enumerate()
        .map(|(li, layer)| {
            let members: Vec<LayerFile> = layer.files.iter().map(|&i| files[i].clone()).collect();
            let media_type = layer.compression.media_type().to_string();
            let size_uncompressed = members.iter().map(|f| f.1).sum();
            let key = file_set_key(members.iter().map(|(p, _, d)| (p.as_str(), d)));
            if let Some(rec) = reusable.get(&key).filter(|r| r.media_type == media_type) {
                return Ok((rec.clone(), true));
            }
            let (digest, size) = match raw.get(&li) {
                Some(found) => found.clone(),
                None => compute_layer(&members, store, layer.compression)?,
            };
            Ok((
                LayerRecord {
                    digest,
                    media_type,
                    size,
                    size_uncompressed,
                },
                false,
            ))
        })
        .collect::<Result<_>>()?;
    let reused = results.iter().filter(|(_, r)| *r).count();
    Ok((results.into_iter().map(|(l, _)| l).collect(), reused))
}

fn make_entry(
    spec: &WeightSpec,
    fingerprints: &[String],
    files: &[LayerFile],
    layers: &[PlannedLayer],
    records: &[LayerRecord],
    previous: Option<&LockEntry>,
) -> LockEntry {
    let mut file_records: Vec<FileRecord> = Vec::with_capacity(files.len());
    for (layer, record) in layers.iter().zip(records) {
        for &i in &layer.files {
            let (path, size, digest) = &files[i];
            file_records.push(FileRecord {
                path: path.clone(),
                size: *size,
                digest: digest.clone(),
                layer: record.digest.clone(),
            });
        }
    }
    file_records.sort_by(|a, b| a.path.cmp(&b.path));
    let mut layer_records = records.to_vec();
    layer_records.sort_by(|a, b| a.digest.cmp(&b.digest));
    let set = set_digest(file_records.iter().map(|f| (f.path.as_str(), &f.digest)));
    let mut entry = LockEntry {
        name: spec.name.clone(),
        target: spec.target.clone(),
        sources: spec
            .sources
            .iter()
            .zip(fingerprints)
            .map(|(s, f)| LockSource {
                uri: s.uri.clone(),
                fingerprint: f.clone(),
                include: s.include.clone(),
                exclude: s.exclude.clone(),
            })
            .collect(),
        imported_at: now_rfc3339(),
        digest: Digest::of_bytes(b""),
        set_digest: set,
        size: layer_records.iter().map(|l| l.size_uncompressed).sum(),
        size_compressed: layer_records.iter().map(|l| l.size).sum(),
        files: file_records,
        layers: layer_records,
    };
    entry.digest = WeightArtifact::of_entry(&entry).digest();
    if let Some(prev) = previous
        && entry.same_content(prev)
    {
        entry.imported_at = prev.imported_at.clone();
    }
    entry
}

/// UTC now as RFC 3339 with sub-second digits (Go's `RFC3339Nano`).
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}
