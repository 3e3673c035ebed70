//! The PKI directory as the renderer's source of key material.

use crate::{Material, RenderError};
use kos_core::plan::CaId;
use kos_pki::{Pki, PkiError};
use secrecy::ExposeSecret;

fn missing(what: &str) -> impl FnOnce(PkiError) -> RenderError + '_ {
    move |e| RenderError::Material { what: what.to_string(), why: e.to_string() }
}

impl Material for Pki {
    fn ca_cert(&self, ca: CaId) -> Result<String, RenderError> {
        self.ca_cert_pem(ca).map_err(missing(ca.file_stem()))
    }
    fn ca_key(&self, ca: CaId) -> Result<String, RenderError> {
        self.ca_key_pem(ca).map(|k| k.expose_secret().to_string()).map_err(missing(ca.file_stem()))
    }
    fn cert(&self, stem: &str) -> Result<String, RenderError> {
        self.cert_pem(stem).map_err(missing(stem))
    }
    fn key(&self, stem: &str) -> Result<String, RenderError> {
        self.key_pem(stem).map(|k| k.expose_secret().to_string()).map_err(missing(stem))
    }
    fn sa_key(&self) -> Result<String, RenderError> {
        self.sa_key_pem().map(|k| k.expose_secret().to_string()).map_err(missing("sa.key"))
    }
    fn sa_pub(&self) -> Result<String, RenderError> {
        self.sa_pub_pem().map_err(missing("sa.pub"))
    }
    fn encryption_key(&self) -> Result<String, RenderError> {
        Pki::encryption_key(self).map(|k| k.expose_secret().to_string()).map_err(missing("encryption.key"))
    }
}
