//! The release binary as the benches start it: on a free port, serving `assets/models`, with its
//! own model cache, stopped and its cache removed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The repository (`SIGHTLINE_REPO` where the bench runs against another checkout).
pub fn root() -> PathBuf {
    if let Ok(root) = std::env::var("SIGHTLINE_REPO") {
        return PathBuf::from(root);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

pub struct ServerProcess {
    child: std::process::Child,
    cache: PathBuf,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.cache);
    }
}

pub async fn start_server_with(client: &reqwest::Client, env: &[(&str, String)]) -> (ServerProcess, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let cache = std::env::temp_dir().join(format!("sightline-bench-server-{}-{port}", std::process::id()));
    let child = Command::new(
        std::env::var("SIGHTLINE_BIN").map(PathBuf::from).unwrap_or_else(|_| root().join("target/release/sightline")),
    )
    .env("GRPC_PORT", "0")
    .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
    .env("MODEL_CACHE_DIR", &cache)
    .env("PORT", port.to_string())
    .env("HOST", "127.0.0.1")
    .env("MODEL_DIR", root().join("assets/models"))
    .env("LOG_LEVEL", "warn")
    .stdout(Stdio::null())
    .spawn()
    .expect("target/release/sightline (make bench builds it)");
    let child = ServerProcess { child, cache };
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..300 {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            return (child, base);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("server did not start");
}
