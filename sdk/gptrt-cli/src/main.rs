//! `gptrt`: generate text with, tokenize for, and inspect GPT-2 ONNX exports.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use generation_flags::GenerationFlags;
use gptrt::{
    Allowlist, GenerationConfig, Generator, Model, PluginHost, Runtime, RuntimeOptions,
    SamplerSpec, Tokenizer,
};
use serde_json::json;
use std::sync::Arc;

mod generation_flags;

/// `println!` that treats a closed stdout (e.g. `| head`) as the reader being done, not a panic.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

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
    Generate(Box<GenerateArgs>),
    /// Print the token ids of a text.
    Tokenize(TokenizeArgs),
    /// Show a model folder's detected layout, dimensions, inputs and outputs.
    Inspect(InspectArgs),
    /// List or inspect plugin libraries.
    #[command(subcommand)]
    Plugins(PluginsCommand),
    /// Run a task-head plugin on JSON input and print its JSON output.
    Task(TaskArgs),
    /// Perplexity of a UTF-8 text file under the model (one window of n_positions tokens).
    Perplexity(PerplexityArgs),
    /// Measure prompt and decode speed (greedy, end tokens ignored so every run decodes the same count).
    Bench(BenchArgs),
}

#[derive(Subcommand)]
enum PluginsCommand {
    /// Every plugin in $GPTRT_PLUGIN_PATH folders (and --dir), with its compatibility.
    List {
        /// Another folder to search.
        #[arg(long, value_name = "DIR")]
        dir: Vec<PathBuf>,
        /// Only accept libraries pinned in this SHA-256 allowlist (`sha256sum` format).
        #[arg(long, value_name = "FILE")]
        allowlist: Option<PathBuf>,
    },
    /// What one library offers and whether this host can use it.
    Inspect {
        /// The plugin library.
        path: PathBuf,
        /// Only accept libraries pinned in this SHA-256 allowlist.
        #[arg(long, value_name = "FILE")]
        allowlist: Option<PathBuf>,
    },
}

#[derive(Args)]
struct PluginArgs {
    /// Load a plugin library (repeatable); libraries in $GPTRT_PLUGIN_PATH load too.
    #[arg(long = "plugin", value_name = "PATH")]
    plugins: Vec<PathBuf>,
    /// Only accept plugin libraries pinned in this SHA-256 allowlist (`sha256sum` format).
    #[arg(long, value_name = "FILE")]
    plugin_allowlist: Option<PathBuf>,
}

impl PluginArgs {
    fn host(&self) -> Result<PluginHost, String> {
        let mut host = PluginHost::new();
        if let Some(path) = &self.plugin_allowlist {
            host = host.with_allowlist(Allowlist::from_file(path).map_err(|e| e.to_string())?);
        }
        for error in host.load_from_env() {
            eprintln!("warning: {error}");
        }
        for path in &self.plugins {
            host.load(path).map_err(|e| e.to_string())?;
        }
        Ok(host)
    }
}

#[derive(Args)]
struct TaskArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    runtime: RuntimeArgs,
    #[command(flatten)]
    plugins: PluginArgs,
    /// The task-head plugin id (e.g. org.gptrt.choice).
    #[arg(long, value_name = "ID")]
    task: String,
    /// The task's configuration (JSON).
    #[arg(long, value_name = "JSON")]
    config: Option<String>,
    /// The task's input (JSON).
    #[arg(long, value_name = "JSON")]
    input: String,
}

#[derive(Args)]
struct PerplexityArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    runtime: RuntimeArgs,
    /// The text to score.
    #[arg(long, value_name = "FILE")]
    text_file: PathBuf,
}

