//! Content digests (`algorithm:encoded`) and streaming hashing.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use sha2::Digest as _;

use crate::error::{Error, Input, Result};

/// A digest algorithm Wharf can compute and verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[non_exhaustive]
pub enum Algorithm {
    /// SHA-256, the registry default.
    Sha256,
    /// SHA-512.
    Sha512,
}

impl Algorithm {
    /// The name used in digests: `sha256` or `sha512`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Sha512 => "sha512",
        }
    }

    /// The length of the hex-encoded hash: 64 or 128.
    pub const fn hex_len(self) -> usize {
        match self {
            Self::Sha256 => 64,
            Self::Sha512 => 128,
        }
    }

    /// A streaming hasher for this algorithm.
    pub fn digester(self) -> Digester {
        Digester::new(self)
    }

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "sha256" => Some(Self::Sha256),
            "sha512" => Some(Self::Sha512),
            _ => None,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::from_name(s).ok_or_else(|| Error::UnsupportedDigestAlgorithm {
            algorithm: Input::new(s),
            input: Input::new(s),
        })
    }
}

/// A validated content digest such as `sha256:44136fa3…`.
///
/// Parsing follows the image-spec grammar
/// (`algorithm ":" encoded`, with `algorithm-component` = `[a-z0-9]+` joined by `[+._-]` and
/// `encoded` = `[a-zA-Z0-9=_-]+`). A well-formed digest of an algorithm other than sha256 or
/// sha512 is refused as [`Error::UnsupportedDigestAlgorithm`], so every `Digest` value can be
/// verified. The encoded part of sha256 and sha512 digests must be lowercase hex of the exact
/// length.
///
/// # Example
/// ```
/// use wharf_types::{Algorithm, Digest};
///
/// let d: Digest = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a".parse()?;
/// assert_eq!(d.algorithm(), Algorithm::Sha256);
/// assert_eq!(d, Digest::sha256(b"{}"));
/// d.verify(b"{}")?;
/// assert!(d.verify(b"[]").is_err());
/// assert!("sha256:ABC".parse::<Digest>().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    repr: Cow<'static, str>,
}

impl Digest {
    /// The digest of the two bytes `{}`, the empty JSON object the image-spec uses as an
    /// empty config (`application/vnd.oci.empty.v1+json`).
    pub const EMPTY_JSON: Self = Self {
        algorithm: Algorithm::Sha256,
        repr: Cow::Borrowed("sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"),
    };

    /// The SHA-256 digest of `data`.
    pub fn sha256(data: &[u8]) -> Self {
        Self::compute(Algorithm::Sha256, data)
    }

    /// The digest of `data` with `algorithm`.
    pub fn compute(algorithm: Algorithm, data: &[u8]) -> Self {
        let mut digester = Digester::new(algorithm);
        digester.update(data);
        digester.finish()
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The encoded (hex) part, after the `:`.
    pub fn encoded(&self) -> &str {
        &self.repr[self.algorithm.as_str().len() + 1..]
    }

    /// The whole digest, `algorithm:encoded`.
    pub fn as_str(&self) -> &str {
        &self.repr
    }

    /// A streaming hasher of this digest's algorithm.
    pub fn digester(&self) -> Digester {
        Digester::new(self.algorithm)
    }

    /// Checks that `data` hashes to this digest.
    pub fn verify(&self, data: &[u8]) -> Result<()> {
        let mut digester = self.digester();
        digester.update(data);
        digester.verify(self).map(drop)
    }

    fn from_hash(algorithm: Algorithm, hash: &[u8]) -> Self {
        let prefix = algorithm.as_str();
        let mut repr = String::with_capacity(prefix.len() + 1 + hash.len() * 2);
        repr.push_str(prefix);
        repr.push(':');
        let mut buf = [0u8; 128];
        let hex = &mut buf[..hash.len() * 2];
        hex::encode_to_slice(hash, hex).expect("buffer is exactly twice the hash length");
        repr.push_str(std::str::from_utf8(hex).expect("hex is ASCII"));
        Self { algorithm, repr: Cow::Owned(repr) }
    }
}

fn is_algorithm_component_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn is_algorithm_separator(b: u8) -> bool {
    matches!(b, b'+' | b'.' | b'_' | b'-')
}

fn is_encoded_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-')
}

