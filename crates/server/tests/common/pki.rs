//! A certificate authority made in the test (rcgen): a CA, server certificates for
//! `localhost`/`127.0.0.1`, client certificates by common name.

// Shared by several test crates, each using a part.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

pub(crate) struct Pki {
    pub(crate) dir: PathBuf,
    pub(crate) ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl Pki {
    /// A CA in `dir` (`ca.crt`), and `server.crt`/`server.key` signed by it.
    pub(crate) fn new(dir: &Path) -> Self {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "Wharf test CA");
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let ca = params.self_signed(&key).expect("CA");
        let ca_pem = ca.pem();
        std::fs::write(dir.join("ca.crt"), &ca_pem).expect("write");
        let pki = Self { dir: dir.to_path_buf(), ca_pem, issuer: Issuer::new(params, key) };
        pki.server("server", "localhost");
        pki
    }

    /// Writes `<name>.crt` and `<name>.key`: a server certificate for localhost and 127.0.0.1
    /// whose subject is `cn`.
    pub(crate) fn server(&self, name: &str, cn: &str) {
        let key = KeyPair::generate().expect("key");
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        // Written to a temporary name and renamed, as a certificate manager would.
        for (ext, text) in [("key", key.serialize_pem()), ("crt", cert.pem())] {
            let tmp = self.dir.join(format!("{name}.{ext}.tmp"));
            std::fs::write(&tmp, text).expect("write");
            std::fs::rename(&tmp, self.dir.join(format!("{name}.{ext}"))).expect("rename");
        }
    }

    /// A client certificate for `cn`: (certificate PEM, key PEM).
    pub(crate) fn client(&self, cn: &str) -> (String, String) {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        (cert.pem(), key.serialize_pem())
    }
}
