//! The process's one rustls crypto provider (FIELD_NOTES, "TLS"): ring, installed before any
//! TLS client is built. reqwest is built with `rustls-no-provider`, so without this the first
//! HTTPS client panics. Idempotent; called from `main` and from every client constructor.

/// Installs ring as the process-wide rustls provider unless one is installed already.
pub fn ensure_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Err means another thread installed one first, which is equally fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_https_client_builds_without_panicking() {
        super::ensure_provider();
        let client = reqwest::Client::builder().build();
        assert!(client.is_ok());
    }
}
