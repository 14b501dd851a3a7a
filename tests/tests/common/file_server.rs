//! A tiny HTTP server for `url` image inputs: `/img/<name>` serves `tests/data/images/<name>`,
//! `/redirect?to=<url>` answers 302, `/text` answers plain text. Binds any loopback address, so
//! tests can tell an allowed 127.0.0.1 from a refused 127.0.0.2.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

pub struct FileServer {
    pub base: String,
    hits: Arc<AtomicU32>,
    task: tokio::task::JoinHandle<()>,
}

impl FileServer {
    pub async fn start(ip: &str) -> FileServer {
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let hits = Arc::new(AtomicU32::new(0));
        let task_hits = hits.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                task_hits.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let _ = serve(stream).await;
                });
            }
        });
        FileServer { base, hits, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Connections accepted so far.
    pub fn hits(&self) -> u32 {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut stream: TcpStream) -> std::io::Result<()> {
    let Some(target) = super::read_request_target(&mut stream).await? else { return Ok(()) };
    let (status, extra, body): (u16, String, Vec<u8>) = if let Some(name) = target.strip_prefix("/img/") {
        match std::fs::read(super::data(&format!("images/{name}"))) {
            Ok(bytes) => (200, "Content-Type: image/png\r\n".into(), bytes),
            Err(_) => (404, String::new(), b"no such image".to_vec()),
        }
    } else if let Some(to) = target.strip_prefix("/redirect?to=") {
        (302, format!("Location: {to}\r\n"), Vec::new())
    } else if target == "/text" {
        (200, "Content-Type: text/plain\r\n".into(), b"this is not an image".to_vec())
    } else {
        (404, String::new(), b"not found".to_vec())
    };
    let head = format!("HTTP/1.1 {status} X\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&body).await?;
    stream.shutdown().await
}
