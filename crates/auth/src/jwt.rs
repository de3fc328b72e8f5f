//! Compact JSON Web Tokens signed with ES256 (ECDSA P-256) or EdDSA (Ed25519), on aws-lc-rs,
//! and verified with those or RS256 (RSA PKCS#1 v1.5, 2048 to 8192 bits: what GitHub Actions,
//! GitLab and Kubernetes sign their OIDC tokens with; Wharf never signs with it). `alg: none`,
//! HMAC and every other algorithm are refused before any key is looked at, and a key is only
//! ever used with its own algorithm.

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
    /// RSA PKCS#1 v1.5 with SHA-256 (verification only).
    RS256,
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
            Algorithm::RS256 => return Err(Error::Key("RS256 keys only verify here".into())),
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
        VerifyingKey { alg: self.algorithm(), kid: Some(self.kid.clone()), public, exponent: Vec::new() }
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
    /// P-256: the uncompressed point (65 bytes); Ed25519: 32 bytes; RSA: the modulus.
    public: Vec<u8>,
    /// RSA: the public exponent; empty otherwise.
    exponent: Vec<u8>,
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
        Ok(Self { alg, kid: Some(key_id(public)), public: public.to_vec(), exponent: Vec::new() })
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

    /// Every usable key of a JWKS document (`{"keys":[…]}`): EC P-256, OKP Ed25519 and RSA
    /// keys of 2048 to 8192 bits; others (other curves, keys for encryption, keys whose `alg`
    /// names another algorithm) are skipped.
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
            n: Option<String>,
            e: Option<String>,
            kid: Option<String>,
            alg: Option<String>,
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
            let key = match (k.kty.as_str(), k.crv.as_deref(), decode(&k.x), decode(&k.y)) {
                ("EC", Some("P-256"), Some(x), Some(y)) if x.len() == 32 && y.len() == 32 => {
                    let mut public = vec![4];
                    public.extend_from_slice(&x);
                    public.extend_from_slice(&y);
                    Self { alg: Algorithm::ES256, kid: k.kid, public, exponent: Vec::new() }
                }
                ("OKP", Some("Ed25519"), Some(x), _) if x.len() == 32 => {
                    Self { alg: Algorithm::EdDSA, kid: k.kid, public: x, exponent: Vec::new() }
                }
                ("RSA", _, _, _) => match (decode(&k.n), decode(&k.e)) {
                    (Some(n), Some(e)) if rsa_size_ok(&n) && !e.is_empty() && e.len() <= 8 => {
                        Self { alg: Algorithm::RS256, kid: k.kid, public: n, exponent: e }
                    }
                    _ => continue,
                },
                _ => continue,
            };
            let named = |alg: &str| k.alg.as_deref().is_none_or(|a| a == alg);
            let fits = match key.alg {
                Algorithm::ES256 => named("ES256"),
                Algorithm::EdDSA => named("EdDSA"),
                Algorithm::RS256 => named("RS256"),
            };
            if fits {
                keys.push(key);
            }
        }
        if keys.is_empty() {
            return Err(Error::Key("the JWKS holds no P-256, Ed25519 or RSA signing key".into()));
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
            Algorithm::RS256 => serde_json::json!({
                "kty": "RSA", "alg": "RS256", "use": "sig", "kid": self.kid,
                "n": B64.encode(&self.public), "e": B64.encode(&self.exponent),
            }),
        }
    }

    fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        let alg: &dyn signature::VerificationAlgorithm = match self.alg {
            Algorithm::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
            Algorithm::EdDSA => &signature::ED25519,
            Algorithm::RS256 => {
                let key = signature::RsaPublicKeyComponents { n: &self.public, e: &self.exponent };
                return key.verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, sig).is_ok();
            }
        };
        UnparsedPublicKey::new(alg, &self.public).verify(message, sig).is_ok()
    }
}

/// Whether an RSA modulus (big-endian, maybe with leading zeros) has 2048 to 8192 bits.
fn rsa_size_ok(n: &[u8]) -> bool {
    let n = &n[n.iter().take_while(|b| **b == 0).count()..];
    (256..=1024).contains(&n.len())
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
    /// The parsed header (`alg` is ES256, EdDSA or RS256, or parsing failed).
    pub header: Header,
    signing_input: &'a str,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

/// Splits and decodes a compact token; refuses anything but three base64url parts with an
/// ES256, EdDSA or RS256 header.
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
        .map_err(|_| bad("unsupported header: only ES256, EdDSA and RS256 tokens are accepted"))?;
    let payload = B64.decode(p).map_err(|_| bad("payload is not base64url"))?;
    let signature = B64.decode(s).map_err(|_| bad("signature is not base64url"))?;
    Ok(Unverified { header, signing_input: &token[..h.len() + 1 + p.len()], payload, signature })
}

