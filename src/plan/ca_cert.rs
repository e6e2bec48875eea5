//! `COG_CA_CERT`: a certificate file, a directory of `*.crt`/`*.pem`, inline
//! PEM or base64 PEM, normalised to trimmed PEM plus one newline (spec §4.1 F2).

use std::path::Path;

use base64::Engine;

use super::PlanError;

/// Environment variable naming the CA certificate to inject.
pub const CA_CERT_ENV: &str = "COG_CA_CERT";

/// Reads the certificate bytes a `COG_CA_CERT` value designates.
pub fn read_ca_cert(value: &str) -> Result<Vec<u8>, PlanError> {
    let value = value.trim();
    let path = Path::new(value);
    if let Ok(metadata) = std::fs::metadata(path) {
        return if metadata.is_dir() {
            read_directory(path)
        } else {
            let data = read_file(path)?;
            validate_pem(&data)
                .map_err(|detail| cert_error(&format!("{}: {detail}", path.display())))
        };
    }
    if value.starts_with("-----BEGIN") {
        return validate_pem(value.as_bytes()).map_err(|detail| cert_error(&detail));
    }
    if let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(value)
        && decoded.starts_with(b"-----BEGIN")
    {
        return validate_pem(&decoded).map_err(|detail| cert_error(&detail));
    }
    Err(cert_error(
        "invalid value - must be a file path, directory, PEM certificate, or base64-encoded PEM",
    ))
}

fn read_file(path: &Path) -> Result<Vec<u8>, PlanError> {
    std::fs::read(path)
        .map_err(|error| cert_error(&format!("failed to read file {}: {error}", path.display())))
}

fn read_directory(dir: &Path) -> Result<Vec<u8>, PlanError> {
    let entries = std::fs::read_dir(dir).map_err(|error| {
        cert_error(&format!(
            "failed to read directory {}: {error}",
            dir.display()
        ))
    })?;
    let mut names: Vec<String> = entries
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_type().map(|t| !t.is_dir()).unwrap_or(false))
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| {
            let lower = name.to_ascii_lowercase();
            lower.ends_with(".crt") || lower.ends_with(".pem")
        })
        .collect();
    names.sort();
    let mut certs: Vec<u8> = Vec::new();
    for name in names {
        let path = dir.join(&name);
        let data = read_file(&path)?;
        validate_pem(&data).map_err(|detail| {
            cert_error(&format!(
                "invalid certificate in {}: {detail}",
                path.display()
            ))
        })?;
        if !certs.is_empty() && !certs.ends_with(b"\n") {
            certs.push(b'\n');
        }
        certs.extend_from_slice(&data);
    }
    if certs.is_empty() {
        return Err(cert_error(&format!(
            "no .crt or .pem files found in directory {}",
            dir.display()
        )));
    }
    Ok(certs)
}

fn validate_pem(data: &[u8]) -> Result<Vec<u8>, String> {
    let content = String::from_utf8_lossy(data);
    let content = content.trim();
    if !content.starts_with("-----BEGIN CERTIFICATE-----") {
        return Err("invalid PEM: must start with '-----BEGIN CERTIFICATE-----'".to_string());
    }
    if !content.contains("-----END CERTIFICATE-----") {
        return Err("invalid PEM: must contain '-----END CERTIFICATE-----'".to_string());
    }
    Ok(format!("{content}\n").into_bytes())
}

fn cert_error(detail: &str) -> PlanError {
    PlanError::CaCert(format!(
        "{CA_CERT_ENV}: {detail}\nhint: set {CA_CERT_ENV} to a PEM file, a directory of .crt/.pem files, or the PEM text itself"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----";

    #[test]
    fn inline_and_base64_pem_are_normalised() {
        assert_eq!(
            read_ca_cert(&format!("  {PEM}\n\n")).unwrap(),
            format!("{PEM}\n").as_bytes()
        );
        let encoded = base64::engine::general_purpose::STANDARD.encode(PEM);
        assert_eq!(
            read_ca_cert(&encoded).unwrap(),
            format!("{PEM}\n").as_bytes()
        );
    }

    #[test]
    fn directory_certificates_are_concatenated() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.pem"), PEM).unwrap();
        std::fs::write(dir.path().join("a.crt"), format!("{PEM}\n")).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        let bytes = read_ca_cert(dir.path().to_str().unwrap()).unwrap();
        assert_eq!(bytes, format!("{PEM}\n{PEM}").as_bytes());
    }

    #[test]
    fn garbage_is_refused() {
        assert!(
            read_ca_cert("not a cert")
                .unwrap_err()
                .to_string()
                .contains("invalid value")
        );
    }
}
