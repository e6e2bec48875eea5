//! `--output` targets: `oci:DIR[:tag]`, `oci-archive:FILE[:tag]`,
//! `docker-archive:FILE[:name:tag]`.

use super::Image;
use super::archive::{write_docker_archive, write_oci_archive};
use super::image::ImageError;
use super::layout::{split_dir_tag, write_layout};
use std::path::PathBuf;

/// Where an image is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutputTarget {
    /// An OCI image layout directory, optionally tagging the image.
    OciDir {
        /// Layout directory.
        dir: PathBuf,
        /// `org.opencontainers.image.ref.name` of the image.
        tag: Option<String>,
    },
    /// An OCI layout packed in a tar file.
    OciArchive {
        /// Output file.
        file: PathBuf,
        /// `org.opencontainers.image.ref.name` of the image.
        tag: Option<String>,
    },
    /// A `docker load` archive.
    DockerArchive {
        /// Output file.
        file: PathBuf,
        /// `RepoTags` entry (e.g. `my-model:latest`); the image name if absent.
        reference: Option<String>,
    },
}

impl OutputTarget {
    /// Parses an `--output` value.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let hint = "use oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker-archive:FILE[:NAME:TAG]";
        let (kind, rest) = spec
            .split_once(':')
            .ok_or_else(|| format!("invalid --output {spec:?}: missing transport; {hint}"))?;
        if rest.is_empty() {
            return Err(format!("invalid --output {spec:?}: missing path; {hint}"));
        }
        match kind {
            "oci" => {
                let (dir, tag) = split_dir_tag(rest);
                Ok(OutputTarget::OciDir { dir, tag })
            }
            "oci-archive" => {
                let (file, tag) = split_dir_tag(rest);
                Ok(OutputTarget::OciArchive { file, tag })
            }
            "docker-archive" => {
                let (file, reference) = match rest.split_once(':') {
                    Some((f, r)) if !f.is_empty() && !r.is_empty() => {
                        (PathBuf::from(f), Some(r.to_string()))
                    }
                    _ => (PathBuf::from(rest), None),
                };
                Ok(OutputTarget::DockerArchive { file, reference })
            }
            other => Err(format!(
                "invalid --output {spec:?}: unknown transport {other:?}; {hint}"
            )),
        }
    }

    /// Writes `image` to this target; `name` (the `-t` image name) is used
    /// as the docker-archive tag when the target names none.
    pub fn write(&self, image: &dyn Image, name: Option<&str>) -> Result<(), ImageError> {
        match self {
            OutputTarget::OciDir { dir, tag } => {
                write_layout(image, dir, tag.as_deref()).map(|_| ())
            }
            OutputTarget::OciArchive { file, tag } => {
                write_oci_archive(image, file, tag.as_deref()).map(|_| ())
            }
            OutputTarget::DockerArchive { file, reference } => {
                let tags: Vec<String> = reference
                    .as_deref()
                    .or(name)
                    .map(docker_tag)
                    .into_iter()
                    .collect();
                write_docker_archive(image, file, &tags)
            }
        }
    }
}

/// Adds `:latest` to a name without a tag (Docker's RepoTags need one).
fn docker_tag(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') || name.contains('@') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_transport() {
        assert_eq!(
            OutputTarget::parse("oci:/tmp/x:v1").unwrap(),
            OutputTarget::OciDir {
                dir: "/tmp/x".into(),
                tag: Some("v1".into())
            }
        );
        assert_eq!(
            OutputTarget::parse("docker-archive:out.tar:me/model:2").unwrap(),
            OutputTarget::DockerArchive {
                file: "out.tar".into(),
                reference: Some("me/model:2".into())
            }
        );
        assert!(
            OutputTarget::parse("docker:foo")
                .unwrap_err()
                .contains("unknown transport")
        );
        assert_eq!(docker_tag("localhost:5000/m"), "localhost:5000/m:latest");
    }
}
