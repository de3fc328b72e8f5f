//! Just enough DER to read the subject common name of a client certificate (already
//! verified by rustls against the client CA).

/// One DER element: (tag, content, rest).
fn element(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = data.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The subject's common name (OID 2.5.4.3) of a DER certificate.
pub(crate) fn subject_common_name(der: &[u8]) -> Option<String> {
    const SEQUENCE: u8 = 0x30;
    const CN: &[u8] = &[0x55, 0x04, 0x03];
    let (SEQUENCE, certificate, _) = element(der)? else { return None };
    let (SEQUENCE, tbs, _) = element(certificate)? else { return None };
    let mut rest = tbs;
    // [0] version (optional), serial, signature algorithm, issuer, validity, subject.
    let (tag, _, after) = element(rest)?;
    if tag == 0xa0 {
        rest = after;
    }
    for _ in 0..4 {
        rest = element(rest)?.2;
    }
    let (SEQUENCE, mut names, _) = element(rest)? else { return None };
    while !names.is_empty() {
        let (_, set, next) = element(names)?;
        names = next;
        let mut attributes = set;
        while !attributes.is_empty() {
            let (_, attribute, next) = element(attributes)?;
            attributes = next;
            let (0x06, oid, value) = element(attribute)? else { continue };
            if oid == CN {
                let (_, text, _) = element(value)?;
                return String::from_utf8(text.to_vec()).ok();
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_common_name_of_a_generated_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).expect("params");
        params.distinguished_name.push(rcgen::DnType::OrganizationName, "Wharf");
        params.distinguished_name.push(rcgen::DnType::CommonName, "alice");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("cert");
        assert_eq!(super::subject_common_name(cert.der()).as_deref(), Some("alice"));
        assert_eq!(super::subject_common_name(&cert.der()[..40]), None);
        assert_eq!(super::subject_common_name(b""), None);
    }
}
