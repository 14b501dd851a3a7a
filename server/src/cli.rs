//! `sightline pull | models | rm`: the model cache from the command line (`embed` is
//! `crate::bulk_embed`). They work on
//! MODEL_CACHE_DIR directly (no server needed) and take the same per-model locks as a running
//! server, so they are safe beside one.

use std::io::Write;
use std::sync::{Arc, Mutex};

use indicatif::{ProgressBar, ProgressStyle};
use sightline_artifacts::{Progress, VerifyLevel};
use sightline_core::{CoreError, ModelId};

use crate::app::build_artifacts;
use crate::config::{ModelsArgs, PullArgs, RmArgs};
use crate::startup_error::StartupError;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error("{0}")]
    Core(#[from] CoreError),
    #[error("{0} is not in the model cache")]
    NotCached(ModelId),
    #[error("cannot write to stdout: {0}")]
    Stdout(#[from] std::io::Error),
    #[error("{failed} of {total} inputs could not be embedded (see their `error` lines)")]
    Failed { failed: usize, total: usize },
}

pub use crate::bulk_embed::embed;

/// One bar per file, drawn on stderr (and not at all when stderr is not a terminal).
#[derive(Default)]
struct Bars {
    current: Mutex<Option<ProgressBar>>,
}

impl Progress for Bars {
    fn file_started(&self, name: &str, total: Option<u64>) {
        let bar = match total {
            Some(total) => ProgressBar::new(total).with_style(
                ProgressStyle::with_template("{msg:24} [{bar:32}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            ),
            None => ProgressBar::new_spinner(),
        };
        bar.set_message(name.to_owned());
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(bar);
    }

    fn advanced(&self, bytes: u64) {
        if let Some(bar) = self.current.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            bar.inc(bytes);
        }
    }

    fn file_finished(&self, _name: &str) {
        if let Some(bar) = self.current.lock().unwrap_or_else(|p| p.into_inner()).take() {
            bar.finish();
        }
    }
}

pub async fn pull(args: PullArgs) -> Result<(), CliError> {
    let id = ModelId::parse(&args.model_id)?;
    let cache = build_artifacts(&args.store).await?;
    let entry = cache.pull(&id, args.source.as_deref(), Arc::new(Bars::default())).await?;
    let verb = if entry.downloaded { "downloaded" } else { "already cached" };
    writeln!(
        std::io::stdout(),
        "{id}: {verb} from {} ({}), {} files, {} bytes, in {}",
        entry.manifest.source,
        entry.manifest.origin,
        entry.manifest.files.len(),
        entry.manifest.total_bytes(),
        entry.dir.display()
    )?;
    Ok(())
}

pub async fn models(args: ModelsArgs) -> Result<(), CliError> {
    if args.catalogue {
        return catalogue();
    }
    let cache = build_artifacts(&args.store).await?;
    let level = if args.verify { VerifyLevel::Sha256 } else { VerifyLevel::Size };
    let rows = cache.list(level).await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{:<40} {:<8} {:>14} {:<11} ORIGIN", "MODEL", "SOURCE", "BYTES", "INTEGRITY")?;
    for row in rows {
        let integrity = match &row.problem {
            Some(problem) => format!("{} ({problem})", row.integrity),
            None => row.integrity.to_owned(),
        };
        writeln!(
            out,
            "{:<40} {:<8} {:>14} {:<11} {}",
            row.model_id,
            row.source.as_deref().unwrap_or("-"),
            row.bytes,
            integrity,
            row.origin.as_deref().unwrap_or("-")
        )?;
    }
    Ok(())
}

/// The embedding catalogue, one model a line.
fn catalogue() -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<36} {:<6} {:>5} {:>7} {:<11} {:<7} REPOSITORY/FILE",
        "MODEL", "KIND", "DIM", "GB", "LICENCE", "SERVED"
    )?;
    for e in sightline_artifacts::catalogue::catalogue() {
        let kind = match e.modality {
            sightline_artifacts::catalogue::Modality::Image => "image",
            sightline_artifacts::catalogue::Modality::Text => "text",
        };
        let served = if e.served { "yes" } else { "no" };
        writeln!(
            out,
            "{:<36} {kind:<6} {:>5} {:>7.2} {:<11} {served:<7} {}/{}",
            e.model, e.dim, e.size_in_gb, e.license, e.repository, e.model_file
        )?;
    }
    Ok(())
}

pub async fn rm(args: RmArgs) -> Result<(), CliError> {
    let id = ModelId::parse(&args.model_id)?;
    let cache = build_artifacts(&args.store).await?;
    if !cache.remove(&id).await? {
        return Err(CliError::NotCached(id));
    }
    writeln!(std::io::stdout(), "{id}: removed from {}", cache.root().display())?;
    Ok(())
}
