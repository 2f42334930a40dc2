//! Sampler stages and constrained output from C: a plugin sampler at a stage the caller chooses,
//! and the grammar plugin (`org.gptrt.grammar`) by named options (a JSON Schema, a regex, a Lark
//! grammar) instead of its id and config JSON.

use std::ffi::c_char;

use crate::error::{boundary, gptrt_status_t, Failure};
use crate::ffi::read_str;
use crate::handles;
use crate::plugin::gptrt_plugin_host_t;

/// The grammar plugin's id.
const GRAMMAR_ID: &str = "org.gptrt.grammar";

fn invalid(name: &'static str, message: String) -> Failure {
    gptrt::Error::InvalidArgument { name, message }.into()
}

/// Like `gptrt_session_add_sampler`, with the chain stage the sampler goes to: `"processor"`
/// (before temperature and top-k/top-p: bans, biases, grammars), `"warper"` (after them, just
/// before the draw: where plugins built for plugin ABI 1.1 go) or `"selector"` (in place of the
/// draw). `stage` NULL: the stage the plugin declares (`gptrt plugins inspect` shows it).
///
/// [one thread at a time per session; not while a generation runs on it]
///
/// # Safety
/// `id` is a NUL-terminated string; `stage` and `config_json` are NULL or one.
#[no_mangle]
pub unsafe extern "C" fn gptrt_session_add_sampler_at(
    session: *const crate::session::gptrt_session_t,
    host: *const gptrt_plugin_host_t,
    id: *const c_char,
    stage: *const c_char,
    config_json: *const c_char,
) -> gptrt_status_t {
    boundary("gptrt_session_add_sampler_at", || {
        let session = handles::get(session, "session")?;
        let host = handles::get(host, "host")?;
        // SAFETY: caller contract.
        let id = unsafe { read_str(id, "id") }?;
        let stage = if stage.is_null() {
            None
        } else {
            // SAFETY: caller contract.
            let name = unsafe { read_str(stage, "stage") }?;
            Some(
                name.parse::<gptrt::SamplerStage>()
                    .map_err(|m| invalid("stage", m))?,
            )
        };
        let config = if config_json.is_null() {
            None
        } else {
            // SAFETY: caller contract.
            Some(unsafe { read_str(config_json, "config_json") }?.to_string())
        };
        let spec = gptrt::SamplerSpec::new(id, config).with_stage(stage);
        Ok(session.add_sampler(host.host.clone(), spec)?)
    })
}

/// Constrain the session's later generations with the grammar plugin (`org.gptrt.grammar`,
/// loaded in `host` from `libgptrt_plugin_grammar.so`): `kind` is `"json_schema"` (`text` is a
/// JSON Schema), `"regex"` (a regular expression) or `"grammar"` (a Lark grammar). The output is
/// then the constrained text alone; the generation ends with stop reason `grammar_complete`
/// (`GPTRT_STOP_OTHER`; the name is in `gptrt_session_result_json`), or `grammar_incomplete`
/// when `max_new_tokens` runs out first. A schema or grammar the plugin rejects fails here
/// (`GPTRT_ERROR_PLUGIN`, the message naming the problem), before any generation.
///
/// [one thread at a time per session; not while a generation runs on it]
///
/// # Safety
/// `kind` and `text` are NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn gptrt_session_constrain(
    session: *const crate::session::gptrt_session_t,
    host: *const gptrt_plugin_host_t,
    kind: *const c_char,
    text: *const c_char,
) -> gptrt_status_t {
    boundary("gptrt_session_constrain", || {
        let session = handles::get(session, "session")?;
        let host = handles::get(host, "host")?;
        // SAFETY: caller contract.
        let (kind, text) = unsafe { (read_str(kind, "kind")?, read_str(text, "text")?) };
        let value = match kind {
            "json_schema" => serde_json::from_str::<serde_json::Value>(text)
                .map_err(|e| invalid("text", format!("the JSON Schema is not JSON: {e}")))?,
            "regex" | "grammar" => serde_json::Value::String(text.to_string()),
            other => {
                return Err(invalid(
                    "kind",
                    format!("unknown kind `{other}` (expected json_schema, regex or grammar)"),
                ))
            }
        };
        let config = serde_json::json!({ kind: value }).to_string();
        let spec = gptrt::SamplerSpec::new(GRAMMAR_ID, Some(config));
        Ok(session.add_sampler(host.host.clone(), spec)?)
    })
}
