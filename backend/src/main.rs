//! `sendense`: the server and its command-line tools.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = sendense::cli::Cli::parse();
    sendense::telemetry::logging::init();
    match sendense::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
