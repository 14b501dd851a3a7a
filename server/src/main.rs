//! The `sightline` binary.

mod app;
mod body;
mod config;
mod error;
mod http_metrics;
mod image_input;
mod routes;
mod state;
mod telemetry;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let config = config::Cli::parse().into_config();
    telemetry::init(&config.log_level, config.log_format);
    let result = actix_web::rt::System::new().block_on(app::serve(config));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
