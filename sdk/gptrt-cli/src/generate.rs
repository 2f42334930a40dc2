//! `gptrt generate`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use gptrt::{GenerationConfig, Generator, Model, PluginHost, SamplerSpec};
use serde_json::json;

use crate::args::{skipped_json, warn_skipped, ModelArgs, PluginArgs, RuntimeArgs};
use crate::constrain::{ensure_grammar_plugin, ConstrainArgs};
use crate::generation_flags::GenerationFlags;

#[derive(Args)]
#[command(allow_negative_numbers = true)]
pub(crate) struct GenerateArgs {
    #[command(flatten)]
    pub(crate) model: ModelArgs,
    #[command(flatten)]
    pub(crate) runtime: RuntimeArgs,
    /// The prompt text (empty: start from <|endoftext|> as GPT-2 does).
    #[arg(long, conflicts_with = "prompt_file")]
    pub(crate) prompt: Option<String>,
    /// Read the prompt from a UTF-8 file.
    #[arg(long, value_name = "FILE")]
    pub(crate) prompt_file: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) generation: GenerationFlags,
    #[command(flatten)]
    pub(crate) plugins: PluginArgs,
    /// Put a plugin sampler in the chain, at the stage it declares or the one given (processor,
    /// warper or selector): ID, ID:STAGE, ID:CONFIG_JSON or ID:STAGE:CONFIG_JSON (repeatable).
    #[arg(long = "sampler", value_name = "ID[:STAGE][:JSON]")]
    pub(crate) samplers: Vec<String>,
    #[command(flatten)]
    pub(crate) constrain: ConstrainArgs,
    /// Print one JSON object (text, ids, stop reason, speed, provider, layout) instead of streaming.
    #[arg(long)]
    pub(crate) json: bool,
}

pub(crate) fn read_prompt(args: &GenerateArgs) -> Result<String, String> {
    match (&args.prompt, &args.prompt_file) {
        (Some(prompt), _) => Ok(prompt.clone()),
        (None, Some(path)) => {
            let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            String::from_utf8(bytes).map_err(|e| {
                format!(
                    "{}: the prompt file is not valid UTF-8 (invalid byte at offset {})",
                    path.display(),
                    e.utf8_error().valid_up_to()
                )
            })
        }
        (None, None) => Err("no prompt: pass --prompt TEXT or --prompt-file FILE".to_string()),
    }
}

