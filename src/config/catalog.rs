//! The base-image catalog: cog's CUDA / PyTorch / TensorFlow compatibility
//! matrices (spec §2) and the base-image facts table (§3), loaded from the
//! data files in `base-images/` that are compiled into the binary.

use super::version;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// The replicate/cog commit the matrices were taken from.
pub const SOURCE_COMMIT: &str = "6110c912377d4ded0f57165d305821a14a9a4418";

/// cog's `MinimumCUDAVersion` for cog-base candidates.
pub const MINIMUM_COG_BASE_CUDA: &str = "11.6";
/// cog's `MinimumPythonVersion` for cog-base candidates.
pub const MINIMUM_COG_BASE_PYTHON: &str = "3.10";
/// cog's `MinimumTorchVersion` for cog-base candidates.
pub const MINIMUM_COG_BASE_TORCH: &str = "1.13.1";
/// CUDA used for GPU models that pin neither torch nor tensorflow.
pub const DEFAULT_CUDA: &str = "11.8";

const CUDA_TOML: &str = include_str!("../../base-images/cuda.toml");
const TORCH_TOML: &str = include_str!("../../base-images/torch.toml");
const TF_TOML: &str = include_str!("../../base-images/tf.toml");
const BASES_TOML: &str = include_str!("../../base-images/bases.toml");

/// One `nvidia/cuda` devel image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CudaBaseImage {
    /// Tag on `nvidia/cuda`.
    pub tag: String,
    /// Full CUDA version, e.g. `11.8.0`.
    pub cuda: String,
    /// cuDNN major version, e.g. `8`.
    pub cudnn: String,
    /// Ubuntu release, e.g. `22.04`.
    pub ubuntu: String,
}

/// One PyTorch wheel variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TorchRow {
    /// torch version with local tag, e.g. `2.3.0+cu121`.
    pub torch: String,
    /// Matching torchvision version (may carry a local tag).
    pub torchvision: String,
    /// Matching torchaudio version.
    pub torchaudio: String,
    /// `--find-links` URL (empty in every current row).
    pub find_links: String,
    /// `--extra-index-url` URL, empty for default-index builds.
    pub extra_index_url: String,
    /// CUDA `M.m` the wheel was built for; `None` for CPU builds.
    pub cuda: Option<String>,
    /// Supported Pythons (`3.10`, …).
    pub pythons: Vec<String>,
}

impl TorchRow {
    /// torch version without the `+tag`.
    pub fn torch_version(&self) -> &str {
        version::strip_modifier(&self.torch)
    }
    /// torchvision version without the `+tag`.
    pub fn torchvision_version(&self) -> &str {
        version::strip_modifier(&self.torchvision)
    }
}

/// One TensorFlow release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TfRow {
    /// TensorFlow version.
    pub tf: String,
    /// CPU package pin.
    pub cpu_package: String,
    /// GPU package pin.
    pub gpu_package: String,
    /// CUDA `M.m`.
    pub cuda: String,
    /// cuDNN major.
    pub cudnn: String,
    /// Supported Pythons.
    pub pythons: Vec<String>,
}

/// A cog-base candidate (§3.3): empty strings are absent components.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseImageConfiguration {
    /// CUDA `M.m` or empty.
    pub cuda: String,
    /// Python `M.m`.
    pub python: String,
    /// torch version as in the matrix (may carry `+cu118`) or empty.
    pub torch: String,
}

#[derive(Deserialize)]
struct Table {
    rows: Vec<Vec<String>>,
}

fn load_table(text: &str, name: &str, width: usize) -> Vec<Vec<String>> {
    let table: Table = toml::from_str(text)
        .unwrap_or_else(|e| panic!("embedded base-images/{name} is not valid TOML: {e}"));
    for row in &table.rows {
        assert_eq!(
            row.len(),
            width,
            "embedded base-images/{name}: bad row {row:?}"
        );
    }
    table.rows
}

fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}

/// Every `nvidia/cuda` image cog knows, in file order.
pub fn cuda_base_images() -> &'static [CudaBaseImage] {
    static CELL: OnceLock<Vec<CudaBaseImage>> = OnceLock::new();
    CELL.get_or_init(|| {
        load_table(CUDA_TOML, "cuda.toml", 4)
            .into_iter()
            .map(|r| CudaBaseImage {
                tag: r[0].clone(),
                cuda: r[1].clone(),
                cudnn: r[2].clone(),
                ubuntu: r[3].clone(),
            })
            .collect()
    })
}

