//! The Hugging Face Hub: a model id `owner/name` is the repository `owner/name`. The revision
//! (`HF_REVISION`, a branch, tag or commit) is resolved to its commit once, through the hub's
//! model API, and every file is then taken at that commit, which the manifest records, so one
//! entry never mixes two revisions.
//!
//! Files are the repository's top-level model files (`.onnx`, `.json`, `.txt`), fetched through
//! `/{repo}/resolve/{commit}/{path}` under `HF_ENDPOINT` with `HF_TOKEN` as a bearer token. Large
//! files live in LFS: the hub answers a redirect to its content store with the file's sha256 in
//! `X-Linked-Etag`, and the download is checked against it (a mismatch is fetched once more, then
//! refused). Files kept in git are checked against their `ETag`, the git blob's sha1. A connection
//! cut mid-file resumes with a range request. Redirects are followed by
//! hand, without the token, and only to https (or, for a hub on loopback over plain http, the
//! test setup, to loopback).

use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{HeaderMap, AUTHORIZATION, LOCATION, RANGE};
use reqwest::StatusCode;
use serde::Deserialize;

use crate::catalogue;
use crate::entry_writer::{EntryWriter, PartFile};
use crate::remote::{fetchable, is_loopback_http, request_error};
use crate::source::ArtifactSource;
use sightline_core::{CoreError, ModelId};

/// Metadata answers are small; a larger one is a broken or hostile endpoint.
const MAX_METADATA_BYTES: usize = 8 * 1024 * 1024;
/// Range requests after a cut connection before the download counts as failed.
const RESUMES: usize = 3;

#[derive(Debug, Clone)]
pub struct HfSettings {
    /// `HF_ENDPOINT`, e.g. `https://huggingface.co`.
    pub endpoint: String,
    /// `HF_TOKEN`, for private and gated repositories.
    pub token: Option<String>,
    /// `HF_REVISION`: the branch, tag or commit taken.
    pub revision: String,
    pub timeout: Duration,
}

pub struct HfSource {
    client: reqwest::Client,
    endpoint: String,
    token: Option<String>,
    revision: String,
    /// Plain-http redirects to loopback are followed (a hub on loopback: the tests).
    loopback_http: bool,
}

#[derive(Debug, Deserialize)]
struct ModelInfo {
    sha: String,
    #[serde(default)]
    siblings: Vec<Sibling>,
}

#[derive(Debug, Deserialize)]
struct Sibling {
    rfilename: String,
}

