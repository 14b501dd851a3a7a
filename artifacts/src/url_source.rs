//! Models published as a `.tar.gz` at a URL (a custom catalogue model's `sources.url`, as
//! fastembed falls back to archives on a bucket): downloaded to a hidden file in the entry,
//! checked against its sha256 when the description gives one, and unpacked by
//! [`crate::archive`], which refuses the whole archive at the first entry that could leave the
//! entry or fill the disk. A refused archive leaves nothing: the cache removes the entry of a
//! failed fetch, and the downloaded archive is deleted in every case.
//!
//! Only https is fetched (and plain http on loopback, where the URL itself is on loopback: the
//! tests); redirects are followed by hand under the same rule.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::LOCATION;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::archive::{read_tar_gz, ArchiveEvent};
use crate::catalogue::{self, ArchiveRef};
use crate::entry_writer::{EntryWriter, PartFile};
use crate::files::hex;
use crate::remote::{fetchable, is_loopback_http, request_error};
use crate::source::ArtifactSource;
use sightline_core::{CoreError, ModelId};

const MAX_REDIRECTS: usize = 5;

#[derive(Debug, Clone)]
pub struct UrlSettings {
    /// `MAX_MODEL_ARCHIVE_BYTES`: the most an archive may hold unpacked (and be, packed).
    pub max_archive_bytes: u64,
    pub timeout: Duration,
}

pub struct UrlSource {
    client: reqwest::Client,
    max_bytes: u64,
}

/// Deletes the downloaded archive however the fetch ends.
struct Downloaded(PathBuf);

impl Drop for Downloaded {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl UrlSource {
    pub fn new(settings: &UrlSettings) -> Result<Self, CoreError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .read_timeout(settings.timeout)
            .build()
            .map_err(|e| CoreError::Internal(format!("cannot build the archive client: {e}")))?;
        Ok(UrlSource { client, max_bytes: settings.max_archive_bytes })
    }

    /// The archive into a hidden file of the entry, checked against `archive.sha256`.
    async fn download(&self, archive: &ArchiveRef, into: &std::path::Path) -> Result<Downloaded, CoreError> {
        let mut url = reqwest::Url::parse(&archive.url)
            .map_err(|e| CoreError::SourceBadResponse(format!("archive URL {}: {e}", archive.url)))?;
        let loopback_http = is_loopback_http(&url);
        let what = format!("downloading the archive {}", archive.url);
        let mut response = None;
        for _ in 0..=MAX_REDIRECTS {
            if !fetchable(&url, loopback_http) {
                return Err(CoreError::SourceBadResponse(format!("{what}: only https is fetched, not {url}")));
            }
            let answer = self.client.get(url.clone()).send().await.map_err(|e| request_error(&what, e))?;
            if answer.status().is_redirection() {
                let location = answer.headers().get(LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default();
                url = url
                    .join(location)
                    .map_err(|e| CoreError::SourceBadResponse(format!("{what}: unusable redirect: {e}")))?;
                continue;
            }
            response = Some(answer);
            break;
        }
        let response = response.ok_or_else(|| CoreError::SourceBadResponse(format!("{what}: too many redirects")))?;
        let response = match response.status().as_u16() {
            200..=299 => response,
            404 => return Err(CoreError::ModelNotFound(format!("{what}: 404"))),
            429 | 500..=599 => return Err(CoreError::SourceUnavailable(format!("{what}: {}", response.status()))),
            _ => return Err(CoreError::SourceBadResponse(format!("{what}: {}", response.status()))),
        };
        let path = into.join(format!(".archive-{}.tar.gz", std::process::id()));
        let guard = Downloaded(path.clone());
        let mut file = tokio::fs::File::create(&path)
            .await
            .map_err(|e| CoreError::Cache(format!("cannot create {}: {e}", path.display())))?;
        let (mut hasher, mut size) = (Sha256::new(), 0u64);
        let mut response = response;
        while let Some(chunk) = response.chunk().await.map_err(|e| request_error(&what, e))? {
            size += chunk.len() as u64;
            if size > self.max_bytes {
                return Err(CoreError::SourceBadResponse(format!(
                    "{what}: larger than MAX_MODEL_ARCHIVE_BYTES={}",
                    self.max_bytes
                )));
            }
            hasher.update(&chunk);
            file.write_all(&chunk)
                .await
                .map_err(|e| CoreError::Cache(format!("cannot write {}: {e}", path.display())))?;
        }
        file.flush().await.map_err(|e| CoreError::Cache(format!("cannot write {}: {e}", path.display())))?;
        let digest = hex(&hasher.finalize());
        if let Some(expected) = &archive.sha256 {
            if *expected != digest {
                return Err(CoreError::SourceBadResponse(format!(
                    "{what}: its sha256 is {digest}, the description says {expected}"
                )));
            }
        }
        Ok(guard)
    }

    /// Unpacks on a blocking thread, handing the files to the entry writer as they come.
    async fn unpack(&self, archive: &Downloaded, model_file: &str, writer: &mut EntryWriter) -> Result<(), CoreError> {
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<ArchiveEvent>(16);
        let (path, max) = (archive.0.clone(), self.max_bytes);
        let reader = tokio::task::spawn_blocking(move || {
            let file = std::fs::File::open(&path).map_err(|e| CoreError::Cache(format!("{}: {e}", path.display())))?;
            read_tar_gz(std::io::BufReader::new(file), max, |event| {
                sender.blocking_send(event).map_err(|_| CoreError::Internal("the archive writer stopped".into()))
            })
        });
        // The model file is stored as model.onnx, wherever the archive keeps it.
        let wanted = model_file.rsplit('/').next().unwrap_or(model_file).to_owned();
        let mut part: Option<PartFile> = None;
        let mut written: Result<(), CoreError> = Ok(());
        while let Some(event) = receiver.recv().await {
            if written.is_err() {
                continue;
            }
            written = match event {
                ArchiveEvent::File { name, size } => {
                    let name = if name == wanted { "model.onnx".to_owned() } else { name };
                    writer.create(&name, Some(size)).await.map(|p| part = Some(p))
                }
                ArchiveEvent::Data(data) => match part.as_mut() {
                    Some(p) => p.write(&data).await,
                    None => Err(CoreError::Internal("archive data before its file".into())),
                },
                ArchiveEvent::End => match part.take() {
                    Some(p) => writer.commit(p).await,
                    None => Ok(()),
                },
            };
        }
        let read = reader.await.map_err(|e| CoreError::Internal(format!("archive reader: {e}")))?;
        read.and(written)
    }
}

#[async_trait]
impl ArtifactSource for UrlSource {
    fn name(&self) -> &'static str {
        "url"
    }

    fn origin(&self, id: &ModelId) -> String {
        catalogue::find(&id.to_string())
            .and_then(|e| e.archive)
            .map_or_else(|| format!("(no archive URL for {id})"), |a| a.url)
    }

    async fn fetch(&self, id: &ModelId, writer: &mut EntryWriter) -> Result<(), CoreError> {
        let entry = catalogue::find(&id.to_string());
        let Some((archive, model_file)) = entry.and_then(|e| e.archive.map(|a| (a, e.model_file))) else {
            return Err(CoreError::ModelNotFound(format!("no catalogue model {id} has an archive URL")));
        };
        let downloaded = self.download(&archive, writer.dir()).await?;
        self.unpack(&downloaded, &model_file, writer).await?;
        if !writer.dir().join("model.onnx").is_file() {
            return Err(CoreError::SourceBadResponse(format!("the archive {} holds no {model_file}", archive.url)));
        }
        Ok(())
    }
}