/// Every torch row as published (including rows for CUDAs without a base image).
pub fn torch_matrix_unfiltered() -> &'static [TorchRow] {
    static CELL: OnceLock<Vec<TorchRow>> = OnceLock::new();
    CELL.get_or_init(|| {
        load_table(TORCH_TOML, "torch.toml", 7)
            .into_iter()
            .map(|r| TorchRow {
                torch: r[0].clone(),
                torchvision: r[1].clone(),
                torchaudio: r[2].clone(),
                find_links: r[3].clone(),
                extra_index_url: r[4].clone(),
                cuda: (!r[5].is_empty()).then(|| r[5].clone()),
                pythons: words(&r[6]),
            })
            .collect()
    })
}

/// The torch matrix cog uses: CPU rows plus rows whose CUDA matches a CUDA base image.
pub fn torch_matrix() -> &'static [TorchRow] {
    static CELL: OnceLock<Vec<TorchRow>> = OnceLock::new();
    CELL.get_or_init(|| {
        torch_matrix_unfiltered()
            .iter()
            .filter(|row| match &row.cuda {
                None => true,
                Some(c) => cuda_base_images()
                    .iter()
                    .any(|i| version::matches(c, &i.cuda)),
            })
            .cloned()
            .collect()
    })
}

/// The TensorFlow matrix with CUDA reduced to `M.m` and cuDNN to its major.
pub fn tf_matrix() -> &'static [TfRow] {
    static CELL: OnceLock<Vec<TfRow>> = OnceLock::new();
    CELL.get_or_init(|| {
        load_table(TF_TOML, "tf.toml", 6)
            .into_iter()
            .map(|r| TfRow {
                tf: r[0].clone(),
                cpu_package: r[1].clone(),
                gpu_package: r[2].clone(),
                cuda: version::strip_patch(&r[3]),
                cudnn: version::Version::parse(&r[4])
                    .map(|v| v.major.to_string())
                    .unwrap_or_else(|| r[4].clone()),
                pythons: words(&r[5]),
            })
            .collect()
    })
}

/// cuDNN majors of the CUDA base images matching `cuda`, in file order.
pub fn compatible_cudnns_for_cuda(cuda: &str) -> Vec<String> {
    cuda_base_images()
        .iter()
        .filter(|i| version::matches(cuda, &i.cuda))
        .map(|i| i.cudnn.clone())
        .collect()
}

/// The highest cuDNN among CUDA base images matching `cuda`, or cog's
/// `CUDA X is not supported by Cog`.
pub fn latest_cudnn_for_cuda(cuda: &str) -> Result<String, String> {
    let mut cudnns = compatible_cudnns_for_cuda(cuda);
    cudnns.sort_by(|a, b| {
        if version::greater(a, b) {
            std::cmp::Ordering::Less
        } else if version::greater(b, a) {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        }
    });
    cudnns
        .into_iter()
        .next()
        .ok_or_else(|| format!("CUDA {cuda} is not supported by Cog"))
}

/// `nvidia/cuda:<tag>` for a CUDA / cuDNN pair (§2.5 `CUDABaseImageTag`):
/// the matching image with the highest CUDA, then the highest Ubuntu.
pub fn cuda_base_image_tag(cuda: &str, cudnn: &str) -> Result<String, String> {
    let mut images: Vec<&CudaBaseImage> = cuda_base_images()
        .iter()
        .filter(|i| version::matches(cuda, &i.cuda) && i.cudnn == cudnn)
        .collect();
    images.sort_by(|a, b| {
        let va = version::Version::parse(&a.cuda);
        let vb = version::Version::parse(&b.cuda);
        let by_cuda = match (va, vb) {
            (Some(x), Some(y)) => y.numeric_cmp(&x),
            _ => std::cmp::Ordering::Equal,
        };
        by_cuda.then_with(|| b.ubuntu.cmp(&a.ubuntu))
    });
    images
        .first()
        .map(|i| format!("nvidia/cuda:{}", i.tag))
        .ok_or_else(|| format!("no matching base image for CUDA {cuda} and CuDNN {cudnn}"))
}