fn valid_algorithm_grammar(algorithm: &str) -> bool {
    // algorithm-component (algorithm-separator algorithm-component)*
    let mut previous_was_separator = true;
    for b in algorithm.bytes() {
        if is_algorithm_separator(b) {
            if previous_was_separator {
                return false;
            }
            previous_was_separator = true;
        } else if is_algorithm_component_char(b) {
            previous_was_separator = false;
        } else {
            return false;
        }
    }
    !previous_was_separator
}

impl FromStr for Digest {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let Some((algorithm, encoded)) = s.split_once(':') else {
            return Err(Error::invalid_digest(s, "missing `:` between algorithm and encoded part"));
        };
        if !valid_algorithm_grammar(algorithm) {
            return Err(Error::invalid_digest(
                s,
                "the algorithm must be lowercase alphanumeric components joined by `+`, `.`, `_` or `-`",
            ));
        }
        if encoded.is_empty() || !encoded.bytes().all(is_encoded_char) {
            return Err(Error::invalid_digest(
                s,
                "the encoded part must be one or more of `a-z A-Z 0-9 = _ -`",
            ));
        }
        let Some(algorithm) = Algorithm::from_name(algorithm) else {
            return Err(Error::UnsupportedDigestAlgorithm {
                algorithm: Input::new(algorithm),
                input: Input::new(s),
            });
        };
        if encoded.len() != algorithm.hex_len() {
            return Err(Error::invalid_digest(
                s,
                match algorithm {
                    Algorithm::Sha256 => "a sha256 digest has exactly 64 hex characters",
                    Algorithm::Sha512 => "a sha512 digest has exactly 128 hex characters",
                },
            ));
        }
        if !encoded.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(Error::invalid_digest(s, "the hex must be lowercase `0-9a-f`"));
        }
        Ok(Self { algorithm, repr: Cow::Owned(s.to_owned()) })
    }
}

impl TryFrom<&str> for Digest {
    type Error = Error;

    fn try_from(s: &str) -> Result<Self> {
        s.parse()
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repr)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.repr)
    }
}

impl AsRef<str> for Digest {
    fn as_ref(&self) -> &str {
        &self.repr
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.repr)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(feature = "arbitrary")]
impl<'a> arbitrary::Arbitrary<'a> for Digest {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        let algorithm = Algorithm::arbitrary(u)?;
        let bytes: &[u8] = u.arbitrary()?;
        Ok(Self::compute(algorithm, bytes))
    }
}

/// A streaming hasher: feed bytes with [`update`](Self::update), then [`finish`](Self::finish)
/// into a [`Digest`] or [`verify`](Self::verify) against an expected one.
///
/// Every byte passes through the hash exactly once; nothing is buffered.
///
/// # Example
/// ```
/// use wharf_types::{Algorithm, Digest};
///
/// let mut digester = Algorithm::Sha256.digester();
/// digester.update(b"hello ");
/// digester.update(b"world");
/// assert_eq!(digester.finish(), Digest::sha256(b"hello world"));
/// ```
#[derive(Clone)]
pub struct Digester {
    inner: Hasher,
    len: u64,
}