impl HfSource {
    pub fn new(settings: &HfSettings) -> Result<Self, CoreError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .read_timeout(settings.timeout)
            .build()
            .map_err(|e| CoreError::Internal(format!("cannot build the Hugging Face client: {e}")))?;
        let endpoint = settings.endpoint.trim_end_matches('/').to_owned();
        let loopback_http = reqwest::Url::parse(&endpoint).is_ok_and(|u| is_loopback_http(&u));
        Ok(HfSource {
            client,
            endpoint,
            token: settings.token.clone().filter(|t| !t.is_empty()),
            revision: settings.revision.clone(),
            loopback_http,
        })
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(token) => request.header(AUTHORIZATION, format!("Bearer {token}")),
            None => request,
        }
    }

    /// The commit `revision` names and the repository's files.
    async fn info(&self, repo: &str) -> Result<ModelInfo, CoreError> {
        let url = format!("{}/api/models/{repo}/revision/{}", self.endpoint, self.revision);
        let what = format!("Hugging Face repository {repo}@{}", self.revision);
        let response = self.authorized(self.client.get(&url)).send().await.map_err(|e| request_error(&what, e))?;
        let response = self.check(&what, repo, response)?;
        let body = response.bytes().await.map_err(|e| request_error(&what, e))?;
        if body.len() > MAX_METADATA_BYTES {
            return Err(CoreError::SourceBadResponse(format!(
                "{what}: metadata larger than {MAX_METADATA_BYTES} bytes"
            )));
        }
        let info: ModelInfo = serde_json::from_slice(&body)
            .map_err(|e| CoreError::SourceBadResponse(format!("{what}: malformed model info: {e}")))?;
        if info.sha.len() != 40 || !info.sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(CoreError::SourceBadResponse(format!("{what}: {:?} is not a commit", info.sha)));
        }
        Ok(info)
    }

    /// The hub's statuses as the cache acts on them, naming the repository and, where a token
    /// would help, `HF_TOKEN`.
    fn check(&self, what: &str, repo: &str, response: reqwest::Response) -> Result<reqwest::Response, CoreError> {
        let status = response.status();
        let code = response.headers().get("x-error-code").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let token = if self.token.is_some() { "the token in HF_TOKEN" } else { "no HF_TOKEN is set" };
        match status.as_u16() {
            200..=299 | 301..=308 => Ok(response),
            401 => Err(CoreError::SourceUnauthorized(format!(
                "{what}: the hub answered 401 ({code}): {repo} is private, gated or does not exist, and {token} \
                 does not open it; set HF_TOKEN to a token with access"
            ))),
            403 => Err(CoreError::SourceForbidden(format!(
                "{what}: the hub answered 403 ({code}): {token} has no access to {repo}; request access on the hub \
                 or set HF_TOKEN to a token that has it"
            ))),
            404 => Err(CoreError::ModelNotFound(format!("{what}: the hub answered 404 ({code})"))),
            429 | 500..=599 => Err(CoreError::SourceUnavailable(format!("{what}: the hub answered {status}"))),
            _ => Err(CoreError::SourceBadResponse(format!("{what}: the hub answered {status}"))),
        }
    }

    /// Where a redirect may lead: https, or loopback when the hub itself is on loopback.
    fn follow(&self, what: &str, base: &str, headers: &HeaderMap) -> Result<reqwest::Url, CoreError> {
        let location = headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| CoreError::SourceBadResponse(format!("{what}: a redirect without Location")))?;
        let base = reqwest::Url::parse(base).map_err(|e| CoreError::Internal(e.to_string()))?;
        let target =
            base.join(location).map_err(|e| CoreError::SourceBadResponse(format!("{what}: unusable redirect: {e}")))?;
        let allowed = fetchable(&target, self.loopback_http);
        if !allowed {
            return Err(CoreError::SourceBadResponse(format!(
                "{what}: refusing a redirect to {}://{} (only https is followed)",
                target.scheme(),
                target.host_str().unwrap_or("")
            )));
        }
        Ok(target)
    }

    /// One file at `commit` into the entry, checked against its LFS sha256 when it has one.
    async fn download(
        &self,
        repo: &str,
        commit: &str,
        path: &str,
        name: &str,
        writer: &mut EntryWriter,
    ) -> Result<(), CoreError> {
        let url = format!("{}/{repo}/resolve/{commit}/{path}", self.endpoint);
        let what = format!("downloading {path} from {repo}@{commit}");
        let response = self.authorized(self.client.get(&url)).send().await.map_err(|e| request_error(&what, e))?;
        let response = self.check(&what, repo, response)?;
        if !response.status().is_redirection() {
            return self.regular(&what, &url, repo, response, name, writer).await;
        }
        let linked = header_text(response.headers(), "x-linked-etag").map(|v| v.trim_matches('"').to_ascii_lowercase());
        let size = header_text(response.headers(), "x-linked-size").and_then(|v| v.parse::<u64>().ok());
        let target = self.follow(&what, &url, response.headers())?;
        for attempt in 0..2 {
            let mut part = writer.create(name, size).await?;
            self.fetch_resuming(&what, &target, &mut part).await?;
            match &linked {
                Some(sha256) if *sha256 != part.sha256() => {
                    tracing::warn!(repo, path, attempt, "downloaded file does not match its sha256; fetching it again");
                    continue;
                }
                _ => return writer.commit(part).await,
            }
        }
        Err(CoreError::SourceBadResponse(format!(
            "{what}: the content's sha256 differs from the hub's X-Linked-Etag {} twice",
            linked.unwrap_or_default()
        )))
    }

    /// The content at `target` (no token: the content store's URL is signed), resumed with range
    /// requests where the connection is cut.
    async fn fetch_resuming(&self, what: &str, target: &reqwest::Url, part: &mut PartFile) -> Result<(), CoreError> {
        let mut resumes = 0;
        loop {
            let mut request = self.client.get(target.clone());
            if !part.is_empty() {
                request = request.header(RANGE, format!("bytes={}-", part.len()));
            }
            let response = request.send().await.map_err(|e| request_error(what, e))?;
            let status = response.status();
            if !part.is_empty() && status != StatusCode::PARTIAL_CONTENT {
                return Err(CoreError::SourceUnavailable(format!("{what}: the resumed request answered {status}")));
            }
            let response = self.check(what, "the content store", response)?;
            if response.status().is_redirection() {
                return Err(CoreError::SourceBadResponse(format!("{what}: the content store redirected again")));
            }
            match self.stream(what, response, part, |_| {}).await {
                Ok(()) => return Ok(()),
                Err(CoreError::SourceUnavailable(cause)) if resumes < RESUMES => {
                    resumes += 1;
                    tracing::warn!(what, written = part.len(), %cause, "download cut; resuming with a range request");
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// A file kept in git (no LFS): its `ETag` is the git blob's sha1, which the download is checked
    /// against (a mismatch is fetched once more, then refused).
    async fn regular(
        &self,
        what: &str,
        url: &str,
        repo: &str,
        first: reqwest::Response,
        name: &str,
        writer: &mut EntryWriter,
    ) -> Result<(), CoreError> {
        let mut first = Some(first);
        for attempt in 0..2 {
            let response = match first.take() {
                Some(response) => response,
                None => {
                    let again =
                        self.authorized(self.client.get(url)).send().await.map_err(|e| request_error(what, e))?;
                    self.check(what, repo, again)?
                }
            };
            let etag = header_text(response.headers(), "etag")
                .map(|v| v.trim_start_matches("W/").trim_matches('"').to_ascii_lowercase())
                .filter(|v| v.len() == 40 && v.bytes().all(|b| b.is_ascii_hexdigit()));
            let expected = response.content_length();
            let mut blob = match (&etag, expected) {
                (Some(_), Some(size)) => {
                    let mut hasher = <sha1::Sha1 as sha1::Digest>::new();
                    sha1::Digest::update(&mut hasher, format!("blob {size}\0").as_bytes());
                    Some(hasher)
                }
                _ => None,
            };
            let mut part = writer.create(name, expected).await?;
            self.stream(what, response, &mut part, |chunk| {
                if let Some(hasher) = blob.as_mut() {
                    sha1::Digest::update(hasher, chunk);
                }
            })
            .await?;
            let got = blob.map(|h| crate::files::hex(&sha1::Digest::finalize(h)));
            if got.is_some() && got != etag {
                tracing::warn!(repo, name, attempt, "downloaded file does not match its git sha1; fetching it again");
                continue;
            }
            return writer.commit(part).await;
        }
        Err(CoreError::SourceBadResponse(format!("{what}: the content's git sha1 differs from the hub's ETag twice")))
    }

    /// The body into `part`, each chunk shown to `observe` first.
    async fn stream(
        &self,
        what: &str,
        mut response: reqwest::Response,
        part: &mut PartFile,
        mut observe: impl FnMut(&[u8]),
    ) -> Result<(), CoreError> {
        while let Some(chunk) = response.chunk().await.map_err(|e| request_error(what, e))? {
            observe(&chunk);
            part.write(&chunk).await?;
        }
        Ok(())
    }
}

fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The catalogue entry that names a hub repository for `id`, and that repository (else the id's own).
fn repository_of(id: &ModelId) -> (Option<catalogue::CatalogueEntry>, String) {
    let entry = catalogue::find(&id.to_string()).filter(|e| !e.repository.is_empty());
    let repo = entry.as_ref().map_or_else(|| id.to_string(), |e| e.repository.clone());
    (entry, repo)
}

/// Files a model folder takes: top-level `.onnx`, `.json` and `.txt` (no READMEs, no subfolders).
fn wanted(path: &str) -> bool {
    !path.contains('/')
        && !path.starts_with('.')
        && [".onnx", ".json", ".txt"].iter().any(|ext| path.ends_with(ext))
        && crate::files::is_valid_file_name(path)
}

#[async_trait]
impl ArtifactSource for HfSource {
    fn name(&self) -> &'static str {
        "hf"
    }

    fn origin(&self, id: &ModelId) -> String {
        format!("{}/{}", self.endpoint, repository_of(id).1)
    }

    async fn fetch(&self, id: &ModelId, writer: &mut EntryWriter) -> Result<(), CoreError> {
        let (entry, repo) = repository_of(id);
        let info = self.info(&repo).await?;
        let paths = info.siblings.iter().map(|s| s.rfilename.as_str());
        // (path in the repository, name in the entry): a catalogue model's ONNX file wherever the
        // repository keeps it, as model.onnx, with the configs beside it; else the top-level files.
        let files: Vec<(&str, &str)> = match &entry {
            Some(e) => {
                if !info.siblings.iter().any(|s| s.rfilename == e.model_file) {
                    return Err(CoreError::ModelNotFound(format!("{repo}@{} has no {}", self.revision, e.model_file)));
                }
                std::iter::once((e.model_file.as_str(), "model.onnx"))
                    .chain(paths.filter(|p| wanted(p) && !p.ends_with(".onnx")).map(|p| (p, p)))
                    .collect()
            }
            None => paths.filter(|p| wanted(p)).map(|p| (p, p)).collect(),
        };
        if !files.iter().any(|(_, name)| name.ends_with(".onnx")) {
            return Err(CoreError::ModelNotFound(format!(
                "Hugging Face repository {repo}@{} has no top-level .onnx file",
                self.revision
            )));
        }
        writer.pin_revision(&info.sha);
        for (path, name) in files {
            self.download(&repo, &info.sha, path, name, writer).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::wanted;

    #[test]
    fn only_top_level_model_files_are_taken() {
        for ok in ["model.onnx", "config.json", "tokenizer.json", "merges.txt"] {
            assert!(wanted(ok), "{ok}");
        }
        for no in ["README.md", ".gitattributes", "onnx/model.onnx", "model.safetensors", "../x.json"] {
            assert!(!wanted(no), "{no}");
        }
    }
}