/// Splits `2.0.1+cu118` into (`11.8`, `2.0.1`); (``, input) when there is no `+cuNNN`.
fn cuda_from_torch_local_tag(ver: &str) -> (String, String) {
    let parts: Vec<&str> = ver.split('+').collect();
    if parts.len() <= 1 {
        return (String::new(), ver.to_string());
    }
    let last = parts[parts.len() - 1];
    let Some(digits) = last.strip_prefix("cu") else {
        return (String::new(), ver.to_string());
    };
    if digits.len() < 2 || !digits.is_char_boundary(digits.len() - 1) {
        return (String::new(), ver.to_string());
    }
    let (head, tail) = digits.split_at(digits.len() - 1);
    (format!("{head}.{tail}"), parts[0].to_string())
}

/// CUDA versions torch `ver` is published for (§2.5 step 2), sorted as text.
/// An empty `ver` is cog's `torch version must be specified when using CUDA`.
pub fn cudas_from_torch(ver: &str) -> Result<Vec<String>, String> {
    if ver.is_empty() {
        return Err("torch version must be specified when using CUDA".to_string());
    }
    let (tag_cuda, plain) = cuda_from_torch_local_tag(ver);
    if !tag_cuda.is_empty() {
        let hit = torch_matrix().iter().find(|row| {
            row.cuda.as_deref() == Some(tag_cuda.as_str())
                && version::matches(&plain, row.torch_version())
        });
        if let Some(row) = hit {
            return Ok(vec![row.cuda.clone().unwrap_or_default()]);
        }
    }
    let mut cudas: Vec<String> = torch_matrix()
        .iter()
        .filter(|row| version::matches(&plain, row.torch_version()))
        .filter_map(|row| row.cuda.clone())
        .collect();
    cudas.sort();
    Ok(cudas)
}

/// (CUDA `M.m`, cuDNN major) for an exactly matching TensorFlow version.
pub fn cuda_from_tf(ver: &str) -> Option<(String, String)> {
    tf_matrix()
        .iter()
        .find(|row| row.tf == ver)
        .map(|row| (row.cuda.clone(), row.cudnn.clone()))
}

/// The highest of a list of CUDA versions (first wins on ties).
pub fn latest_cuda_from(cudas: &[String]) -> Option<String> {
    let mut latest: Option<&String> = None;
    for cuda in cudas {
        match latest {
            Some(l) if !version::greater(cuda, l) => {}
            _ => latest = Some(cuda),
        }
    }
    latest.cloned()
}

/// Every cog-base candidate (§3.3): torch rows, then python × CUDA, then python alone.
pub fn base_image_configurations() -> &'static [BaseImageConfiguration] {
    static CELL: OnceLock<Vec<BaseImageConfiguration>> = OnceLock::new();
    CELL.get_or_init(compute_base_image_configurations)
}

fn compute_base_image_configurations() -> Vec<BaseImageConfiguration> {
    let mut configs = Vec::new();
    let mut pythons: Vec<String> = Vec::new();
    let mut cudas: Vec<String> = Vec::new();
    for row in torch_matrix() {
        for python in &row.pythons {
            if !version::greater_or_equal(python, MINIMUM_COG_BASE_PYTHON)
                || !version::greater_or_equal(&row.torch, MINIMUM_COG_BASE_TORCH)
            {
                continue;
            }
            match &row.cuda {
                None => configs.push(BaseImageConfiguration {
                    cuda: String::new(),
                    python: python.clone(),
                    torch: row.torch.clone(),
                }),
                Some(cuda) if version::greater_or_equal(cuda, MINIMUM_COG_BASE_CUDA) => {
                    configs.push(BaseImageConfiguration {
                        cuda: cuda.clone(),
                        python: python.clone(),
                        torch: row.torch.clone(),
                    });
                    push_unique(&mut pythons, python);
                    push_unique(&mut cudas, cuda);
                }
                Some(_) => {}
            }
        }
    }
    for python in &pythons {
        for cuda in &cudas {
            configs.push(BaseImageConfiguration {
                cuda: cuda.clone(),
                python: python.clone(),
                torch: String::new(),
            });
        }
    }
    for python in &pythons {
        configs.push(BaseImageConfiguration {
            cuda: String::new(),
            python: python.clone(),
            torch: String::new(),
        });
    }
    configs
}

fn push_unique(list: &mut Vec<String>, item: &str) {
    if !list.iter().any(|x| x == item) {
        list.push(item.to_string());
    }
}

// ---------------------------------------------------------------------------
// Base-image facts table.

#[derive(Deserialize)]
struct Family {
    #[serde(default)]
    os: String,
    #[serde(default)]
    distro_minor_tags: String,
    #[serde(default)]
    codename_minor_tags: String,
    #[serde(default)]
    glibc_minor_tags: String,
    python_executable: String,
    site_packages: String,
    python_on_path: bool,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    env: Vec<(String, String)>,
}

