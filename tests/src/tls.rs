//! A TLS terminator on loopback, as an operator puts in front of the daemon: accepts HTTPS with
//! a self-signed certificate (made with the `openssl` CLI) and forwards the bytes to a plain
//! HTTP port.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A self-signed certificate for `localhost` and `127.0.0.1`, with its PKCS#8 key.
pub struct SelfSigned {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl SelfSigned {
    pub fn create(dir: &Path) -> SelfSigned {
        let (cert, key) = (dir.join("tls-cert.pem"), dir.join("tls-key.pem"));
        let status = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl is installed (scripts/test.sh installs it)");
        assert!(
            status.status.success(),
            "openssl: {}",
            String::from_utf8_lossy(&status.stderr)
        );
        SelfSigned { cert, key }
    }
}

/// The proxy; it stops when dropped.
pub struct TlsProxy {
    pub port: u16,
    _server: crate::net::LoopbackServer,
}

impl TlsProxy {
    /// Terminates TLS on a free loopback port and forwards to `127.0.0.1:upstream`.
    pub fn start(certificate: &SelfSigned, upstream: u16) -> TlsProxy {
        let cert = std::fs::read(&certificate.cert).expect("certificate");
        let key = std::fs::read(&certificate.key).expect("key");
        let identity = native_tls::Identity::from_pkcs8(&cert, &key).expect("a PKCS#8 identity");
        let acceptor = tokio_native_tls::TlsAcceptor::from(
            native_tls::TlsAcceptor::new(identity).expect("a TLS acceptor"),
        );
        let server = crate::net::LoopbackServer::start(1, move |listener| async move {
            while let Ok((socket, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(socket).await else {
                        return;
                    };
                    let Ok(mut plain) =
                        tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                    else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        TlsProxy {
            port: server.port,
            _server: server,
        }
    }
}