/// Verifies a token with one of `keys` (the one its `kid` names, or any of its algorithm
/// when it names none) and returns its claims. Time claims are the caller's to check.
pub fn verify<T: DeserializeOwned>(token: &str, keys: &[VerifyingKey]) -> Result<T> {
    parse(token)?.verify(keys)
}

impl Unverified<'_> {
    /// The keys of `keys` that may have signed it: its algorithm's, the one its `kid` names
    /// (or all of them when it names none).
    fn candidates<'k>(&self, keys: &'k [VerifyingKey]) -> impl Iterator<Item = &'k VerifyingKey> {
        keys.iter().filter(|k| {
            k.alg == self.header.alg
                && match (&self.header.kid, &k.kid) {
                    (Some(want), Some(have)) => want == have,
                    _ => true,
                }
        })
    }

    /// Whether one of `keys` may have signed it (else it names a key not among them).
    pub fn signer_known(&self, keys: &[VerifyingKey]) -> bool {
        self.candidates(keys).next().is_some()
    }

    /// Its claims, **not verified**: only to choose which keys to verify it with.
    pub fn peek<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.payload).map_err(|e| Error::Token(format!("claims: {e}")))
    }

    /// Verifies it with one of `keys` and returns its claims (see [`verify`]).
    pub fn verify<T: DeserializeOwned>(&self, keys: &[VerifyingKey]) -> Result<T> {
        let mut any = false;
        for key in self.candidates(keys) {
            any = true;
            if key.verify(self.signing_input.as_bytes(), &self.signature) {
                return self.peek();
            }
        }
        Err(Error::Token(if any { "bad signature" } else { "signed by an unknown key" }.into()))
    }
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
    fn rs256_tokens_verify_with_rsa_keys_of_a_jwks_and_nothing_else() {
        use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
        let rsa = KeyPair::generate(KeySize::Rsa2048).expect("an RSA key");
        let components: PublicKeyComponents<Vec<u8>> = rsa.public_key().into();
        let jwk = |kid: &str, n: &[u8]| {
            serde_json::json!({ "kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid,
                "n": B64.encode(n), "e": B64.encode(&components.e) })
        };
        let header = B64.encode(br#"{"alg":"RS256","typ":"JWT","kid":"k1"}"#);
        let input = format!("{header}.{}", B64.encode(br#"{"sub":"ci"}"#));
        let mut sig = vec![0; rsa.public_modulus_len()];
        rsa.sign(&signature::RSA_PKCS1_SHA256, &SystemRandom::new(), input.as_bytes(), &mut sig)
            .expect("signs");
        let token = format!("{input}.{}", B64.encode(&sig));
        let jwks = serde_json::json!({ "keys": [jwk("k1", &components.n)] }).to_string();
        let keys = VerifyingKey::from_jwks(&jwks).expect("an RSA key");
        assert_eq!(keys[0].algorithm(), Algorithm::RS256);
        assert_eq!(
            VerifyingKey::from_jwks(&keys[0].to_jwk().to_string().replace("\"kty\"", "\"x\"")).ok(),
            None
        );
        let claims: Claims = verify(&token, &keys).expect("verifies");
        assert_eq!(claims.sub, "ci");
        // Another kid; a 1024-bit modulus (skipped); an `alg` the key is not for (skipped).
        let other = serde_json::json!({ "keys": [jwk("k2", &components.n)] }).to_string();
        assert!(verify::<Claims>(&token, &VerifyingKey::from_jwks(&other).expect("a key")).is_err());
        let small = serde_json::json!({ "keys": [jwk("k1", &components.n[..128])] }).to_string();
        assert!(VerifyingKey::from_jwks(&small).is_err());
        let mut ps = jwk("k1", &components.n);
        ps["alg"] = "PS256".into();
        assert!(VerifyingKey::from_jwks(&serde_json::json!({ "keys": [ps] }).to_string()).is_err());
        // An RS256 header never meets an EC key, nor an ES256 header an RSA key.
        let ec = SigningKey::generate(Algorithm::ES256).expect("key");
        assert!(verify::<Claims>(&token, &[ec.verifying_key()]).is_err());
        let es = ec.sign(&Claims { sub: "ci".into() }).expect("signs");
        assert!(verify::<Claims>(&es, &keys).is_err());
        assert!(SigningKey::generate(Algorithm::RS256).is_err(), "Wharf never signs with RSA");
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
