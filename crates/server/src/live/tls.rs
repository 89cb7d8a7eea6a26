//! HTTPS with rustls (no OpenSSL): the configured PEM files, or a self-signed certificate made
//! once for this machine's names and addresses and kept in the storage folder — so that a phone
//! on the LAN can grant the microphone (browsers give it to secure origins only) after one
//! warning. The certificate is made again when the machine's names change; its SHA-256
//! fingerprint is printed at start, to compare with what the browser shows.

use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest as _, Sha256};
use tokio_rustls::TlsAcceptor;

use crate::config::{ServerConfig, TlsMode};

/// The server's TLS, ready to accept.
#[derive(Clone)]
pub struct Tls {
    pub acceptor: TlsAcceptor,
    /// SHA-256 of the certificate, `AB:CD:…`.
    pub fingerprint: String,
    /// Where the certificate is, for the start-up message.
    pub cert_path: PathBuf,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// The server's TLS as configured; `None` for plain HTTP.
pub fn load(server: &ServerConfig, storage: &Path) -> anyhow::Result<Option<Tls>> {
    let (cert_path, key_path) = match (&server.tls_cert, &server.tls_key, server.tls) {
        (Some(cert), Some(key), _) => (cert.clone(), key.clone()),
        (_, _, TlsMode::SelfSigned) => self_signed(server, &storage.join("tls"))?,
        _ => return Ok(None),
    };
    let certs = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            anyhow::anyhow!("{}: not a PEM certificate chain ({e})", cert_path.display())
        })?;
    let leaf = certs
        .first()
        .with_context(|| format!("{}: holds no certificate", cert_path.display()))?;
    let fingerprint = colon_hex(&Sha256::digest(leaf.as_ref()));
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| anyhow::anyhow!("{}: not a PEM private key ({e})", key_path.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .with_context(|| {
            format!(
                "{} and {} do not make a usable certificate and key",
                cert_path.display(),
                key_path.display()
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Tls {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        fingerprint,
        cert_path,
    }))
}

/// `dir/cert.pem` and `dir/key.pem` for this machine's names, made when missing or when the
/// names they were made for are not all of today's.
fn self_signed(server: &ServerConfig, dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    let names_path = dir.join("names.txt");
    let names = machine_names(server);
    let kept = std::fs::read_to_string(&names_path).unwrap_or_default();
    let covered = names.iter().all(|n| kept.lines().any(|k| k == n));
    if covered && cert_path.is_file() && key_path.is_file() {
        return Ok((cert_path, key_path));
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let made = rcgen::generate_simple_self_signed(names.clone())
        .context("cannot make a self-signed certificate")?;
    write_private(&key_path, &made.signing_key.serialize_pem())?;
    std::fs::write(&cert_path, made.cert.pem())
        .with_context(|| format!("cannot write {}", cert_path.display()))?;
    std::fs::write(&names_path, names.join("\n"))
        .with_context(|| format!("cannot write {}", names_path.display()))?;
    tracing::info!(
        "made a self-signed certificate for {} in {}",
        names.join(", "),
        cert_path.display()
    );
    Ok((cert_path, key_path))
}

/// The names and addresses browsers may reach this server by.
fn machine_names(server: &ServerConfig) -> Vec<String> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if let Some(name) = super::origin_policy::machine_name() {
        names.push(format!("{name}.local"));
        names.push(name);
    }
    names.extend(server.allowed_hosts.iter().cloned());
    let mut addresses: Vec<IpAddr> = server.webrtc_addresses.clone();
    let listen = server.listen.ip();
    if listen.is_unspecified() {
        addresses.extend(outbound_address());
    } else {
        addresses.push(listen);
    }
    names.extend(addresses.iter().map(IpAddr::to_string));
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

/// The address this machine's LAN traffic leaves from (a connected UDP socket sends nothing).
fn outbound_address() -> Option<IpAddr> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    socket.connect((Ipv4Addr::new(192, 0, 2, 1), 9)).ok()?;
    Some(socket.local_addr().ok()?.ip()).filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    std::io::Write::write_all(&mut file, text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_certificate_is_made_once_and_again_for_new_names() {
        let dir = std::env::temp_dir().join(format!("lockstep-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut server = ServerConfig {
            tls: TlsMode::SelfSigned,
            ..ServerConfig::default()
        };
        let first = load(&server, &dir).expect("loaded").expect("on");
        assert_eq!(first.fingerprint.len(), 32 * 3 - 1);
        let again = load(&server, &dir).expect("loaded").expect("on");
        assert_eq!(first.fingerprint, again.fingerprint, "kept across starts");
        server.allowed_hosts = vec!["cams.example.lan".into()];
        let renamed = load(&server, &dir).expect("loaded").expect("on");
        assert_ne!(
            first.fingerprint, renamed.fingerprint,
            "made again for a new name"
        );
        let names = std::fs::read_to_string(dir.join("tls/names.txt")).expect("names");
        assert!(names.lines().any(|n| n == "cams.example.lan"), "{names}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.join("tls/key.pem"))
                .expect("key")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_files_are_named_in_the_error() {
        let dir = std::env::temp_dir().join(format!("lockstep-tls-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let cert = dir.join("cert.pem");
        std::fs::write(&cert, "not pem").expect("written");
        let server = ServerConfig {
            tls_cert: Some(cert.clone()),
            tls_key: Some(dir.join("missing.pem")),
            ..ServerConfig::default()
        };
        let e = load(&server, &dir).expect_err("refused").to_string();
        assert!(e.contains("cert.pem"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
