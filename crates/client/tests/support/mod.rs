//! Checks shared by the test binaries.

use bytes::Bytes;
use wharf_client::Client;
use wharf_types::{Descriptor, ImageManifest, Manifest, MediaType, Reference};

/// Pushes a subject image and a signature-like referrer to `host`, then lists the referrers.
pub(crate) async fn referrers_round_trip(client: &Client, host: &str) {
    let subject_ref: Reference = format!("{host}/signed/app:v1").parse().expect("reference");
    let empty = client.push_blob(&subject_ref, Bytes::from_static(b"{}")).await.expect("empty");
    let subject = ImageManifest::new(Descriptor::new(MediaType::OCI_EMPTY, empty.clone(), 2), vec![]);
    let subject = Manifest::from_bytes(serde_json::to_vec(&subject).expect("json"), None).expect("subject");
    client.push_manifest(&subject_ref, &subject).await.expect("subject");
    let sig = client.push_blob(&subject_ref, Bytes::from_static(b"signature")).await.expect("sig");
    for (i, artifact_type) in
        ["application/vnd.example.signature", "application/vnd.example.sbom"].into_iter().enumerate()
    {
        let mut referrer = ImageManifest::new(
            Descriptor::new(MediaType::OCI_EMPTY, empty.clone(), 2),
            vec![Descriptor::new("application/octet-stream".parse().expect("media type"), sig.clone(), 9)],
        );
        referrer.artifact_type = Some(artifact_type.parse().expect("media type"));
        referrer.subject =
            Some(Descriptor::new(MediaType::OCI_MANIFEST, subject.digest().clone(), subject.size()));
        referrer.annotations = Some([("n".to_owned(), i.to_string())].into_iter().collect());
        let referrer =
            Manifest::from_bytes(serde_json::to_vec(&referrer).expect("json"), None).expect("referrer");
        client
            .push_referrer(&subject_ref.clone().with_digest(referrer.digest().clone()), &referrer)
            .await
            .expect("push referrer");
    }
    let all = client.referrers(&subject_ref, subject.digest(), None).await.expect("referrers");
    assert_eq!(all.len(), 2);
    let sboms = client
        .referrers(&subject_ref, subject.digest(), Some("application/vnd.example.sbom"))
        .await
        .expect("filtered");
    assert_eq!(sboms.len(), 1);
    assert_eq!(sboms[0].annotation("n"), Some("1"));
}
