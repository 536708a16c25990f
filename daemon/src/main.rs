//! `platformd`: the command-line interface. Commands live in [`commands`]; this file only
//! parses arguments and maps results to exit codes (DESIGN §3: 0 ok, 1 error, 2 changes with
//! `--detailed-exitcode`, 3 blocked by policy).

mod commands;
mod git;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "platformd",
    version,
    about = "GitOps reconciliation for services, data, GPU pools and AI endpoints"
)]
pub struct Cli {
    /// Colour in output: auto uses colour only on a terminal (and honours NO_COLOR).
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Subcommand)]
pub enum Command {
    /// Parse and check a stack; print diagnostics. Exits 1 on any error.
    Validate {
        /// The stack directory (contains platform.kdl).
        #[arg(default_value = ".")]
        stack: PathBuf,
        #[arg(long, value_enum, default_value_t = DiagnosticFormat::Text)]
        format: DiagnosticFormat,
    },
    /// Show what would change, in apply order, with cost and policy.
    Plan(PlanArgs),
    /// Print the dependency graph.
    Graph {
        #[arg(default_value = ".")]
        stack: PathBuf,
        #[arg(long, value_enum, default_value_t = GraphFormat::Text)]
        format: GraphFormat,
        /// Show what ADDR needs and everything that depends on it (its blast radius).
        #[arg(long, value_name = "ADDR")]
        focus: Option<String>,
    },
}

#[derive(clap::Args)]
pub struct PlanArgs {
    #[arg(default_value = ".")]
    pub stack: PathBuf,
    /// Plan the change from git revision REV (read from the object database; no store, no
    /// credentials). The PR flow: `--base origin/main`.
    #[arg(long, value_name = "REV")]
    pub base: Option<String>,
    /// The desired revision; defaults to the working tree.
    #[arg(long, value_name = "REV", requires = "base")]
    pub head: Option<String>,
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    pub format: PlanFormat,
    /// Also save the plan (JSON, with what it was made against) to FILE.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Exit 2 when the plan has changes (0 when it has none).
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Allow deleting or replacing a protected resource.
    #[arg(long, value_name = "ADDR", num_args = 1..)]
    pub allow_destroy: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    Text,
    Json,
    Markdown,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    Text,
    Dot,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiagnosticFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let colour = commands::colour_enabled(cli.color);
    let result = match cli.command {
        Command::Validate { stack, format } => commands::validate(&stack, format, colour),
        Command::Plan(args) => commands::plan(&args, colour),
        Command::Graph {
            stack,
            format,
            focus,
        } => commands::graph(&stack, format, focus.as_deref(), colour),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            let mut message = format!("{err}");
            for cause in err.chain().skip(1) {
                message.push_str(&format!(": {cause}"));
            }
            eprintln!("{}: {message}", commands::paint(colour, "1;31", "error"));
            ExitCode::from(1)
        }
    }
}
