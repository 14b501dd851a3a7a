//! A Roboflow-style model API: `GET {API_BASE_URL}/ort/<dataset>/<version>?api_key=…` answers
//! metadata plus URLs of the weights and environment, which are then downloaded. The API key is
//! sent but never logged: errors are formatted without their URLs.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::entry_writer::EntryWriter;
use crate::remote::{describe, request_error};
use crate::source::ArtifactSource;
use sightline_core::{CoreError, ModelId};

/// Metadata and environment documents are small; a larger answer is a broken or hostile API.
const MAX_METADATA_BYTES: u64 = 8 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct ApiSettings {
    pub base_url: String,
    pub api_key: Option<String>,
    /// Connect and read timeout.
    pub timeout: Duration,
}

pub struct ApiSource {
    client: reqwest::Client,
    base_url: String,
    api_key: Option<String>,
}

#[derive(Debug, Deserialize)]
struct OrtAnswer {
    ort: OrtMetadata,
}

#[derive(Debug, Deserialize)]
struct OrtMetadata {
    #[serde(rename = "type")]
    task_type: Option<String>,
    #[serde(rename = "modelType")]
    model_type: Option<String>,
    model: Option<String>,
    environment: Option<String>,
    classes: Option<Vec<String>>,
    colors: Option<Map<String, Value>>,
    keypoints_metadata: Option<Value>,
}

impl ApiSource {
    pub fn new(settings: &ApiSettings) -> Result<Self, CoreError> {
        let client = reqwest::Client::builder()
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .read_timeout(settings.timeout)
            .build()
            .map_err(|e| CoreError::Internal(format!("cannot build the model API client: {}", describe(&e))))?;
        Ok(ApiSource {
            client,
            base_url: settings.base_url.trim_end_matches('/').to_owned(),
            api_key: settings.api_key.clone().filter(|k| !k.is_empty()),
        })
    }

    async fn metadata(&self, id: &ModelId) -> Result<OrtMetadata, CoreError> {
        let what = format!("model API {}", self.origin(id));
        let mut query = vec![("nocache", "true"), ("dynamic", "true")];
        if let Some(key) = &self.api_key {
            query.push(("api_key", key));
        }
        let response =
            self.client.get(self.origin(id)).query(&query).send().await.map_err(|e| request_error(&what, e))?;
        let response = check_status(&what, response)?;
        let body = read_bounded(&what, response).await?;
        let answer: OrtAnswer = serde_json::from_slice(&body)
            .map_err(|e| CoreError::SourceBadResponse(format!("{what}: malformed metadata: {e}")))?;
        Ok(answer.ort)
    }

    async fn download(&self, url: &str, name: &str, writer: &mut EntryWriter) -> Result<(), CoreError> {
        let what = format!("downloading {name} from {}", without_query(url));
        let response = self.client.get(url).send().await.map_err(|e| request_error(&what, e))?;
        let mut response = check_status(&what, response)?;
        let mut part = writer.create(name, response.content_length()).await?;
        while let Some(chunk) = response.chunk().await.map_err(|e| request_error(&what, e))? {
            part.write(&chunk).await?;
        }
        writer.commit(part).await
    }

    async fn environment(&self, url: Option<&str>, colors: Option<Map<String, Value>>) -> Result<Value, CoreError> {
        let mut environment = match url {
            Some(url) => {
                let what = format!("downloading environment.json from {}", without_query(url));
                let response = self.client.get(url).send().await.map_err(|e| request_error(&what, e))?;
                let body = read_bounded(&what, check_status(&what, response)?).await?;
                serde_json::from_slice(&body)
                    .map_err(|e| CoreError::SourceBadResponse(format!("{what}: invalid JSON: {e}")))?
            }
            None => json!({}),
        };
        if let (Some(colors), Some(object)) = (colors, environment.as_object_mut()) {
            let merged = object.entry("COLORS").or_insert_with(|| json!({}));
            if let Some(merged) = merged.as_object_mut() {
                merged.extend(colors);
            }
        }
        Ok(environment)
    }
}

/// Statuses mapped as Roboflow's server maps its API's answers; 5xx and 429 are worth a retry.
fn check_status(what: &str, response: reqwest::Response) -> Result<reqwest::Response, CoreError> {
    let status = response.status().as_u16();
    let message = format!("{what}: the source answered {status}");
    match status {
        200..=299 => Ok(response),
        401 => Err(CoreError::SourceUnauthorized(message)),
        402 => Err(CoreError::SourcePaymentRequired(message)),
        403 => Err(CoreError::SourceForbidden(message)),
        404 => Err(CoreError::ModelNotFound(message)),
        423 => Err(CoreError::SourceLocked(message)),
        429 | 500..=599 => Err(CoreError::SourceUnavailable(message)),
        _ => Err(CoreError::SourceBadResponse(message)),
    }
}

async fn read_bounded(what: &str, mut response: reqwest::Response) -> Result<Vec<u8>, CoreError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| request_error(what, e))? {
        if (body.len() + chunk.len()) as u64 > MAX_METADATA_BYTES {
            return Err(CoreError::SourceBadResponse(format!("{what}: answer larger than {MAX_METADATA_BYTES} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn without_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

fn to_json_bytes(value: &Value) -> Result<Vec<u8>, CoreError> {
    serde_json::to_vec_pretty(value).map_err(|e| CoreError::Internal(format!("cannot serialise model metadata: {e}")))
}

#[async_trait]
impl ArtifactSource for ApiSource {
    fn name(&self) -> &'static str {
        "api"
    }

    fn origin(&self, id: &ModelId) -> String {
        format!("{}/ort/{id}", self.base_url)
    }

    async fn fetch(&self, id: &ModelId, writer: &mut EntryWriter) -> Result<(), CoreError> {
        let meta = self.metadata(id).await?;
        let missing =
            |field: &str| CoreError::SourceBadResponse(format!("model API metadata for {id} has no ort.{field}"));
        let model_url = meta.model.as_deref().ok_or_else(|| missing("model"))?;
        let task_type = meta.task_type.as_deref().ok_or_else(|| missing("type"))?;
        let model_type = meta.model_type.as_deref().ok_or_else(|| missing("modelType"))?;

        self.download(model_url, "weights.onnx", writer).await?;
        let environment = self.environment(meta.environment.as_deref(), meta.colors).await?;
        writer.write_bytes("environment.json", &to_json_bytes(&environment)?).await?;
        if let Some(classes) = &meta.classes {
            writer.write_bytes("class_names.txt", classes.join("\n").as_bytes()).await?;
        }
        let model_type_json =
            json!({"project_task_type": task_type, "model_type": model_type, "model_id": id.to_string()});
        writer.write_bytes("model_type.json", &to_json_bytes(&model_type_json)?).await?;
        if let Some(keypoints) = &meta.keypoints_metadata {
            writer.write_bytes("keypoints_metadata.json", &to_json_bytes(keypoints)?).await?;
        }
        Ok(())
    }
}
