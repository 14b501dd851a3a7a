//! Any single-session ONNX model, tensor in, tensor out.

pub mod model;

pub use model::{TensorModel, TENSOR_MODEL_FILE};
