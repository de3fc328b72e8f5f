//! Compact JSON Web Tokens signed with ES256 (ECDSA P-256) or EdDSA (Ed25519), on aws-lc-rs.
//! Only these two algorithms exist here: `alg: none`, HMAC and RSA tokens are refused before
//! any key is looked at.

use std::fmt;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use rustls_pki_types::pem::PemObject as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The longest token accepted, in bytes.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// A signature algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Algorithm {
    /// ECDSA over P-256 with SHA-256.
    ES256,
    /// Ed25519.
    EdDSA,
}

/// A key that signs tokens.
pub struct SigningKey {
    kid: String,
    pair: Pair,
    pkcs8: Vec<u8>,
}

enum Pair {
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.algorithm())
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh key.
    pub fn generate(alg: Algorithm) -> Result<Self> {
        let rng = SystemRandom::new();
        let der = match alg {
            Algorithm::ES256 => {
                EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            }
            Algorithm::EdDSA => Ed25519KeyPair::generate_pkcs8(&rng),
        }
        .map_err(|_| Error::Key("cannot generate a key".into()))?;
        Self::from_pkcs8_der(der.as_ref())
    }

    /// A key from PKCS#8 DER (P-256 or Ed25519).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self> {
        let pair = if let Ok(ec) = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der)
        {
            Pair::Ec(ec)
        } else if let Ok(ed) = Ed25519KeyPair::from_pkcs8(der) {
            Pair::Ed(ed)
        } else {
            return Err(Error::Key("not a PKCS#8 P-256 or Ed25519 private key".into()));
        };
        let public = match &pair {
            Pair::Ec(k) => k.public_key().as_ref().to_vec(),
            Pair::Ed(k) => k.public_key().as_ref().to_vec(),
        };
        Ok(Self { kid: key_id(&public), pair, pkcs8: der.to_vec() })
    }

    /// A key from a PEM `PRIVATE KEY` (PKCS#8) block.
    pub fn from_pem(pem: &str) -> Result<Self> {
        let der = rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| Error::Key(format!("expected a PEM PRIVATE KEY (PKCS#8): {e}")))?;
        Self::from_pkcs8_der(der.secret_pkcs8_der())
    }

    /// The key as a PEM `PRIVATE KEY` block, to keep on disk.
    pub fn to_pem(&self) -> String {
        pem("PRIVATE KEY", &self.pkcs8)
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match self.pair {
            Pair::Ec(_) => Algorithm::ES256,
            Pair::Ed(_) => Algorithm::EdDSA,
        }
    }

    /// The key id (`kid`): a hash of the public key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        let public = match &self.pair {
            Pair::Ec(k) => k.public_key().as_ref().to_vec(),
            Pair::Ed(k) => k.public_key().as_ref().to_vec(),
        };
        VerifyingKey { alg: self.algorithm(), kid: Some(self.kid.clone()), public }
    }

    /// Signs `claims` into a compact token.
    pub fn sign(&self, claims: &impl Serialize) -> Result<String> {
        let header = Header { alg: self.algorithm(), typ: Some("JWT".into()), kid: Some(self.kid.clone()) };
        let signing_input = format!("{}.{}", B64.encode(to_json(&header)?), B64.encode(to_json(claims)?));
        let signature = match &self.pair {
            Pair::Ec(k) => k
                .sign(&SystemRandom::new(), signing_input.as_bytes())
                .map_err(|_| Error::Key("signing failed".into()))?
                .as_ref()
                .to_vec(),
            Pair::Ed(k) => k.sign(signing_input.as_bytes()).as_ref().to_vec(),
        };
        Ok(format!("{signing_input}.{}", B64.encode(signature)))
    }
}

fn to_json(value: &impl Serialize) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error::Token(e.to_string()))
}

fn key_id(public: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(&sha2::Sha256::digest(public)[..8])
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// A key that verifies tokens.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    alg: Algorithm,
    kid: Option<String>,
    /// P-256: the uncompressed point (65 bytes); Ed25519: 32 bytes.
    public: Vec<u8>,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey").field("alg", &self.alg).field("kid", &self.kid).finish_non_exhaustive()
    }
}

