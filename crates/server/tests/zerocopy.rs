//! Blob bodies sent with `sendfile` on plain TCP: byte-exact for whole blobs, ranges and
//! empty blobs, several frames long, in pipelined requests mixed with bodies that are not
//! files (manifests, errors) on one keep-alive connection read slowly enough that the socket
//! fills up.

use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::sync::Arc;

use crate::common::{OCI_MANIFEST, Reg, image_manifest};

/// Reads one response: its status, headers (lower-cased names) and `Content-Length` body.
fn response(reader: &mut BufReader<TcpStream>) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut line = String::new();
    reader.read_line(&mut line).expect("status line");
    let status = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("status");
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).expect("header");
        let Some((name, value)) = line.trim_end().split_once(':') else { break };
        headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
    }
    let len: usize =
        headers.iter().find(|(n, _)| n == "content-length").map_or(0, |(_, v)| v.parse().expect("length"));
    let mut body = vec![0; len];
    // Slowly at first: the server's socket fills up and its sends wait for this reader.
    let mut read = 0;
    while read < len {
        let n = reader.read(&mut body[read..(read + 4096).min(len)]).expect("body");
        assert!(n > 0, "the connection closed {read} bytes into a {len}-byte body");
        read += n;
        if read < 256 * 1024 {
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
    }
    (status, headers, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_files_go_out_byte_exact_in_pipelined_requests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = wharf_store::FsStore::open(dir.path()).await.expect("open");
    let reg = Reg::start(Arc::new(store)).await;
    // Three frames and a bit, so a body is several placeholder frames and sendfile calls.
    let big = wharf_store::testing::content(7, 12 * 1024 * 1024 + 4321);
    let small = wharf_store::testing::content(8, 1000);
    let (big_d, small_d, empty_d) = (
        reg.push_blob("org/app", &big).await,
        reg.push_blob("org/app", &small).await,
        reg.push_blob("org/app", b"").await,
    );
    let manifest = image_manifest(&small_d, small.len(), &[(big_d.clone(), big.len())], "");
    assert!(reg.push_manifest("org/app", "v1", OCI_MANIFEST, &manifest).await.status().is_success());

    let addr = reg.base.trim_start_matches("http://").to_owned();
    let requests = [
        (format!("/v2/org/app/blobs/{big_d}"), None),
        (format!("/v2/org/app/blobs/{small_d}"), Some("bytes=10-99")),
        ("/v2/org/app/manifests/v1".to_owned(), None),
        (format!("/v2/org/app/blobs/{big_d}"), Some("bytes=5000000-")),
        (format!("/v2/org/app/blobs/{empty_d}"), None),
        (
            "/v2/org/app/blobs/sha256:0000000000000000000000000000000000000000000000000000000000000000"
                .to_owned(),
            None,
        ),
        (format!("/v2/org/app/blobs/{small_d}"), None),
    ];
    let expected: Vec<(u16, Vec<u8>)> = vec![
        (200, big.to_vec()),
        (206, small[10..100].to_vec()),
        (200, manifest.clone().into_bytes()),
        (206, big[5_000_000..].to_vec()),
        (200, Vec::new()),
        (404, Vec::new()),
        (200, small.to_vec()),
    ];
    let got = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(&addr).expect("connect");
        let mut all = String::new();
        for (path, range) in &requests {
            write!(all, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: {OCI_MANIFEST}\r\n").expect("format");
            if let Some(range) = range {
                write!(all, "Range: {range}\r\n").expect("format");
            }
            all.push_str("\r\n");
        }
        stream.write_all(all.as_bytes()).expect("send");
        let mut reader = BufReader::new(stream);
        (0..requests.len()).map(|_| response(&mut reader)).collect::<Vec<_>>()
    })
    .await
    .expect("client");
    for (i, ((status, headers, body), (want_status, want))) in got.iter().zip(&expected).enumerate() {
        assert_eq!(status, want_status, "response {i}: {headers:?}");
        if *want_status == 404 {
            assert!(String::from_utf8_lossy(body).contains("BLOB_UNKNOWN"), "response {i}");
            continue;
        }
        assert_eq!(body.len(), want.len(), "response {i}");
        assert!(body == want, "response {i}: the body differs from the blob");
    }
    reg.stop().await;
}