#[derive(Deserialize)]
struct BasesFile {
    known_cog_base_tags: Vec<String>,
    cog_base_apt_packages: Vec<String>,
    ubuntu_glibc: BTreeMap<String, String>,
    python_slim: Family,
    nvidia_cuda: Family,
    cog_base_cpu: Family,
    cog_base_cuda: Family,
    cog_base_cuda13: Family,
}

fn bases() -> &'static BasesFile {
    static CELL: OnceLock<BasesFile> = OnceLock::new();
    CELL.get_or_init(|| {
        toml::from_str(BASES_TOML)
            .unwrap_or_else(|e| panic!("embedded base-images/bases.toml is not valid: {e}"))
    })
}

/// The 27 apt packages every cog-base image carries (§3.6).
pub fn cog_base_apt_packages() -> &'static [String] {
    &bases().cog_base_apt_packages
}

/// cog-base tags known to be published (§3.5).
pub fn known_cog_base_tags() -> &'static [String] {
    &bases().known_cog_base_tags
}

/// Which of cog's three base paths an image belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum BaseKind {
    /// Path A: `python:<py>-slim`.
    PythonSlim,
    /// Path B: `nvidia/cuda:<tag>`.
    NvidiaCuda,
    /// Path C: `<registry>/cog-base:<tag>`.
    CogBase,
}

/// What cogpack knows about a base image without running it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BaseImageInfo {
    /// The reference asked about (without a digest).
    pub reference: String,
    /// Which base path it belongs to.
    pub kind: BaseKind,
    /// Distribution id (`debian`, `ubuntu`).
    pub os: String,
    /// Distribution release (`13`, `22.04`), empty when it depends on the exact tag.
    pub distro_version: String,
    /// Release code name when known (`trixie`).
    pub codename: String,
    /// glibc version, empty when it depends on the exact tag.
    pub glibc: String,
    /// Absolute path of the Python interpreter; `None` when the image has none
    /// (nvidia/cuda).
    pub python_executable: Option<String>,
    /// Absolute site-packages directory; `None` when unknown without the image.
    pub site_packages: Option<String>,
    /// Whether a plain `python` command is on `PATH`.
    pub python_on_path: bool,
    /// ENTRYPOINT the image brings.
    pub entrypoint: Vec<String>,
    /// CMD the image brings.
    pub cmd: Vec<String>,
    /// Environment the image brings (the variables cogpack relies on), in order.
    pub env: Vec<(String, String)>,
    /// Python `M.m` the image is for, when known.
    pub python: Option<String>,
    /// CUDA version, when a CUDA image.
    pub cuda: Option<String>,
    /// torch version preinstalled (cog-base), when any.
    pub torch: Option<String>,
}

struct Substitutions<'a> {
    py: &'a str,
    py_minor: &'a str,
    cuda: &'a str,
}

fn fill(template: &str, subs: &Substitutions<'_>) -> String {
    template
        .replace("{py_minor}", subs.py_minor)
        .replace("{py}", subs.py)
        .replace("{cuda}", subs.cuda)
}

