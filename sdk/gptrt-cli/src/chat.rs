//! `gptrt chat`: a multi-turn dialogue that keeps its KV cache across turns (each turn runs only
//! its new tokens), interactive or from a script, saved and loaded with the session format.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use gptrt::{GenerationConfig, Model, SavedKv, Session};
use serde_json::json;

use crate::args::{warn_skipped, ModelArgs, RuntimeArgs};
use crate::dialogue::{Dialogue, TurnReport};
use crate::generation_flags::GenerationFlags;

#[derive(Args)]
#[command(allow_negative_numbers = true)]
pub(crate) struct ChatArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    runtime: RuntimeArgs,
    /// Text the dialogue starts from (who the bot is); it is never dropped when the window fills.
    #[arg(long, conflicts_with = "persona_file")]
    persona: Option<String>,
    /// Read the persona from a UTF-8 file.
    #[arg(long, value_name = "FILE")]
    persona_file: Option<PathBuf>,
    /// The user's speaker tag; a reply ends where the model writes it.
    #[arg(long, default_value = "User:", value_name = "TAG")]
    user_tag: String,
    /// The bot's speaker tag, written before each reply.
    #[arg(long, default_value = "Bot:", value_name = "TAG")]
    bot_tag: String,
    /// When the context window fills, the oldest whole turns are dropped until the kept turns
    /// fill at most this share of the room the persona and the reply leave (they run through the
    /// model again, once; 1 drops only what the next turn needs, re-running the rest every turn).
    #[arg(long, value_name = "SHARE", default_value_t = gptrt_plugin_api::DEFAULT_OVERFLOW_KEEP)]
    overflow_keep: f64,
    #[command(flatten)]
    generation: GenerationFlags,
    /// Take the user's turns from this file (each non-empty line is one turn), not from stdin.
    #[arg(long, value_name = "FILE")]
    script: Option<PathBuf>,
    /// Save the dialogue to FILE after the last turn.
    #[arg(long, value_name = "FILE")]
    save: Option<PathBuf>,
    /// Save the KV cache too (fp16), so loading runs nothing again.
    #[arg(long)]
    save_kv: bool,
    /// Start from a dialogue saved with --save or /save (its persona and tags win over the flags).
    #[arg(long, value_name = "FILE")]
    load: Option<PathBuf>,
    /// One JSON object per turn on stdout: turn, reply, stop_reason, prompt_tokens_processed,
    /// context_tokens, time_to_first_token_ms, dropped_turns.
    #[arg(long)]
    json: bool,
}

fn read_utf8(path: &Path, what: &str) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "{}: the {what} is not valid UTF-8 (invalid byte at offset {})",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })
}

