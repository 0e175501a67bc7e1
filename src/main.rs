//! The `tandem` binary: parse the command line and hand over to [`tandem::cli`].

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = tandem::cli::Cli::parse();
    match tandem::cli::dispatch(cli).await {
        Ok(code) => std::process::ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("tandem: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