fn non_empty(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

fn info_from_family(
    reference: &str,
    kind: BaseKind,
    family: &Family,
    subs: &Substitutions<'_>,
) -> BaseImageInfo {
    BaseImageInfo {
        reference: reference.to_string(),
        kind,
        os: family.os.clone(),
        distro_version: String::new(),
        codename: String::new(),
        glibc: String::new(),
        python_executable: non_empty(fill(&family.python_executable, subs)),
        site_packages: non_empty(fill(&family.site_packages, subs)),
        python_on_path: family.python_on_path,
        entrypoint: family.entrypoint.clone(),
        cmd: family.cmd.clone(),
        env: family
            .env
            .iter()
            .map(|(k, v)| (k.clone(), fill(v, subs)))
            .collect(),
        python: non_empty(subs.py_minor.to_string()),
        cuda: non_empty(subs.cuda.to_string()),
        torch: None,
    }
}

/// Facts about a base image reference (`python:3.12-slim`,
/// `nvidia/cuda:12.6.3-cudnn-devel-ubuntu24.04`, `r8.im/cog-base:cuda12.4-python3.12-torch2.5.1`);
/// `None` for images outside cog's three base families.
pub fn base_image_info(reference: &str) -> Option<BaseImageInfo> {
    let reference = reference.split('@').next().unwrap_or(reference);
    let short = [
        "docker.io/library/",
        "index.docker.io/library/",
        "docker.io/",
        "index.docker.io/",
    ]
    .iter()
    .find_map(|prefix| reference.strip_prefix(prefix))
    .unwrap_or(reference);
    if let Some(py) = short
        .strip_prefix("python:")
        .and_then(|t| t.strip_suffix("-slim"))
    {
        return python_slim_info(reference, py);
    }
    if let Some(tag) = short.strip_prefix("nvidia/cuda:") {
        return nvidia_cuda_info(reference, tag);
    }
    let (repo, tag) = reference.rsplit_once(':')?;
    if repo == "cog-base" || repo.ends_with("/cog-base") {
        return cog_base_info(reference, tag);
    }
    None
}

fn python_slim_info(reference: &str, py: &str) -> Option<BaseImageInfo> {
    let parsed = version::Version::parse(py)?;
    let py_minor = format!("{}.{}", parsed.major, parsed.minor);
    let family = &bases().python_slim;
    let subs = Substitutions {
        py,
        py_minor: &py_minor,
        cuda: "",
    };
    let mut info = info_from_family(reference, BaseKind::PythonSlim, family, &subs);
    if parsed.patch.is_none() {
        info.distro_version = family.distro_minor_tags.clone();
        info.codename = family.codename_minor_tags.clone();
        info.glibc = family.glibc_minor_tags.clone();
    }
    Some(info)
}

fn nvidia_cuda_info(reference: &str, tag: &str) -> Option<BaseImageInfo> {
    let image = cuda_base_images().iter().find(|i| i.tag == tag)?;
    let subs = Substitutions {
        py: "",
        py_minor: "",
        cuda: &image.cuda,
    };
    let mut info = info_from_family(reference, BaseKind::NvidiaCuda, &bases().nvidia_cuda, &subs);
    fill_ubuntu(&mut info, &image.ubuntu);
    Some(info)
}

fn fill_ubuntu(info: &mut BaseImageInfo, ubuntu: &str) {
    info.os = "ubuntu".to_string();
    info.distro_version = ubuntu.to_string();
    info.glibc = bases()
        .ubuntu_glibc
        .get(ubuntu)
        .cloned()
        .unwrap_or_default();
}

/// Components of a cog-base tag: (cuda, python, torch), empty when absent.
pub fn parse_cog_base_tag(tag: &str) -> Option<(String, String, String)> {
    let (mut cuda, mut python, mut torch) = (String::new(), String::new(), String::new());
    for part in tag.split('-') {
        if let Some(v) = part.strip_prefix("cuda") {
            cuda = v.to_string();
        } else if let Some(v) = part.strip_prefix("python") {
            python = v.to_string();
        } else if let Some(v) = part.strip_prefix("torch") {
            torch = v.to_string();
        } else {
            return None;
        }
    }
    (!python.is_empty()).then_some((cuda, python, torch))
}

fn cog_base_info(reference: &str, tag: &str) -> Option<BaseImageInfo> {
    let (cuda, python, torch) = parse_cog_base_tag(tag)?;
    version::Version::parse(&python)?;
    if cuda.is_empty() {
        let subs = Substitutions {
            py: &python,
            py_minor: &python,
            cuda: "",
        };
        let family = &bases().python_slim;
        let mut info = info_from_family(reference, BaseKind::CogBase, &bases().cog_base_cpu, &subs);
        info.os = family.os.clone();
        info.distro_version = family.distro_minor_tags.clone();
        info.codename = family.codename_minor_tags.clone();
        info.glibc = family.glibc_minor_tags.clone();
        info.torch = non_empty(torch);
        return Some(info);
    }
    let cudnn = latest_cudnn_for_cuda(&cuda).ok()?;
    let cuda_tag = cuda_base_image_tag(&cuda, &cudnn).ok()?;
    let image = cuda_base_images()
        .iter()
        .find(|i| format!("nvidia/cuda:{}", i.tag) == cuda_tag)?;
    let family = if version::greater_or_equal(&cuda, "13.0") {
        &bases().cog_base_cuda13
    } else {
        &bases().cog_base_cuda
    };
    let subs = Substitutions {
        py: &python,
        py_minor: &python,
        cuda: &image.cuda,
    };
    let mut info = info_from_family(reference, BaseKind::CogBase, family, &subs);
    fill_ubuntu(&mut info, &image.ubuntu);
    info.cuda = Some(cuda);
    info.torch = non_empty(torch);
    Some(info)
}
