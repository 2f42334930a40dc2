//! `gptrt inspect`.

use clap::Args;
use gptrt::Model;
use serde_json::json;

use crate::args::{skipped_json, ModelArgs, RuntimeArgs};

#[derive(Args)]
pub(crate) struct InspectArgs {
    #[command(flatten)]
    pub(crate) model: ModelArgs,
    #[command(flatten)]
    pub(crate) runtime: RuntimeArgs,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

pub(crate) fn inspect(args: InspectArgs) -> Result<(), String> {
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
