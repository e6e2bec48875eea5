//! The embedded catalog (spec §2, §3.3–3.6): matrix sizes and rows, cog-base
//! candidates, CUDA base tags and the base-image facts table.

use cogpack::config::catalog::{self, BaseKind};

#[test]
fn matrices_have_cogs_rows() {
    assert_eq!(
        catalog::SOURCE_COMMIT,
        "6110c912377d4ded0f57165d305821a14a9a4418"
    );
    assert_eq!(catalog::cuda_base_images().len(), 83);
    assert_eq!(catalog::torch_matrix_unfiltered().len(), 96);
    assert_eq!(
        catalog::torch_matrix().len(),
        93,
        "rows for CUDAs without base images (cu102) are dropped"
    );
    assert!(
        catalog::torch_matrix()
            .iter()
            .all(|r| r.cuda.as_deref() != Some("10.2"))
    );
    let first = &catalog::torch_matrix()[0];
    assert_eq!(
        (
            first.torch.as_str(),
            first.torchvision.as_str(),
            first.torchaudio.as_str()
        ),
        ("1.11.0+cpu", "0.12.0+cpu", "0.11.0")
    );
    assert_eq!(
        first.extra_index_url,
        "https://download.pytorch.org/whl/cpu/"
    );
    assert_eq!(first.cuda, None);
    assert_eq!(first.pythons, vec!["3.10"]);
    assert_eq!(
        catalog::cuda_from_tf("2.4.0"),
        Some(("11.0".to_string(), "8".to_string()))
    );
    assert_eq!(
        catalog::cuda_from_tf("2.16.1"),
        Some(("12.3".to_string(), "8".to_string()))
    );
    assert_eq!(
        catalog::cuda_from_tf("2.18.0"),
        Some(("12.5".to_string(), "9".to_string()))
    );
    assert_eq!(
        catalog::cuda_from_tf("2.16"),
        None,
        "tensorflow lookups need the exact version"
    );
    let tf = catalog::tf_matrix()
        .iter()
        .find(|r| r.tf == "2.12.0")
        .expect("2.12.0");
    assert_eq!(tf.gpu_package, "tensorflow==2.12.0");
}

#[test]
fn cuda_helpers() {
    assert_eq!(
        catalog::cuda_base_image_tag("11.8", "8").as_deref(),
        Ok("nvidia/cuda:11.8.0-cudnn8-devel-ubuntu22.04")
    );
    assert_eq!(
        catalog::cuda_base_image_tag("12.6", "9").as_deref(),
        Ok("nvidia/cuda:12.6.3-cudnn-devel-ubuntu24.04")
    );
    assert_eq!(
        catalog::cuda_base_image_tag("12.6.1", "9").as_deref(),
        Ok("nvidia/cuda:12.6.1-cudnn-devel-ubuntu24.04")
    );
    assert_eq!(
        catalog::cuda_base_image_tag("12.3", "8"),
        Err("no matching base image for CUDA 12.3 and CuDNN 8".to_string())
    );
    assert_eq!(catalog::latest_cudnn_for_cuda("12.3").as_deref(), Ok("9"));
    assert_eq!(
        catalog::latest_cudnn_for_cuda("10.0"),
        Err("CUDA 10.0 is not supported by Cog".to_string())
    );
    assert_eq!(
        catalog::cudas_from_torch("2.6.0").expect("known"),
        vec!["11.8", "12.4", "12.6"]
    );
    assert_eq!(
        catalog::cudas_from_torch("2.0.1+cu118").expect("tagged"),
        vec!["11.8"]
    );
    assert_eq!(
        catalog::cudas_from_torch(""),
        Err("torch version must be specified when using CUDA".to_string())
    );
    assert_eq!(
        catalog::latest_cuda_from(&["11.8".into(), "12.10".into(), "12.9".into()]).as_deref(),
        Some("12.10")
    );
}

#[test]
fn cog_base_candidates_match_spec_counts() {
    let all = catalog::base_image_configurations();
    // Spec §3.3 quotes 325 (74/201/45/5) and a CUDA 11.6 group. cog's code
    // compares versions with their `+tag` (`GreaterOrEqual("1.13.1+cpu", "1.13.1")`
    // is false), so every torch 1.13.1 row — all tagged — is left out, and with
    // them the only CUDA 11.6 rows: 73/199/40/5 = 317, recomputed independently
    // from cog's JSON with the rules of cog pkg/util/version.
    assert_eq!(all.len(), 317);
    let cpu_torch = all
        .iter()
        .filter(|c| c.cuda.is_empty() && !c.torch.is_empty())
        .count();
    let cuda_torch = all
        .iter()
        .filter(|c| !c.cuda.is_empty() && !c.torch.is_empty())
        .count();
    let python_cuda = all
        .iter()
        .filter(|c| !c.cuda.is_empty() && c.torch.is_empty())
        .count();
    let python_only = all
        .iter()
        .filter(|c| c.cuda.is_empty() && c.torch.is_empty())
        .count();
    assert_eq!(
        (cpu_torch, cuda_torch, python_cuda, python_only),
        (73, 199, 40, 5)
    );
    let mut cudas: Vec<&str> = all
        .iter()
        .filter(|c| c.torch.is_empty() && !c.cuda.is_empty())
        .map(|c| c.cuda.as_str())
        .collect();
    cudas.sort();
    cudas.dedup();
    assert_eq!(
        cudas,
        vec![
            "11.7", "11.8", "12.1", "12.4", "12.6", "12.8", "12.9", "13.0"
        ]
    );
    let mut pythons: Vec<&str> = all
        .iter()
        .filter(|c| c.cuda.is_empty() && c.torch.is_empty())
        .map(|c| c.python.as_str())
        .collect();
    pythons.sort();
    assert_eq!(pythons, vec!["3.10", "3.11", "3.12", "3.13", "3.14"]);
}

