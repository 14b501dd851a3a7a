//! The `sightline` server as a library: the binary (`main.rs`) is a thin shell over it, and the
//! fuzz targets (`fuzz/`) reach the request paths through [`fuzzing`].

pub mod api_key;
pub mod app;
pub mod body;
pub mod body_key;
pub mod bulk_embed;
pub mod cli;
pub mod config;
pub mod error;
pub mod execution;
pub mod fuzzing;
pub mod gpu_metrics;
pub mod grpc;
pub mod http_metrics;
pub mod image_input;
pub mod kserve_codec;
pub mod lifecycle;
pub mod repository;
pub mod request_body;
pub mod routes;
pub mod service;
pub mod startup_error;
pub mod state;
pub mod statistics;
pub mod telemetry;
pub mod types;
pub mod url_fetch;
pub mod url_limit;