/// DER prefixes of the SubjectPublicKeyInfo of a P-256 and an Ed25519 key.
const SPKI_P256: &[u8] = &[
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86,
    0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
const SPKI_ED25519: &[u8] = &[0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

impl VerifyingKey {
    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The key id, if known.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// A key from SubjectPublicKeyInfo DER (P-256 or Ed25519).
    pub fn from_spki_der(der: &[u8]) -> Result<Self> {
        let (alg, public) =
            if let Some(p) = der.strip_prefix(SPKI_P256).filter(|p| p.len() == 65 && p[0] == 4) {
                (Algorithm::ES256, p)
            } else if let Some(p) = der.strip_prefix(SPKI_ED25519).filter(|p| p.len() == 32) {
                (Algorithm::EdDSA, p)
            } else {
                return Err(Error::Key("not a P-256 or Ed25519 public key".into()));
            };
        Ok(Self { alg, kid: Some(key_id(public)), public: public.to_vec() })
    }

    /// Every key of a PEM file: `PUBLIC KEY` blocks, or `PRIVATE KEY` blocks (their public half).
    pub fn from_pem(pem: &str) -> Result<Vec<Self>> {
        let mut keys = Vec::new();
        for spki in rustls_pki_types::SubjectPublicKeyInfoDer::pem_slice_iter(pem.as_bytes()) {
            let spki = spki.map_err(|e| Error::Key(format!("PEM: {e}")))?;
            keys.push(Self::from_spki_der(spki.as_ref())?);
        }
        if keys.is_empty() {
            keys.push(SigningKey::from_pem(pem)?.verifying_key());
        }
        Ok(keys)
    }

    /// Every usable key of a JWKS document (`{"keys":[…]}`): EC P-256 and OKP Ed25519 keys;
    /// others (RSA, keys for encryption) are skipped.
    pub fn from_jwks(json: &str) -> Result<Vec<Self>> {
        #[derive(Deserialize)]
        struct Jwks {
            keys: Vec<Jwk>,
        }
        #[derive(Deserialize)]
        struct Jwk {
            kty: String,
            crv: Option<String>,
            x: Option<String>,
            y: Option<String>,
            kid: Option<String>,
            #[serde(rename = "use")]
            usage: Option<String>,
        }
        let jwks: Jwks = serde_json::from_str(json).map_err(|e| Error::Key(format!("JWKS: {e}")))?;
        let decode = |s: &Option<String>| s.as_deref().and_then(|s| B64.decode(s).ok());
        let mut keys = Vec::new();
        for k in jwks.keys {
            if k.usage.as_deref().is_some_and(|u| u != "sig") {
                continue;
            }
            match (k.kty.as_str(), k.crv.as_deref(), decode(&k.x), decode(&k.y)) {
                ("EC", Some("P-256"), Some(x), Some(y)) if x.len() == 32 && y.len() == 32 => {
                    let mut public = vec![4];
                    public.extend_from_slice(&x);
                    public.extend_from_slice(&y);
                    keys.push(Self { alg: Algorithm::ES256, kid: k.kid, public });
                }
                ("OKP", Some("Ed25519"), Some(x), _) if x.len() == 32 => {
                    keys.push(Self { alg: Algorithm::EdDSA, kid: k.kid, public: x });
                }
                _ => {}
            }
        }
        if keys.is_empty() {
            return Err(Error::Key("the JWKS holds no P-256 or Ed25519 signing key".into()));
        }
        Ok(keys)
    }

    /// The key as a JWK (for a `/token/jwks.json` document).
    pub fn to_jwk(&self) -> serde_json::Value {
        match self.alg {
            Algorithm::ES256 => serde_json::json!({
                "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": self.kid,
                "x": B64.encode(&self.public[1..33]), "y": B64.encode(&self.public[33..]),
            }),
            Algorithm::EdDSA => serde_json::json!({
                "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": self.kid,
                "x": B64.encode(&self.public),
            }),
        }
    }

    fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        let alg: &dyn signature::VerificationAlgorithm = match self.alg {
            Algorithm::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
            Algorithm::EdDSA => &signature::ED25519,
        };
        UnparsedPublicKey::new(alg, &self.public).verify(message, sig).is_ok()
    }
}

/// A token's header.
#[derive(Debug, Serialize, Deserialize)]
pub struct Header {
    /// The algorithm.
    pub alg: Algorithm,
    /// `JWT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    /// The key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
}

/// The parts of a compact token, before any signature is checked.
#[derive(Debug)]
pub struct Unverified<'a> {
    /// The parsed header (`alg` is ES256 or EdDSA, or parsing failed).
    pub header: Header,
    signing_input: &'a str,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

/// Splits and decodes a compact token; refuses anything but three base64url parts with an
/// ES256 or EdDSA header.
pub fn parse(token: &str) -> Result<Unverified<'_>> {
    let bad = |m: &str| Error::Token(m.to_owned());
    if token.len() > MAX_TOKEN_LEN {
        return Err(bad("too long"));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(bad("not a compact JWS (three parts)"));
    };
    let header_json = B64.decode(h).map_err(|_| bad("header is not base64url"))?;
    let header: Header = serde_json::from_slice(&header_json)
        .map_err(|_| bad("unsupported header: only ES256 and EdDSA tokens are accepted"))?;
    let payload = B64.decode(p).map_err(|_| bad("payload is not base64url"))?;
    let signature = B64.decode(s).map_err(|_| bad("signature is not base64url"))?;
    Ok(Unverified { header, signing_input: &token[..h.len() + 1 + p.len()], payload, signature })
}

