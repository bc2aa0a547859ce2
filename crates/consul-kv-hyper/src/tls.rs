//! HTTPS with rustls (ring provider): roots, client certificates, server name, and the
//! insecure "verify nothing" mode of `CONSUL_HTTP_SSL_VERIFY=false`.
//!
//! Roots follow the `consul` CLI: when a CA file (`CONSUL_CACERT`) or a CA directory
//! (`CONSUL_CAPATH`) is given, only those certificates are trusted; otherwise the platform's
//! store is used.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;

use crate::error::ConfigError;

/// TLS settings after merging explicit values and the environment.
#[derive(Debug, Clone, Default)]
pub(crate) struct TlsSettings {
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) ca_path: Option<PathBuf>,
    pub(crate) client_cert: Option<(PathBuf, PathBuf)>,
    pub(crate) server_name: Option<String>,
    pub(crate) verify: bool,
}

/// A ready TLS configuration plus the name to verify.
#[derive(Clone)]
pub(crate) struct TlsConnector {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
}

impl fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConnector")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl TlsConnector {
    /// Builds the rustls configuration. `host` is the address's host, the default server name.
    pub(crate) fn new(settings: &TlsSettings, host: &str) -> Result<Self, ConfigError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| ConfigError::with_source("TLS: unsupported protocol versions", e))?;
        let builder = if settings.verify {
            builder.with_root_certificates(roots(settings)?)
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
        };
        let mut config = match &settings.client_cert {
            Some((cert, key)) => {
                let certs = read_certs(cert)?;
                let key_pem = read_file(key, "client key")?;
                let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
                    ConfigError::with_source(format!("TLS: no private key in {}", key.display()), e)
                })?;
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(|e| ConfigError::with_source("TLS: invalid client certificate", e))?
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let name = settings.server_name.as_deref().unwrap_or(host);
        let name = name.trim_start_matches('[').trim_end_matches(']');
        let server_name = ServerName::try_from(name.to_owned()).map_err(|e| {
            ConfigError::with_source(format!("TLS: invalid server name {name:?}"), e)
        })?;
        Ok(Self {
            config: Arc::new(config),
            server_name,
        })
    }

    /// Runs the TLS handshake over a connected socket.
    pub(crate) async fn handshake(
        self,
        tcp: TcpStream,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        tokio_rustls::TlsConnector::from(self.config)
            .connect(self.server_name, tcp)
            .await
    }
}

fn read_file(path: &Path, what: &str) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| {
        ConfigError::with_source(format!("TLS: cannot read {what} {}", path.display()), e)
    })
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let pem = read_file(path, "certificate file")?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            ConfigError::with_source(format!("TLS: invalid PEM in {}", path.display()), e)
        })?;
    if certs.is_empty() {
        return Err(ConfigError::new(format!(
            "TLS: no certificate in {}",
            path.display()
        )));
    }
    Ok(certs)
}

fn roots(settings: &TlsSettings) -> Result<RootCertStore, ConfigError> {
    let mut store = RootCertStore::empty();
    let mut add = |certs: Vec<CertificateDer<'static>>, from: &Path| {
        for c in certs {
            store.add(c).map_err(|e| {
                ConfigError::with_source(
                    format!("TLS: invalid CA certificate in {}", from.display()),
                    e,
                )
            })?;
        }
        Ok::<_, ConfigError>(())
    };
    let mut custom = false;
    if let Some(file) = &settings.ca_file {
        add(read_certs(file)?, file)?;
        custom = true;
    }
    if let Some(dir) = &settings.ca_path {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            ConfigError::with_source(
                format!("TLS: cannot read CA directory {}", dir.display()),
                e,
            )
        })?;
        let mut paths = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect::<Vec<_>>();
        paths.sort();
        for p in paths {
            // Like Go's tlsutil, files that hold no certificate are skipped.
            let Ok(pem) = std::fs::read(&p) else { continue };
            let certs = CertificateDer::pem_slice_iter(&pem)
                .filter_map(Result::ok)
                .collect::<Vec<_>>();
            add(certs, &p)?;
        }
        custom = true;
    }
    if custom {
        if store.is_empty() {
            return Err(ConfigError::new("TLS: no CA certificate found"));
        }
        return Ok(store);
    }
    let native = rustls_native_certs::load_native_certs();
    // Unparseable platform certificates are skipped, as Go's SystemCertPool does.
    store.add_parsable_certificates(native.certs);
    Ok(store)
}

/// Accepts any server certificate. Only for `tls_verify(false)` /
/// `CONSUL_HTTP_SSL_VERIFY=false`: it gives up all protection against an active attacker.
/// Handshake signatures are still checked, so the peer must hold the key of the certificate it
/// sends.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
