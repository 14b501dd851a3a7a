//! Image classification, single- and multi-label.

pub mod model;

pub use model::ClassificationModel;
