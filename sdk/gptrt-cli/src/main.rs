//! `gptrt`: generate text with, tokenize for, and inspect GPT-2 ONNX exports.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// `println!` that treats a closed stdout (e.g. `| head`) as the reader being done, not a panic.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod args;
mod bench;
mod chat;
mod classify;
mod constrain;
mod dialogue;
mod generate;
mod generation_flags;
mod inspect;
mod labelled;
mod perplexity;
mod plugins;
mod qa;
mod task;
mod tokenize;
mod train_head;

#[derive(Parser)]
#[command(
    name = "gptrt",
    version,
    about = "Run GPT-2 ONNX exports through ONNX Runtime"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a continuation of a prompt (streams text; --json prints one JSON object).
    Generate(Box<generate::GenerateArgs>),
    /// Print the token ids of a text.
    Tokenize(tokenize::TokenizeArgs),
    /// Show a model folder's detected layout, dimensions, inputs and outputs.
    Inspect(inspect::InspectArgs),
    /// List or inspect plugin libraries.
    #[command(subcommand)]
    Plugins(plugins::PluginsCommand),
    /// Run a task-head plugin on JSON input and print its JSON output.
    Task(task::TaskArgs),
    /// Perplexity of a UTF-8 text file under the model (one window of n_positions tokens).
    Perplexity(perplexity::PerplexityArgs),
    /// A multi-turn dialogue that keeps its KV cache across turns (interactive, or --script FILE).
    Chat(Box<chat::ChatArgs>),
    /// Measure prompt and decode speed (greedy, end tokens ignored so every run decodes the same count).
    Bench(bench::BenchArgs),
    /// Train a linear classification head on the model's pooled features (JSON lines in).
    TrainHead(Box<train_head::TrainHeadArgs>),
    /// Classify texts with a trained head (--head) or zero-shot over labels (--labels).
    Classify(Box<classify::ClassifyArgs>),
    /// Answer a question about a context (generated, or --extractive: a span of the context).
    Qa(Box<qa::QaArgs>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Generate(args) => generate::generate(*args),
        Command::Tokenize(args) => tokenize::tokenize(args),
        Command::Inspect(args) => inspect::inspect(args),
        Command::Bench(args) => bench::bench(args),
        Command::Chat(args) => chat::chat(*args),
        Command::Plugins(command) => plugins::plugins(command),
        Command::Task(args) => task::task(args),
        Command::Perplexity(args) => perplexity::perplexity(args),
        Command::TrainHead(args) => train_head::train_head(*args),
        Command::Classify(args) => classify::classify(*args),
        Command::Qa(args) => qa::qa(*args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