#[derive(Clone)]
enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Digester {
    /// A new hasher for `algorithm`.
    pub fn new(algorithm: Algorithm) -> Self {
        let inner = match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        };
        Self { inner, len: 0 }
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match self.inner {
            Hasher::Sha256(_) => Algorithm::Sha256,
            Hasher::Sha512(_) => Algorithm::Sha512,
        }
    }

    /// Hashes `data`.
    pub fn update(&mut self, data: &[u8]) {
        match &mut self.inner {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
        self.len += data.len() as u64;
    }

    /// How many bytes have been hashed.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no byte has been hashed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The hasher's state, to be [`resume`](Self::resume)d later, possibly by another
    /// process: the algorithm, the length hashed and the hash's midstate (a few hundred bytes
    /// at most). It reveals no more than the hashed bytes' length and their hash state.
    pub fn state(&self) -> Vec<u8> {
        use sha2::digest::common::hazmat::SerializableState as _;
        let (tag, midstate) = match &self.inner {
            Hasher::Sha256(h) => (b'2', h.serialize().to_vec()),
            Hasher::Sha512(h) => (b'5', h.serialize().to_vec()),
        };
        let mut out = Vec::with_capacity(9 + midstate.len());
        out.push(tag);
        out.extend_from_slice(&self.len.to_le_bytes());
        out.extend_from_slice(&midstate);
        out
    }

    /// A hasher from a [`state`](Self::state); `None` when `state` is not one.
    ///
    /// ```
    /// use wharf_types::{Algorithm, Digest, Digester};
    /// let mut first = Algorithm::Sha256.digester();
    /// first.update(b"hello ");
    /// let mut resumed = Digester::resume(&first.state()).unwrap();
    /// resumed.update(b"world");
    /// assert_eq!(resumed.finish(), Digest::sha256(b"hello world"));
    /// ```
    pub fn resume(state: &[u8]) -> Option<Self> {
        use sha2::digest::common::hazmat::SerializableState;
        fn load<H: SerializableState>(bytes: &[u8]) -> Option<H> {
            H::deserialize(&bytes.try_into().ok()?).ok()
        }
        let (&tag, rest) = state.split_first()?;
        let (len, midstate) = rest.split_first_chunk::<8>()?;
        let len = u64::from_le_bytes(*len);
        // sha2's midstate: the chaining value, the count of whole blocks, the count of bytes
        // in the block buffer, then the buffer. The counts must add up to `len` (a state that
        // does not would overflow when the hash is finished).
        let adds_up = |counter: std::ops::Range<usize>, block: u128| {
            let buffered = u128::from(midstate[counter.end]);
            let mut count = [0u8; 16];
            count[..counter.len()].copy_from_slice(&midstate[counter]);
            buffered < block
                && u128::from_le_bytes(count).checked_mul(block).and_then(|b| b.checked_add(buffered))
                    == Some(u128::from(len))
        };
        let inner = match tag {
            b'2' if midstate.len() == 104 && adds_up(32..40, 64) => Hasher::Sha256(load(midstate)?),
            b'5' if midstate.len() == 208 && adds_up(64..80, 128) => Hasher::Sha512(load(midstate)?),
            _ => return None,
        };
        Some(Self { inner, len })
    }

    /// The digest of everything hashed.
    pub fn finish(self) -> Digest {
        match self.inner {
            Hasher::Sha256(h) => Digest::from_hash(Algorithm::Sha256, &h.finalize()),
            Hasher::Sha512(h) => Digest::from_hash(Algorithm::Sha512, &h.finalize()),
        }
    }

    /// The digest of everything hashed, if it equals `expected`; otherwise
    /// [`Error::DigestMismatch`].
    pub fn verify(self, expected: &Digest) -> Result<Digest> {
        let actual = self.finish();
        if actual == *expected {
            Ok(actual)
        } else {
            Err(Error::DigestMismatch { expected: expected.clone(), actual })
        }
    }
}

