//! The `sightline` binary: `serve` (the default), `pull`, `models`, `rm` for the model cache, and
//! `embed` for bulk embeddings.

use std::process::ExitCode;

use clap::Parser;
use sightline_server::config::{self, Command};
use sightline_server::{app, cli, telemetry};

fn main() -> ExitCode {
    sightline_engine::process_memory::tune_allocator();
    let command = config::Cli::parse().into_command();
    let logging = command.logging();
    telemetry::init(&logging.log_level, logging.log_format);
    let result = match command {
        Command::Serve(config) => actix_web::rt::System::new().block_on(app::serve(config)).map_err(|e| e.to_string()),
        Command::Pull(args) => run_cli(cli::pull(args)),
        Command::Models(args) => run_cli(cli::models(args)),
        Command::Rm(args) => run_cli(cli::rm(args)),
        Command::Embed(args) => run_cli(cli::embed(args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn run_cli(future: impl std::future::Future<Output = Result<(), cli::CliError>>) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(future).map_err(|e| e.to_string())
}
