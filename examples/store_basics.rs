//! The blob store on its own: a blob put and read back by range, a wrong digest refused with
//! nothing stored, and an upload session in two chunks.
//!
//! ```text
//! cargo run --release --example store_basics
//! ```

use wharf::store::{BlobStore, FsStore, single};
use wharf::types::Digest;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = FsStore::open(dir.path()).await?;

    let digest = Digest::sha256(b"hello world");
    store.put_bytes(&digest, "hello world".into()).await?;
    let world = store.get(&digest, Some(6..11)).await?.bytes().await?;
    println!("bytes 6..11 of {digest}: {world:?}");

    let other = Digest::sha256(b"goodbye");
    let refused = store.put_bytes(&other, "hello?".into()).await.expect_err("a wrong digest");
    println!("refused: {refused}");
    assert!(store.stat(&other).await?.is_none(), "nothing was stored");

    let session = store.begin().await?;
    let offset = store.append(&session, 0, single("two ".into())).await?;
    store.append(&session, offset, single("chunks".into())).await?;
    let blob = store.commit(&session, &Digest::sha256(b"two chunks")).await?;
    println!("committed {} bytes as {}", blob.size, blob.digest);
    Ok(())
}
