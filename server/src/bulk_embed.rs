//! `sightline embed --model NAME FILES_OR_DIR...`: image files through an embedding model in this
//! process (the same service, model cache and batcher as the server), one JSON line per file on
//! stdout (`path` and the unit `vector`, or `path` and `error`), a progress bar on stderr.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::stream::{self, StreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use prometheus::Registry;
use serde_json::json;
use sightline_artifacts::catalogue::Modality;
use sightline_core::{CoreError, PreprocessingFlags};

use crate::app::{build_artifacts, build_manager};
use crate::cli::CliError;
use crate::config::EmbedArgs;
use crate::image_input::ImageInput;
use crate::service::{ImageJob, Service, IMAGES_IN_FLIGHT};
use crate::startup_error::StartupError;
use crate::types::embeddings::{normalized, resolve_embedding_model};

/// Files larger than this are refused before they are read (the server's body bound).
fn read_bounded(path: &Path, limit: usize) -> Result<Vec<u8>, String> {
    let size = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if size > limit as u64 {
        return Err(format!("{size} bytes, over MAX_BODY_BYTES={limit}"));
    }
    std::fs::read(path).map_err(|e| e.to_string())
}

/// The files named, folders expanded recursively, each folder's entries in name order.
fn files_of(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, CliError> {
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let mut entries: Vec<PathBuf> =
                std::fs::read_dir(input)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
            entries.sort();
            files.extend(files_of(&entries)?);
        } else if input.is_file() {
            files.push(input.clone());
        } else {
            return Err(CliError::Core(CoreError::InvalidParameter(format!(
                "{} is no file or folder",
                input.display()
            ))));
        }
    }
    Ok(files)
}

pub async fn embed(args: EmbedArgs) -> Result<(), CliError> {
    let config = args.config;
    let id = resolve_embedding_model(&args.model, Modality::Image)
        .map_err(|e| CliError::Core(CoreError::InvalidParameter(e.to_string())))?;
    let files = files_of(&args.inputs)?;
    let dylib = config.ort_dylib_path.clone().ok_or(StartupError::NoRuntimePath)?;
    sightline_engine::init_runtime_with(&dylib, config.shared_threads()).map_err(StartupError::from)?;
    let execution = crate::execution::start(&config, &dylib)?;
    let artifacts = build_artifacts(&config.store).await?;
    let pipeline = sightline_engine::PipelineMetrics::unregistered();
    let manager = build_manager(&config, &Registry::new(), &pipeline, &HashSet::new(), artifacts.clone(), &execution)?;
    let service = Arc::new(Service::new(manager, artifacts, execution.gpus.clone(), pipeline, &config)?);
    service.load(&id).await.map_err(|e| CliError::Core(CoreError::InvalidParameter(e.to_string())))?;

    let bar = ProgressBar::new(files.len() as u64).with_style(
        ProgressStyle::with_template("{msg} [{bar:32}] {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(id.to_string());
    let limit = config.max_body_bytes;
    let answers = stream::iter(files.into_iter().map(|path| {
        let (service, id) = (service.clone(), id.clone());
        async move {
            let bytes = match read_bounded(&path, limit) {
                Ok(bytes) => bytes,
                Err(e) => return (path, Err(e)),
            };
            let job = ImageJob {
                images: vec![ImageInput::raw(bytes)],
                preprocessing: PreprocessingFlags::default(),
                visualize: None,
                options: (),
            };
            let vector = service
                .embed_images(&id, job)
                .await
                .map_err(|e| e.to_string())
                .and_then(|mut a| a.outputs.pop().map(|(v, _)| v).ok_or_else(|| "no embedding".to_owned()));
            (path, vector)
        }
    }))
    .buffered(IMAGES_IN_FLIGHT * 2);
    let (mut failed, mut total) = (0usize, 0usize);
    let mut out = std::io::stdout().lock();
    futures::pin_mut!(answers);
    while let Some((path, vector)) = answers.next().await {
        total += 1;
        let line = match vector {
            Ok(vector) => json!({"path": path, "vector": normalized(vector)}),
            Err(error) => {
                failed += 1;
                json!({"path": path, "error": error})
            }
        };
        writeln!(out, "{line}")?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    if failed > 0 {
        return Err(CliError::Failed { failed, total });
    }
    Ok(())
}