impl fmt::Debug for Digester {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Digester")
            .field("algorithm", &self.algorithm())
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl std::io::Write for Digester {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO_SHA256: &str = "sha256:b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9";

    #[test]
    fn known_vectors() {
        assert_eq!(Digest::sha256(b"hello world").as_str(), HELLO_SHA256);
        assert_eq!(Digest::sha256(b"{}"), Digest::EMPTY_JSON);
        assert_eq!(
            Digest::sha256(b"").as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            Digest::compute(Algorithm::Sha512, b"").as_str(),
            "sha512:cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"
        );
    }

    #[test]
    fn states_resume_where_they_stopped() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        for algorithm in [Algorithm::Sha256, Algorithm::Sha512] {
            for cut in [0, 1, 63, 64, 65, 127, 128, 129, 999, 1000] {
                let mut first = algorithm.digester();
                first.update(&data[..cut]);
                let state = first.state();
                let mut resumed = Digester::resume(&state).expect("a state");
                assert_eq!((resumed.algorithm(), resumed.len()), (algorithm, cut as u64));
                resumed.update(&data[cut..]);
                assert_eq!(resumed.finish(), Digest::compute(algorithm, &data), "{algorithm:?} at {cut}");
                assert!(Digester::resume(&state[..state.len() - 1]).is_none());
            }
        }
        assert!(Digester::resume(b"").is_none());
        assert!(Digester::resume(b"x12345678").is_none());
        // Block counts that do not add up to the length (or overflow) are refused.
        for (algorithm, counter) in [(Algorithm::Sha256, 9 + 32..9 + 40), (Algorithm::Sha512, 9 + 64..9 + 80)]
        {
            let mut digester = algorithm.digester();
            digester.update(&data);
            let mut state = digester.state();
            state[counter.start] ^= 1;
            assert!(Digester::resume(&state).is_none(), "{algorithm:?}");
            state[counter].fill(0xff);
            assert!(Digester::resume(&state).is_none(), "{algorithm:?}");
            let mut longer = digester.state();
            longer[1] ^= 1;
            assert!(Digester::resume(&longer).is_none(), "{algorithm:?}");
        }
    }

    #[test]
    fn parses_and_displays() {
        let d: Digest = HELLO_SHA256.parse().expect("valid");
        assert_eq!(d.to_string(), HELLO_SHA256);
        assert_eq!(d.algorithm(), Algorithm::Sha256);
        assert_eq!(d.encoded(), &HELLO_SHA256[7..]);
        let json = serde_json::to_string(&d).expect("serialises");
        assert_eq!(json, format!("\"{HELLO_SHA256}\""));
        assert_eq!(serde_json::from_str::<Digest>(&json).expect("deserialises"), d);
    }

    #[test]
    fn grammar_and_support() {
        // Image-spec examples: well formed, but only sha256/sha512 are supported.
        for ok_grammar in [
            "sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564",
            "multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8",
            "sha384:abc",
            "blake3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
        ] {
            let err = ok_grammar.parse::<Digest>().expect_err(ok_grammar);
            assert!(matches!(err, Error::UnsupportedDigestAlgorithm { .. }), "{ok_grammar}: {err}");
        }
        for bad in [
            "",
            "sha256",
            ":abc",
            "sha256:",
            "SHA256:b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9",
            "sha256:B94D27B9934D3E08A52E52D7DA7DABFAC484EFE37A5380EE9088F7ACE2EFCDE9",
            "sha256:abc",
            "sha256:b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde",
            "sha256:b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9a",
            "sha256:z94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9",
            "sha512:b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9",
            "+sha256:abc",
            "sha256+:abc",
            "sha..256:abc",
            "sha256:a/b",
            "sha256:a:b",
        ] {
            let err = bad.parse::<Digest>().expect_err(bad);
            assert!(matches!(err, Error::InvalidDigest { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn verify_and_stream() {
        let d = Digest::sha256(b"hello world");
        d.verify(b"hello world").expect("matches");
        let err = d.verify(b"hello world!").expect_err("differs");
        assert!(matches!(err, Error::DigestMismatch { .. }));
        let mut digester = d.digester();
        for chunk in b"hello world".chunks(3) {
            digester.update(chunk);
        }
        assert_eq!(digester.len(), 11);
        assert_eq!(digester.verify(&d).expect("matches"), d);
    }
}
