//! The command line. `run` is the daemon; `check` validates a config; `status`, `dlq`,
//! `replay` and `forget` talk to the running daemon's admin API (read-only commands fall back to opening the
//! state file read-only when the daemon is down); `demo` runs the whole path against the built-in
//! sandboxes.

mod admin_client;
#[cfg(feature = "sandbox")]
mod demo;
mod ops;
mod report;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Config;

#[derive(Debug, Parser)]
#[command(
    name = "tandem",
    version,
    about = "Self-hosted marketing <-> sales sync daemon"
)]
pub struct Cli {
    /// Config file [default: $TANDEM_CONFIG, else /etc/tandem/tandem.toml]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (systemd: Type=notify).
    Run,
    /// Validate the config and report every problem with file, line, key and a hint.
    Check {
        /// Also connect to every CRM: credentials work, every mapped field exists and is writable.
        #[arg(long)]
        connect: bool,
    },
    /// Queue figures per flow and destination, paused connectors, last errors.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Dead letters: deliveries that were given up on.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Send a flow's leads received since a time again (idempotent upserts: no duplicates).
    Replay {
        #[arg(long)]
        flow: String,
        /// RFC 3339 time (2026-11-01T00:00:00Z) or a duration back from now (24h, 7d).
        #[arg(long)]
        since: String,
    },
    /// Erase a person's personal data (attribution aggregates stay, anonymised) and delete them
    /// from every connected CRM that supports it. Through the running daemon.
    Forget {
        /// Their email address, or phone number with its country code (+14155550100).
        identifier: String,
    },
    /// Reports over the deals and leads in the state file (read-only; fine while the daemon runs).
    Report {
        #[command(subcommand)]
        kind: ReportKind,
    },
    /// Start the daemon against the built-in HubSpot sandbox, post sample leads over HTTP and
    /// show them arrive.
    #[cfg(feature = "sandbox")]
    Demo {
        /// Exit once every lead has arrived (otherwise keep serving until Ctrl-C).
        #[arg(long)]
        once: bool,
        /// How many sample leads to post.
        #[arg(long, default_value_t = 24)]
        leads: usize,
        /// Address for the demo daemon's HTTP server.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReportKind {
    /// Revenue of won deals credited to sources / media / campaigns by an attribution model.
    Attribution {
        /// first_touch, last_touch, linear, position_based, w_shaped or time_decay
        /// [default: [attribution] model, else position_based]
        #[arg(long)]
        model: Option<crate::attribution::Model>,
        #[command(flatten)]
        args: ReportArgs,
    },
    /// Leads, qualified, won, lost, win rate, won revenue and days to won per source / medium /
    /// campaign (each person counted under their first touchpoint).
    Quality {
        #[command(flatten)]
        args: ReportArgs,
    },
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Start of the period: RFC 3339 time, date (2026-11-01) or duration back (30d). Deals count
    /// by close time; quality by first touch.
    #[arg(long)]
    pub since: Option<String>,
    /// End of the period (exclusive), same forms as --since.
    #[arg(long)]
    pub until: Option<String>,
    /// Group rows by source, medium (source + medium) or campaign (source + medium + campaign).
    #[arg(long, default_value = "campaign")]
    pub by: crate::attribution::Dimension,
    /// table, csv or json.
    #[arg(long, default_value = "table")]
    pub format: crate::attribution::Format,
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List dead letters, newest first.
    List {
        #[arg(long)]
        destination: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Put dead letters back in the queue with a fresh retry budget.
    Retry(Selection),
    /// Delete dead letters for good.
    Drop(Selection),
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct Selection {
    /// Dead-letter ids (from `dlq list`).
    pub ids: Vec<i64>,
    /// Every dead letter.
    #[arg(long)]
    pub all: bool,
}

/// Runs a parsed command; the process exit code is the returned value.
pub async fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    let path = Config::resolve_path(cli.config.clone());
    match cli.command {
        Command::Run => crate::daemon::run(&path).await.map(|()| 0),
        Command::Check { connect } => {
            let result = Config::load(&path);
            let report = crate::config::check_report(&result);
            match result {
                Ok(config) => {
                    println!("{report}");
                    if connect {
                        ops::check_connect(config).await
                    } else {
                        Ok(0)
                    }
                }
                Err(_) => {
                    eprintln!("{report}");
                    Ok(1)
                }
            }
        }
        Command::Status { json } => ops::status(&load(&path)?, json).await,
        Command::Dlq { command } => ops::dlq(&load(&path)?, command).await,
        Command::Replay { flow, since } => ops::replay(&load(&path)?, &flow, &since).await,
        Command::Forget { identifier } => ops::forget(&load(&path)?, &identifier).await,
        Command::Report { kind } => {
            let config = load(&path)?;
            match kind {
                ReportKind::Attribution { model, args } => {
                    report::run(&config, report::Which::Attribution(model), args).await
                }
                ReportKind::Quality { args } => {
                    report::run(&config, report::Which::Quality, args).await
                }
            }
        }
        #[cfg(feature = "sandbox")]
        Command::Demo {
            once,
            leads,
            listen,
        } => demo::run(once, leads, &listen).await,
    }
}

fn load(path: &std::path::Path) -> anyhow::Result<Config> {
    Config::load(path).map_err(|e| anyhow::anyhow!("{e}"))
}
