//! The registry the client benches talk to: `wharf-server` in-process, fs storage in `dir`,
//! on a loopback port, with a client that speaks plain HTTP to it.

use std::path::Path;
use std::sync::Arc;

use wharf::client::{Client, ClientBuilder};

/// Starts the server (it runs until the process ends) and returns its `host:port` and a client.
pub(crate) async fn start(dir: &Path) -> (String, Client) {
    let storage = Arc::new(wharf::store::FsStore::open(dir).await.expect("store"));
    let server =
        wharf::server::Server::bind("127.0.0.1:0".parse().expect("addr"), wharf::server::Wharf::new(storage))
            .await
            .expect("bind");
    let host = server.local_addr().to_string();
    std::mem::forget(server.spawn());
    let client = ClientBuilder::new().with_insecure_host(&host).build().expect("client");
    (host, client)
}