#[derive(Args)]
struct BenchArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    runtime: RuntimeArgs,
    /// Prompt text (its token count is the prompt length, unless --prompt-tokens is given).
    #[arg(long, default_value = "Once upon a time")]
    prompt: String,
    /// Prompt length in tokens: the prompt's tokens repeated (or cut) to exactly N.
    #[arg(long, value_name = "N")]
    prompt_tokens: Option<usize>,
    /// Tokens to decode per run.
    #[arg(long, default_value_t = 128, value_name = "N")]
    new_tokens: usize,
    /// Timed runs after one untimed warm-up run; the best and the median are reported.
    #[arg(long, default_value_t = 3, value_name = "N")]
    runs: usize,
    /// Sequences decoded together in one batch (aggregate tokens/s is reported).
    #[arg(long, default_value_t = 1, value_name = "N")]
    batch: usize,
    /// Decode with the full sampling chain (temperature 0.8, top-k 40, top-p 0.95, repetition
    /// penalty 1.2, seeded draw) instead of greedy, and report its share of each decode step.
    #[arg(long)]
    sample: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ModelArgs {
    /// Model folder (config.json, tokenizer, ONNX graph(s)) or one .onnx file in it.
    /// Default: $GPTRT_MODEL, else the model bundled in this repository.
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
}

#[derive(Args)]
struct RuntimeArgs {
    /// ONNX Runtime library to load (else $ORT_DYLIB_PATH, next to gptrt, then .ort/ of the source tree).
    #[arg(long, value_name = "FILE")]
    ort_library: Option<PathBuf>,
    /// Threads inside one operator (0 = one per core).
    #[arg(long, default_value_t = 0, value_name = "N")]
    threads: usize,
    /// Execution provider to try, in order (repeatable): cpu, cuda, tensorrt, directml, each
    /// optionally `:strict` (fail instead of falling back) and `:DEVICE`. CPU ends every list.
    #[arg(long = "provider", value_name = "NAME[:strict][:DEVICE]", value_parser = gptrt::ProviderRequest::parse)]
    providers: Vec<gptrt::ProviderRequest>,
    /// Save graphs after ONNX Runtime optimised them in DIR and load those next time (faster start).
    #[arg(long, value_name = "DIR")]
    optimized_cache: Option<PathBuf>,
}

#[derive(Args)]
#[command(allow_negative_numbers = true)]
struct GenerateArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    runtime: RuntimeArgs,
    /// The prompt text (empty: start from <|endoftext|> as GPT-2 does).
    #[arg(long, conflicts_with = "prompt_file")]
    prompt: Option<String>,
    /// Read the prompt from a UTF-8 file.
    #[arg(long, value_name = "FILE")]
    prompt_file: Option<PathBuf>,
    #[command(flatten)]
    generation: GenerationFlags,
    #[command(flatten)]
    plugins: PluginArgs,
    /// Put a plugin sampler in the chain, before the selector: ID or ID:CONFIG_JSON (repeatable).
    #[arg(long = "sampler", value_name = "ID[:JSON]")]
    samplers: Vec<String>,
    /// Print one JSON object (text, ids, stop reason, speed, provider, layout) instead of streaming.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct TokenizeArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The text to tokenize.
    #[arg(long)]
    text: String,
    /// Print {"ids": [...]}.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct InspectArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    runtime: RuntimeArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Where the bundled models live in this repository, best first.
fn default_model_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("GPTRT_MODEL").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    ["models/demo", "models/fixtures/tiny-random-gpt2/single"]
        .iter()
        .map(|dir| repo.join(dir))
        .find(|dir| dir.join("config.json").is_file())
        .ok_or_else(|| "no --model given and no bundled model found; pass --model DIR".to_string())
}

impl ModelArgs {
    fn dir(&self) -> Result<PathBuf, String> {
        match &self.model {
            Some(dir) => Ok(dir.clone()),
            None => default_model_dir(),
        }
    }
}