/// Verifies a token with one of `keys` (the one its `kid` names, or any of its algorithm
/// when it names none) and returns its claims. Time claims are the caller's to check.
pub fn verify<T: DeserializeOwned>(token: &str, keys: &[VerifyingKey]) -> Result<T> {
    let unverified = parse(token)?;
    let candidates = keys.iter().filter(|k| {
        k.alg == unverified.header.alg
            && match (&unverified.header.kid, &k.kid) {
                (Some(want), Some(have)) => want == have,
                _ => true,
            }
    });
    let mut any = false;
    for key in candidates {
        any = true;
        if key.verify(unverified.signing_input.as_bytes(), &unverified.signature) {
            return serde_json::from_slice(&unverified.payload)
                .map_err(|e| Error::Token(format!("claims: {e}")));
        }
    }
    Err(Error::Token(if any { "bad signature" } else { "signed by an unknown key" }.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Claims {
        sub: String,
    }

    #[test]
    fn sign_and_verify_both_algorithms() {
        for alg in [Algorithm::ES256, Algorithm::EdDSA] {
            let key = SigningKey::generate(alg).expect("key");
            let token = key.sign(&Claims { sub: "alice".into() }).expect("signs");
            let claims: Claims = verify(&token, &[key.verifying_key()]).expect("verifies");
            assert_eq!(claims.sub, "alice");
            // Round trips through PEM and JWKS.
            let again = SigningKey::from_pem(&key.to_pem()).expect("pem");
            assert_eq!(again.verifying_key(), key.verifying_key());
            let jwks = serde_json::json!({ "keys": [key.verifying_key().to_jwk()] }).to_string();
            let from_jwks = VerifyingKey::from_jwks(&jwks).expect("jwks");
            let _: Claims = verify(&token, &from_jwks).expect("verifies with the JWKS key");
            // Another key, a tampered payload, `alg: none`.
            let other = SigningKey::generate(alg).expect("key");
            assert!(verify::<Claims>(&token, &[other.verifying_key()]).is_err());
            let mut parts: Vec<&str> = token.split('.').collect();
            let forged = B64.encode(br#"{"sub":"admin"}"#);
            parts[1] = &forged;
            assert!(verify::<Claims>(&parts.join("."), &[key.verifying_key()]).is_err());
            let none_header = B64.encode(br#"{"alg":"none","typ":"JWT"}"#);
            let none = format!("{none_header}.{forged}.");
            assert!(verify::<Claims>(&none, &[key.verifying_key()]).is_err());
            let hs = format!("{}.{forged}.{}", B64.encode(br#"{"alg":"HS256"}"#), B64.encode(b"x"));
            assert!(verify::<Claims>(&hs, &[key.verifying_key()]).is_err());
        }
    }

    #[test]
    fn spki_pem_public_keys() {
        let key = SigningKey::generate(Algorithm::ES256).expect("key");
        let vk = key.verifying_key();
        let mut der = SPKI_P256.to_vec();
        der.extend_from_slice(&vk.public);
        let keys = VerifyingKey::from_pem(&pem("PUBLIC KEY", &der)).expect("parses");
        assert_eq!(keys, [vk]);
        assert!(VerifyingKey::from_pem("nothing").is_err());
        assert!(VerifyingKey::from_jwks(r#"{"keys":[{"kty":"RSA","n":"x","e":"AQAB"}]}"#).is_err());
    }
}