pub(crate) fn generate(args: GenerateArgs) -> Result<(), String> {
    let prompt = read_prompt(&args)?;
    let runtime = args.runtime.runtime().map_err(|e| e.to_string())?;
    let model = Arc::new(Model::load_with(&runtime, args.model.dir()?).map_err(|e| e.to_string())?);
    let config = args.generation.config(model.generation_config())?;
    if !args.json {
        warn_skipped(model.provider_choice());
    }
    // A constraint is one more plugin sampler, first in the list so it is created (and a bad
    // schema reported) before the others.
    let mut samplers = args.samplers.clone();
    if let Some(spec) = args.constrain.sampler()? {
        samplers.insert(0, spec);
    }
    let plugin_host = if samplers.is_empty() && args.plugins.plugins.is_empty() {
        None
    } else {
        let mut host = args.plugins.host()?;
        if args.constrain.is_set() {
            ensure_grammar_plugin(&mut host)?;
        }
        Some(host)
    };
    let unsupported = config.unsupported_fields();
    if !unsupported.is_empty() {
        eprintln!(
            "warning: generation config fields gptrt does not implement, ignored: {}",
            unsupported.join(", ")
        );
    }
    let ids = model
        .tokenizer()
        .encode(&prompt)
        .map_err(|e| e.to_string())?;
    // Everything that can fail on the user's flags (plugin samplers, the generation's own checks)
    // is built before the first byte of output.
    let generation = prepare_generation(&model, ids, &config, plugin_host.as_ref(), &samplers)
        .map_err(|e| {
            if args.constrain.is_set() && e.contains(crate::constrain::GRAMMAR_ID) {
                format!("{}: {e}", args.constrain.flag())
            } else {
                e
            }
        })?;
    // Constrained output is the constrained text alone, without the prompt.
    let shown_prompt = if args.constrain.is_set() {
        ""
    } else {
        prompt.as_str()
    };
    // Stream when one sequence comes back token by token; otherwise print each at the end.
    let streaming = !args.json
        && config.num_beams == 1
        && (!config.do_sample || config.num_return_sequences == 1);
    let results = if streaming {
        let mut stdout = std::io::stdout().lock();
        let _ = write!(stdout, "{shown_prompt}");
        let _ = stdout.flush();
        generation.run(&mut |event| {
            // A closed pipe (e.g. `| head`) ends generation instead of failing.
            write!(stdout, "{}", event.text)
                .and_then(|_| stdout.flush())
                .is_ok()
        })
    } else {
        generation.run(&mut |_| true)
    }?;
    let Some(first) = results.first() else {
        return Err("generation returned no sequence".to_string());
    };
    let stats = &first.stats;
    if args.json {
        let mut output = first.to_json(model.tokenizer());
        output["layout"] = json!(model.layout().name());
        output["provider"] = json!(model.provider());
        output["provider_skipped"] = skipped_json(model.provider_choice());
        if results.len() > 1 {
            output["sequences"] = results
                .iter()
                .map(|r| r.to_json(model.tokenizer()))
                .collect();
        }
        say!("{output}");
    } else {
        if streaming {
            say!();
        } else {
            for (index, result) in results.iter().enumerate() {
                say!("--- sequence {} ({}) ---", index + 1, result.stop_reason);
                say!("{shown_prompt}{}", result.text);
            }
        }
        let seed = first
            .seed
            .map(|s| format!(" | seed {s}"))
            .unwrap_or_default();
        eprintln!(
            "[{} tokens | prompt {} tok at {:.0} tok/s | decode {:.1} tok/s | stop: {}{seed} | provider: {} | layout: {}]",
            first.token_ids.len(),
            stats.prompt_tokens,
            stats.prompt_tokens_per_second(),
            stats.decode_tokens_per_second(),
            first.stop_reason,
            model.provider(),
            model.layout(),
        );
    }
    Ok(())
}

/// A generation ready to run: every flag checked, plugin samplers created.
pub(crate) enum PreparedGeneration<'m> {
    /// Beam search (no streaming), checked by `Model::check_generation`.
    Beams {
        model: &'m Model,
        ids: Vec<u32>,
        config: &'m GenerationConfig,
    },
    /// One generator: greedy or sampling, plugin samplers in each row's chain.
    Rows(Box<Generator<'m>>),
}

impl PreparedGeneration<'_> {
    pub(crate) fn run(
        self,
        on_token: &mut dyn FnMut(&gptrt::TokenEvent<'_>) -> bool,
    ) -> Result<Vec<gptrt::Generation>, String> {
        match self {
            PreparedGeneration::Beams { model, ids, config } => model
                .generate_ids(vec![ids], config, on_token)
                .map_err(|e| e.to_string()),
            PreparedGeneration::Rows(mut generator) => {
                generator.run(on_token).map_err(|e| e.to_string())?;
                Ok(generator.into_generations())
            }
        }
    }
}

/// Check the generation and create its plugin samplers (each in its stage of each row's chain).
pub(crate) fn prepare_generation<'m>(
    model: &'m Arc<Model>,
    ids: Vec<u32>,
    config: &'m GenerationConfig,
    host: Option<&PluginHost>,
    samplers: &[String],
) -> Result<PreparedGeneration<'m>, String> {
    if config.num_beams > 1 {
        if !samplers.is_empty() {
            return Err(
                "--sampler cannot be combined with beam search (--num-beams > 1)".to_string(),
            );
        }
        model
            .check_generation(std::slice::from_ref(&ids), config)
            .map_err(|e| e.to_string())?;
        return Ok(PreparedGeneration::Beams { model, ids, config });
    }
    let mut generator = Generator::new(model, vec![ids], config).map_err(|e| e.to_string())?;
    if let (Some(host), false) = (host, samplers.is_empty()) {
        let specs: Vec<SamplerSpec> = samplers.iter().map(|s| SamplerSpec::parse(s)).collect();
        gptrt::plugin::add_samplers(host, &specs, model, &mut generator)
            .map_err(|e| e.to_string())?;
    }
    Ok(PreparedGeneration::Rows(Box::new(generator)))
}