impl RuntimeArgs {
    fn runtime(&self) -> gptrt::Result<Runtime> {
        Runtime::new(RuntimeOptions {
            library_path: self.ort_library.clone(),
            intra_threads: self.threads,
            providers: self.providers.clone(),
            optimized_cache_dir: self.optimized_cache.clone(),
            ..RuntimeOptions::default()
        })
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Generate(args) => generate(*args),
        Command::Tokenize(args) => tokenize(args),
        Command::Inspect(args) => inspect(args),
        Command::Bench(args) => bench(args),
        Command::Plugins(command) => plugins(command),
        Command::Task(args) => task(args),
        Command::Perplexity(args) => perplexity(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn read_prompt(args: &GenerateArgs) -> Result<String, String> {
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

fn generate(args: GenerateArgs) -> Result<(), String> {
    let prompt = read_prompt(&args)?;
    let runtime = args.runtime.runtime().map_err(|e| e.to_string())?;
    let model = Arc::new(Model::load_with(&runtime, args.model.dir()?).map_err(|e| e.to_string())?);
    let config = args.generation.config(model.generation_config())?;
    if !args.json {
        warn_skipped(model.provider_choice());
    }
    let plugin_host = if args.samplers.is_empty() && args.plugins.plugins.is_empty() {
        None
    } else {
        Some(args.plugins.host()?)
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
    let generation =
        prepare_generation(&model, ids, &config, plugin_host.as_ref(), &args.samplers)?;
    // Stream when one sequence comes back token by token; otherwise print each at the end.
    let streaming = !args.json
        && config.num_beams == 1
        && (!config.do_sample || config.num_return_sequences == 1);
    let results = if streaming {
        let mut stdout = std::io::stdout().lock();
        let _ = write!(stdout, "{prompt}");
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
                say!("{prompt}{}", result.text);
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
enum PreparedGeneration<'m> {
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
    fn run(
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

/// Check the generation and create its plugin samplers (inserted before each row's selector).
fn prepare_generation<'m>(
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

fn plugins(command: PluginsCommand) -> Result<(), String> {
    let allowlist = |path: &Option<PathBuf>| -> Result<Option<Allowlist>, String> {
        path.as_deref()
            .map(Allowlist::from_file)
            .transpose()
            .map_err(|e| e.to_string())
    };
    let describe = |library: &gptrt::PluginLibrary| {
        say!("{}", library.path.display());
        say!(
            "  sha256 {}  abi {}.{} (host {}.{}): compatible",
            library.sha256,
            library.abi.0,
            library.abi.1,
            gptrt_plugin_abi().0,
            gptrt_plugin_abi().1
        );
        for plugin in &library.plugins {
            say!(
                "  {} {} v{} [{}] abi {}.{}",
                plugin.kind.name(),
                plugin.id,
                plugin.version,
                plugin.name,
                plugin.abi.0,
                plugin.abi.1
            );
            if !plugin.description.is_empty() {
                say!("      {}", plugin.description);
            }
        }
    };
    match command {
        PluginsCommand::Inspect {
            path,
            allowlist: list,
        } => {
            let library = gptrt::plugin::load_library(&path, allowlist(&list)?.as_ref())
                .map_err(|e| e.to_string())?;
            describe(&library);
            Ok(())
        }
        PluginsCommand::List {
            dir,
            allowlist: list,
        } => {
            let allowlist = allowlist(&list)?;
            let mut dirs: Vec<PathBuf> = std::env::var_os(gptrt::plugin::PLUGIN_PATH_ENV)
                .map(|v| {
                    std::env::split_paths(&v)
                        .filter(|d| !d.as_os_str().is_empty())
                        .collect()
                })
                .unwrap_or_default();
            dirs.extend(dir);
            if dirs.is_empty() {
                say!(
                    "no plugin folders: set ${} or pass --dir",
                    gptrt::plugin::PLUGIN_PATH_ENV
                );
            }
            for dir in dirs {
                for file in gptrt::plugin::libraries_in(&dir).map_err(|e| e.to_string())? {
                    match gptrt::plugin::load_library(&file, allowlist.as_ref()) {
                        Ok(library) => describe(&library),
                        Err(e) => say!(
                            "{}
  incompatible: {e}",
                            file.display()
                        ),
                    }
                }
            }
            Ok(())
        }
    }
}

fn gptrt_plugin_abi() -> (u32, u32) {
    (
        gptrt_plugin_api::GPTRT_PLUGIN_ABI_MAJOR,
        gptrt_plugin_api::GPTRT_PLUGIN_ABI_MINOR,
    )
}

fn perplexity(args: PerplexityArgs) -> Result<(), String> {
    let runtime = args.runtime.runtime().map_err(|e| e.to_string())?;
    let model = Model::load_with(&runtime, args.model.dir()?).map_err(|e| e.to_string())?;
    let bytes =
        std::fs::read(&args.text_file).map_err(|e| format!("{}: {e}", args.text_file.display()))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        format!(
            "{}: not valid UTF-8 (invalid byte at offset {})",
            args.text_file.display(),
            e.utf8_error().valid_up_to()
        )
    })?;
    let tokens = model
        .tokenizer()
        .encode(&text)
        .map_err(|e| e.to_string())?
        .len();
    let value = model.perplexity(&text).map_err(|e| e.to_string())?;
    say!(
        "{}",
        json!({"perplexity": value, "tokens": tokens, "model": model.dir().display().to_string()})
    );
    Ok(())
}

fn task(args: TaskArgs) -> Result<(), String> {
    let runtime = args.runtime.runtime().map_err(|e| e.to_string())?;
    let model = Arc::new(Model::load_with(&runtime, args.model.dir()?).map_err(|e| e.to_string())?);
    let host = args.plugins.host()?;
    let mut head = host
        .task_head(&args.task, args.config.as_deref(), model)
        .map_err(|e| e.to_string())?;
    let output = head.run(&args.input).map_err(|e| e.to_string())?;
    say!("{output}");
    Ok(())
}

/// Providers tried before the one that ran, and why each was skipped.
fn skipped_json(choice: &gptrt::ProviderChoice) -> serde_json::Value {
    choice
        .skipped
        .iter()
        .map(|(provider, reason)| json!({"provider": provider.name(), "reason": reason}))
        .collect()
}

/// Warn on stderr about providers that were asked for but not used.
fn warn_skipped(choice: &gptrt::ProviderChoice) {
    for (provider, reason) in &choice.skipped {
        eprintln!("note: {provider} not used: {reason}; falling back");
    }
}

fn tokenize(args: TokenizeArgs) -> Result<(), String> {
    let tokenizer = Tokenizer::from_dir(&args.model.dir()?).map_err(|e| e.to_string())?;
    let ids = tokenizer.encode(&args.text).map_err(|e| e.to_string())?;
    if args.json {
        say!("{}", json!({ "ids": ids }));
    } else {
        for id in ids {
            let piece = tokenizer.token_bytes(id).map_err(|e| e.to_string())?;
            say!("{id}\t{:?}", String::from_utf8_lossy(piece));
        }
    }
    Ok(())
}

fn inspect(args: InspectArgs) -> Result<(), String> {
    let runtime = args.runtime.runtime().map_err(|e| e.to_string())?;
    let began = std::time::Instant::now();
    let model = Model::load_with(&runtime, args.model.dir()?).map_err(|e| e.to_string())?;
    let load_seconds = began.elapsed().as_secs_f64();
    let config = model.config();
    let graphs: Vec<_> = model
        .graphs()
        .into_iter()
        .map(|(path, signature)| {
            let tensors = |list: &[gptrt::TensorInfo]| {
                list.iter()
                    .map(|t| json!({"name": t.name, "type": t.element_type, "shape": t.shape}))
                    .collect::<Vec<_>>()
            };
            json!({
                "file": path.display().to_string(),
                "inputs": tensors(&signature.inputs),
                "outputs": tensors(&signature.outputs),
                "logits_to_keep": signature.has_logits_to_keep,
                "shares_kv_buffer": signature.shares_kv_buffer,
                "batch_dependent_ops": signature.batch_dependent_ops,
            })
        })
        .collect();
    if args.json {
        let output = json!({
            "model": model.dir().display().to_string(),
            "layout": model.layout().name(),
            "layout_description": model.layout().description(),
            "config": config,
            "provider": model.provider(),
            "provider_skipped": skipped_json(model.provider_choice()),
            "kv_cache": model.provider_choice().kv_cache_location(),
            "batch_invariant": model.is_batch_invariant(),
            "batch_dependent_ops": model.batch_dependent_ops(),
            "load_seconds": load_seconds,
            "onnxruntime_library": runtime.library_path().display().to_string(),
            "graphs": graphs,
        });
        say!("{output}");
        return Ok(());
    }
    say!("model:     {}", model.dir().display());
    say!(
        "layout:    {} ({})",
        model.layout(),
        model.layout().description()
    );
    say!(
        "config:    n_layer {} | n_head {} | n_embd {} (head_dim {}) | n_positions {} | vocab_size {} | eos {}",
        config.n_layer,
        config.n_head,
        config.n_embd,
        config.head_dim(),
        config.n_positions,
        config.vocab_size,
        config.eos_token_id
    );
    say!("provider:  {}", model.provider());
    for (provider, reason) in &model.provider_choice().skipped {
        say!("  skipped  {provider}: {reason}");
    }
    say!("kv cache:  {}", model.provider_choice().kv_cache_location());
    say!("batching:  {}", model.batching_note());
    say!("runtime:   {}", runtime.library_path().display());
    say!("loaded in: {load_seconds:.3} s");
    for (path, signature) in model.graphs() {
        say!("graph:     {}", path.display());
        for (kind, list) in [
            ("input ", &signature.inputs),
            ("output", &signature.outputs),
        ] {
            for tensor in list {
                say!(
                    "  {kind}  {:<28} {:<8} {:?}",
                    tensor.name,
                    tensor.element_type,
                    tensor.shape
                );
            }
        }
        if signature.has_logits_to_keep && !signature.logits_to_keep_is_input {
            say!("  option  logits_to_keep               Int64    [] (fed 1 when generating: the LM head runs on the last position only)");
        }
        if signature.shares_kv_buffer {
            say!("  kv      one past/present buffer per layer, bound in place: a step writes only its new positions");
        }
    }
    Ok(())
}

fn bench(args: BenchArgs) -> Result<(), String> {
    if args.runs == 0 {
        return Err("--runs must be at least 1".to_string());
    }
    if args.batch == 0 {
        return Err("--batch must be at least 1".to_string());
    }
    let runtime = args.runtime.runtime().map_err(|e| e.to_string())?;
    let began = std::time::Instant::now();
    let model = Model::load_with(&runtime, args.model.dir()?).map_err(|e| e.to_string())?;
    let load_seconds = began.elapsed().as_secs_f64();
    let config = GenerationConfig {
        max_new_tokens: Some(args.new_tokens),
        // No end token: every run decodes exactly --new-tokens tokens.
        eos_token_id: Some(gptrt::TokenIds::Many(Vec::new())),
        do_sample: args.sample,
        temperature: if args.sample { 0.8 } else { 1.0 },
        top_k: if args.sample { 40 } else { 50 },
        top_p: if args.sample { 0.95 } else { 1.0 },
        repetition_penalty: if args.sample { 1.2 } else { 1.0 },
        seed: Some(0),
        ..GenerationConfig::default()
    };
    let mut prompt_ids = model
        .tokenizer()
        .encode(&args.prompt)
        .map_err(|e| e.to_string())?;
    if let Some(length) = args.prompt_tokens {
        if length == 0 || prompt_ids.is_empty() {
            return Err("--prompt-tokens needs N >= 1 and a non-empty --prompt".to_string());
        }
        prompt_ids = prompt_ids.iter().copied().cycle().take(length).collect();
    }
    let context = model.config().n_positions;
    if prompt_ids.len() + args.new_tokens > context {
        return Err(format!(
            "prompt ({} tokens) + --new-tokens ({}) exceed the model's context window ({context} tokens)",
            prompt_ids.len(),
            args.new_tokens
        ));
    }
    let mut runs = Vec::with_capacity(args.runs);
    let mut first_token_seconds = Vec::with_capacity(args.runs);
    for run in 0..=args.runs {
        let started = std::time::Instant::now();
        let mut first_token = None;
        let mut out = model
            .generate_ids(vec![prompt_ids.clone(); args.batch], &config, &mut |_| {
                first_token.get_or_insert_with(|| started.elapsed().as_secs_f64());
                true
            })
            .map_err(|e| e.to_string())?;
        if out.len() != args.batch {
            return Err(format!(
                "asked for {} sequences, got {}",
                args.batch,
                out.len()
            ));
        }
        if run > 0 {
            runs.push(out.swap_remove(0));
            first_token_seconds.push(first_token.unwrap_or(f64::NAN));
        }
    }
    let sorted = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v
    };
    let decode = sorted(
        runs.iter()
            .map(|r| r.stats.decode_tokens_per_second())
            .collect(),
    );
    let prompt = sorted(
        runs.iter()
            .map(|r| r.stats.prompt_tokens_per_second())
            .collect(),
    );
    let first_token_ms = sorted(first_token_seconds.iter().map(|s| s * 1e3).collect());
    let sampling_ms: Vec<f64> = runs
        .iter()
        .map(|r| 1e3 * r.stats.sampling_seconds / (r.token_ids.len() * args.batch).max(1) as f64)
        .collect();
    let chain_share = runs
        .iter()
        .map(|r| r.stats.sampling_seconds / (r.stats.decode_seconds + r.stats.prompt_seconds))
        .fold(0.0f64, f64::max);
    let median = |v: &[f64]| v[v.len() / 2];
    let best = |v: &[f64]| v[v.len() - 1];
    let peak_rss = peak_rss_bytes();
    let first = &runs[0];
    if args.json {
        let output = json!({
            "model": model.dir().display().to_string(),
            "layout": model.layout().name(),
            "provider": model.provider(),
            "threads": args.runtime.threads,
            "batch": args.batch,
            "prompt_tokens": first.prompt_token_ids.len(),
            "new_tokens": first.token_ids.len(),
            "runs": args.runs,
            "load_seconds": load_seconds,
            "peak_rss_bytes": peak_rss,
            "time_to_first_token_ms_median": median(&first_token_ms),
            "time_to_first_token_ms_best": first_token_ms[0],
            "prompt_tokens_per_second_best": best(&prompt),
            "prompt_tokens_per_second_median": median(&prompt),
            "decode_tokens_per_second_best": best(&decode),
            "decode_tokens_per_second_median": median(&decode),
            "chain": if args.sample { "temperature+top_k+top_p+repetition_penalty+dist" } else { "greedy" },
            "chain_ms_per_token": sampling_ms.iter().copied().fold(0.0f64, f64::max),
            "chain_share_of_step_worst": chain_share,
        });
        say!("{output}");
    } else {
        say!(
            "{} ({} layout, {}): batch {}, prompt {} tokens, {} new tokens, {} runs",
            model.dir().display(),
            model.layout(),
            model.provider(),
            args.batch,
            first.prompt_token_ids.len(),
            first.token_ids.len(),
            args.runs
        );
        say!(
            "  load: {load_seconds:.2} s, peak RSS: {}",
            peak_rss.map_or("unknown".to_string(), |b| format!(
                "{:.0} MB",
                b as f64 / 1e6
            ))
        );
        say!(
            "  time to first token: median {:.1} ms, best {:.1} ms",
            median(&first_token_ms),
            first_token_ms[0]
        );
        say!(
            "  prompt: best {:.1} tok/s, median {:.1} tok/s",
            best(&prompt),
            median(&prompt)
        );
        say!(
            "  decode: best {:.1} tok/s, median {:.1} tok/s{}",
            best(&decode),
            median(&decode),
            if args.batch > 1 { " (all rows)" } else { "" }
        );
        say!(
            "  chain ({}): worst {:.3} ms per token, {:.2}% of a step",
            if args.sample {
                "temperature + top-k + top-p + repetition penalty + draw"
            } else {
                "greedy"
            },
            sampling_ms.iter().copied().fold(0.0f64, f64::max),
            100.0 * chain_share
        );
    }
    Ok(())
}

/// The process's peak resident set size (Linux `VmHWM`); `None` where the OS does not say.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