pub(crate) fn chat(args: ChatArgs) -> Result<(), String> {
    let persona = match (&args.persona, &args.persona_file) {
        (Some(text), _) => text.clone(),
        (None, Some(path)) => read_utf8(path, "persona file")?,
        (None, None) => String::new(),
    };
    let overflow_keep =
        gptrt_plugin_api::TurnWindow::check_keep(args.overflow_keep, "--overflow-keep")?;
    let script = match &args.script {
        Some(path) => Some(read_utf8(path, "script")?),
        None => None,
    };
    let runtime = args.runtime.runtime().map_err(|e| e.to_string())?;
    let model = Arc::new(Model::load_with(&runtime, args.model.dir()?).map_err(|e| e.to_string())?);
    let config = args.generation.config(model.generation_config())?;
    if config.num_return_sequences > 1 {
        return Err("--num-return-sequences: a chat turn has one reply".to_string());
    }
    if !args.json {
        warn_skipped(model.provider_choice());
    }
    let session = Session::new(model.clone()).map_err(|e| e.to_string())?;
    let mut dialogue = Dialogue::new(session, &persona, &args.user_tag, &args.bot_tag)?;
    dialogue.overflow_keep = overflow_keep;
    if let Some(path) = &args.load {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        dialogue
            .load(&bytes)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let kv = if args.save_kv {
        SavedKv::F16
    } else {
        SavedKv::None
    };
    let mut out = Output { json: args.json };
    let mut failed = 0;
    match script {
        Some(script) => {
            for line in script.lines().map(str::trim).filter(|l| !l.is_empty()) {
                // A turn that fails (too long for the window) is reported; the dialogue goes on.
                if let Err(message) = take_turn(&mut dialogue, line, &config, &mut out) {
                    if !out.json {
                        println!();
                    }
                    eprintln!("error: {message}");
                    failed += 1;
                }
            }
        }
        None => interactive(&mut dialogue, &config, kv, &mut out)?,
    }
    if let Some(path) = &args.save {
        save(&dialogue, path, kv)?;
    }
    match failed {
        0 => Ok(()),
        n => Err(format!("{n} of the script's turns failed (reported above)")),
    }
}

struct Output {
    json: bool,
}

fn take_turn(
    dialogue: &mut Dialogue,
    line: &str,
    config: &GenerationConfig,
    out: &mut Output,
) -> Result<TurnReport, String> {
    let mut stdout = std::io::stdout().lock();
    if !out.json {
        let _ = write!(stdout, "{}", dialogue.meta.bot_tag);
        let _ = stdout.flush();
    }
    let json = out.json;
    let report = dialogue.turn(line, config, &mut |text| {
        if !json {
            let _ = write!(stdout, "{text}");
            let _ = stdout.flush();
        }
    })?;
    if json {
        let _ = writeln!(
            stdout,
            "{}",
            json!({
                "turn": report.turn,
                "reply": report.reply,
                "stop_reason": report.stop_reason,
                "prompt_tokens_processed": report.prompt_tokens_processed,
                "context_tokens": report.context_tokens,
                "time_to_first_token_ms": report.time_to_first_token_ms,
                "dropped_turns": report.dropped_turns,
            })
        );
    } else {
        let _ = writeln!(stdout);
        if report.dropped_turns > 0 {
            eprintln!(
                "[the window was full: dropped the {} oldest turn(s), kept the persona]",
                report.dropped_turns
            );
        }
    }
    Ok(report)
}

fn save(dialogue: &Dialogue, path: &Path, kv: SavedKv) -> Result<(), String> {
    let bytes = dialogue.save(kv)?;
    std::fs::write(path, &bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!("[saved {} bytes to {}]", bytes.len(), path.display());
    Ok(())
}

/// Turns from stdin, with `/save FILE`, `/load FILE` and `/reset`. A failed turn or command is
/// reported and the dialogue goes on.
fn interactive(
    dialogue: &mut Dialogue,
    config: &GenerationConfig,
    kv: SavedKv,
    out: &mut Output,
) -> Result<(), String> {
    let stdin = std::io::stdin();
    let terminal = stdin.is_terminal();
    let mut lines = stdin.lock().lines();
    loop {
        if terminal {
            eprint!("{} ", dialogue.meta.user_tag);
        }
        let Some(line) = lines.next() else {
            return Ok(());
        };
        let line = line.map_err(|e| format!("reading stdin: {e}"))?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let outcome = match line.split_once(' ').unwrap_or((line, "")) {
            ("/save", path) if !path.trim().is_empty() => {
                save(dialogue, Path::new(path.trim()), kv)
            }
            ("/load", path) if !path.trim().is_empty() => {
                let path = Path::new(path.trim());
                std::fs::read(path)
                    .map_err(|e| e.to_string())
                    .and_then(|bytes| dialogue.load(&bytes))
                    .map(|()| eprintln!("[loaded {}]", path.display()))
                    .map_err(|e| format!("{}: {e}", path.display()))
            }
            ("/reset", "") => dialogue
                .reset()
                .map(|()| eprintln!("[reset to the persona]")),
            (command, _) if command.starts_with('/') => Err(format!(
                "unknown command {command:?}: /save FILE, /load FILE, /reset"
            )),
            _ => take_turn(dialogue, line, config, out).map(drop),
        };
        if let Err(message) = outcome {
            if !out.json {
                println!();
            }
            eprintln!("error: {message}");
        }
    }
}