#[test]
fn cog_base_package_list_and_known_tags() {
    let packages = catalog::cog_base_apt_packages();
    assert_eq!(packages.len(), 27);
    assert_eq!(
        packages.first().map(String::as_str),
        Some("build-essential")
    );
    assert_eq!(packages.last().map(String::as_str), Some("zstd"));
    assert!(packages.iter().any(|p| p == "libgl1"));
    let tags = catalog::known_cog_base_tags();
    assert_eq!(tags.len(), 10);
    assert!(tags.iter().any(|t| t == "cuda12.8-python3.12-torch2.7.1"));
}

#[test]
fn python_slim_facts() {
    let info = catalog::base_image_info("python:3.12-slim").expect("known");
    assert_eq!(info.kind, BaseKind::PythonSlim);
    assert_eq!(
        (
            info.os.as_str(),
            info.distro_version.as_str(),
            info.codename.as_str(),
            info.glibc.as_str()
        ),
        ("debian", "13", "trixie", "2.41")
    );
    assert_eq!(
        info.python_executable.as_deref(),
        Some("/usr/local/bin/python3.12")
    );
    assert_eq!(
        info.site_packages.as_deref(),
        Some("/usr/local/lib/python3.12/site-packages")
    );
    assert!(info.python_on_path);
    assert!(info.entrypoint.is_empty());
    assert_eq!(info.cmd, vec!["python3"]);
    assert_eq!(
        info.env[0],
        (
            "PATH".to_string(),
            "/usr/local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
                .to_string()
        )
    );
    let patch = catalog::base_image_info("python:3.11.9-slim").expect("patch tag");
    assert_eq!(
        patch.python_executable.as_deref(),
        Some("/usr/local/bin/python3.11")
    );
    assert_eq!(patch.glibc, "", "distribution of patch tags is not assumed");
    assert_eq!(patch.python.as_deref(), Some("3.11"));
}

#[test]
fn nvidia_cuda_facts() {
    let info =
        catalog::base_image_info("nvidia/cuda:11.8.0-cudnn8-devel-ubuntu22.04").expect("known");
    assert_eq!(info.kind, BaseKind::NvidiaCuda);
    assert_eq!(
        (
            info.os.as_str(),
            info.distro_version.as_str(),
            info.glibc.as_str()
        ),
        ("ubuntu", "22.04", "2.35")
    );
    assert_eq!(info.python_executable, None);
    assert!(!info.python_on_path);
    assert_eq!(info.entrypoint, vec!["/opt/nvidia/nvidia_entrypoint.sh"]);
    assert!(
        info.env
            .contains(&("CUDA_VERSION".to_string(), "11.8.0".to_string()))
    );
    for image in catalog::cuda_base_images() {
        let info =
            catalog::base_image_info(&format!("nvidia/cuda:{}", image.tag)).expect("every tag");
        assert!(!info.glibc.is_empty(), "{} has no glibc", image.tag);
    }
    assert_eq!(catalog::base_image_info("nvidia/cuda:99.0-unknown"), None);
    assert_eq!(catalog::base_image_info("debian:bookworm"), None);
    let full = catalog::base_image_info("docker.io/nvidia/cuda:12.6.3-cudnn-devel-ubuntu24.04")
        .expect("full name");
    assert_eq!(
        (full.distro_version.as_str(), full.glibc.as_str()),
        ("24.04", "2.39")
    );
    let slim =
        catalog::base_image_info("docker.io/library/python:3.13-slim@sha256:00").expect("digest");
    assert_eq!(
        slim.python_executable.as_deref(),
        Some("/usr/local/bin/python3.13")
    );
}

#[test]
fn cog_base_facts() {
    let cpu = catalog::base_image_info("r8.im/cog-base:python3.11").expect("cpu");
    assert_eq!(cpu.kind, BaseKind::CogBase);
    assert_eq!(cpu.entrypoint, vec!["/sbin/tini", "--"]);
    assert_eq!(
        cpu.python_executable.as_deref(),
        Some("/usr/local/bin/python3.11")
    );
    assert_eq!(
        cpu.site_packages.as_deref(),
        Some("/usr/local/lib/python3.11/site-packages")
    );
    assert_eq!(cpu.os, "debian");
    let gpu =
        catalog::base_image_info("ghcr.io/replicate/cog/cog-base:cuda12.4-python3.12-torch2.5.1")
            .expect("gpu");
    assert_eq!(
        (gpu.distro_version.as_str(), gpu.glibc.as_str()),
        ("22.04", "2.35")
    );
    assert_eq!(gpu.torch.as_deref(), Some("2.5.1"));
    assert_eq!(gpu.cuda.as_deref(), Some("12.4"));
    assert_eq!(
        gpu.python_executable.as_deref(),
        Some("/usr/local/bin/python")
    );
    assert!(gpu.python_on_path);
    assert!(
        gpu.env
            .contains(&("UV_PYTHON".to_string(), "3.12".to_string()))
    );
    let cuda13 = catalog::base_image_info("r8.im/cog-base:cuda13.0-python3.12").expect("cuda 13");
    assert!(!cuda13.python_on_path);
    assert_eq!(
        cuda13.python_executable.as_deref(),
        Some("/usr/bin/python3")
    );
    assert_eq!(catalog::base_image_info("r8.im/cog-base:latest"), None);
}
