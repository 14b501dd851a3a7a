//! The process-wide ONNX Runtime environment, loaded from `ORT_DYLIB_PATH` (ort's `load-dynamic`).

use std::path::Path;
use std::sync::OnceLock;

use ort::environment::Environment;

use crate::ModelError;

static ENVIRONMENT: OnceLock<Environment> = OnceLock::new();

/// What `/info` reports about the runtime.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RuntimeInfo {
    pub library: String,
    pub execution_provider: String,
}

/// Loads the library and builds the environment. `ort::init_from` (not `ort::init`) so a missing or
/// wrong library is an error the server reports at start-up instead of a panic at the first request.
pub fn init_runtime(dylib_path: &Path) -> Result<RuntimeInfo, ModelError> {
    let runtime_error = |reason: String| ModelError::Runtime { path: dylib_path.display().to_string(), reason };
    if ENVIRONMENT.get().is_none() {
        if !dylib_path.is_file() {
            return Err(runtime_error(
                "no such file (run `make setup`, or point ORT_DYLIB_PATH at libonnxruntime.so.1.31.x)".into(),
            ));
        }
        let builder = ort::init_from(dylib_path).map_err(|e| runtime_error(e.to_string()))?;
        let environment = builder.with_name("sightline").build().map_err(|e| runtime_error(e.to_string()))?;
        let _ = ENVIRONMENT.set(environment);
    }
    Ok(RuntimeInfo { library: dylib_path.display().to_string(), execution_provider: "CPUExecutionProvider".into() })
}

/// The environment, once `init_runtime` has succeeded.
pub fn environment() -> Result<&'static Environment, ModelError> {
    ENVIRONMENT.get().ok_or_else(|| ModelError::Runtime {
        path: std::env::var("ORT_DYLIB_PATH").unwrap_or_default(),
        reason: "ONNX Runtime is not initialised".into(),
    })
}
