//! Models in an S3 bucket (or any S3-compatible store): `<prefix>/<dataset>/<version>/<file>`.
//! Credentials, region and `AWS_ENDPOINT_URL` come from the standard AWS configuration chain.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::Region;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::entry_writer::EntryWriter;
use crate::files::is_valid_file_name;
use crate::source::ArtifactSource;
use sightline_core::{CoreError, ModelId};

#[derive(Debug, Clone)]
pub struct S3Settings {
    pub bucket: String,
    pub prefix: String,
    /// Connect and read timeout.
    pub timeout: Duration,
}

pub struct S3Source {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
}

impl S3Source {
    pub async fn new(settings: &S3Settings) -> Self {
        let shared = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .read_timeout(settings.timeout)
            .build();
        // The cache retries with its own backoff; SDK retries underneath would multiply the attempts.
        let mut config =
            aws_sdk_s3::config::Builder::from(&shared).retry_config(RetryConfig::disabled()).timeout_config(timeouts);
        if shared.endpoint_url().is_some() {
            // S3-compatible stores (MinIO, moto, Ceph) rarely serve virtual-host-style bucket names.
            config = config.force_path_style(true);
        }
        if shared.region().is_none() {
            config = config.region(Region::new("us-east-1"));
        }
        S3Source {
            client: aws_sdk_s3::Client::from_conf(config.build()),
            bucket: settings.bucket.clone(),
            prefix: settings.prefix.trim_matches('/').to_owned(),
        }
    }

    fn key_prefix(&self, id: &ModelId) -> String {
        if self.prefix.is_empty() {
            format!("{id}/")
        } else {
            format!("{}/{id}/", self.prefix)
        }
    }

    /// `(file name, size)` of every object directly under the model's prefix.
    async fn list(&self, id: &ModelId) -> Result<Vec<(String, Option<u64>)>, CoreError> {
        let prefix = self.key_prefix(id);
        let mut files = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&prefix)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| classify(&format!("listing {}", self.origin(id)), e))?;
            for object in page.contents() {
                let Some(name) = object.key().and_then(|k| k.strip_prefix(&prefix)) else { continue };
                if is_valid_file_name(name) {
                    files.push((name.to_owned(), object.size().and_then(|s| u64::try_from(s).ok())));
                }
            }
            token = page.next_continuation_token().map(str::to_owned);
            if token.is_none() {
                return Ok(files);
            }
        }
    }

    /// `dataset/version` of every object three levels under the prefix (`dataset/version/file`).
    async fn list_all(&self) -> Result<Vec<ModelId>, CoreError> {
        let prefix = if self.prefix.is_empty() { String::new() } else { format!("{}/", self.prefix) };
        let mut ids = std::collections::BTreeSet::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&prefix)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| classify(&format!("listing s3://{}/{prefix}", self.bucket), e))?;
            for key in page.contents().iter().filter_map(|o| o.key()) {
                let parts: Vec<&str> = key.strip_prefix(&prefix).unwrap_or(key).split('/').collect();
                if let [dataset, version, file] = parts.as_slice() {
                    if let (true, Ok(id)) = (is_valid_file_name(file), ModelId::parse(&format!("{dataset}/{version}")))
                    {
                        ids.insert(id);
                    }
                }
            }
            token = page.next_continuation_token().map(str::to_owned);
            if token.is_none() || ids.len() >= crate::source::MAX_LISTED_MODELS {
                return Ok(ids.into_iter().take(crate::source::MAX_LISTED_MODELS).collect());
            }
        }
    }

    async fn download(&self, key: &str, name: &str, writer: &mut EntryWriter) -> Result<(), CoreError> {
        let where_ = format!("s3://{}/{key}", self.bucket);
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| classify(&format!("downloading {where_}"), e))?;
        let expected = object.content_length().and_then(|l| u64::try_from(l).ok());
        let mut body = object.body;
        let mut part = writer.create(name, expected).await?;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| {
                CoreError::SourceUnavailable(format!("downloading {where_}: {}", DisplayErrorContext(&e)))
            })?;
            part.write(&chunk).await?;
        }
        writer.commit(part).await
    }
}

/// Maps an SDK failure onto the cache's error convention (see [`ArtifactSource`]).
fn classify<E>(what: &str, err: SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> CoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let detail = || format!("{what}: {}", DisplayErrorContext(&err));
    match &err {
        SdkError::TimeoutError(_) => CoreError::SourceTimeout(detail()),
        SdkError::DispatchFailure(failure) if failure.is_timeout() => CoreError::SourceTimeout(detail()),
        SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => CoreError::SourceUnavailable(detail()),
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = service.err().code().unwrap_or("unknown error");
            let message = format!("{what}: S3 answered {status} ({code})");
            match status {
                401 => CoreError::SourceUnauthorized(message),
                403 => CoreError::SourceForbidden(message),
                404 => CoreError::ModelNotFound(message),
                429 | 500..=599 => CoreError::SourceUnavailable(message),
                _ => CoreError::SourceBadResponse(message),
            }
        }
        _ => CoreError::SourceBadResponse(detail()),
    }
}

#[async_trait]
impl ArtifactSource for S3Source {
    fn name(&self) -> &'static str {
        "s3"
    }

    fn origin(&self, id: &ModelId) -> String {
        format!("s3://{}/{}", self.bucket, self.key_prefix(id))
    }

    async fn list_models(&self) -> Option<Result<Vec<ModelId>, CoreError>> {
        Some(self.list_all().await)
    }

    async fn fetch(&self, id: &ModelId, writer: &mut EntryWriter) -> Result<(), CoreError> {
        let files = self.list(id).await?;
        if files.is_empty() {
            return Err(CoreError::ModelNotFound(format!("{id}: no objects under {}", self.origin(id))));
        }
        let prefix = self.key_prefix(id);
        for (name, _) in files {
            self.download(&format!("{prefix}{name}"), &name, writer).await?;
        }
        Ok(())
    }
}
