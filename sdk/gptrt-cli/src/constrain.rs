//! `gptrt generate --json-schema FILE | --regex PATTERN | --grammar FILE`: output constrained by
//! the grammar plugin (`org.gptrt.grammar`, plugins/grammar), found without `--plugin` when it
//! was built beside this executable.

use std::path::{Path, PathBuf};

use clap::Args;
use gptrt::PluginHost;
use serde_json::json;

/// The grammar plugin's id.
pub(crate) const GRAMMAR_ID: &str = "org.gptrt.grammar";
/// Its library's file name as cargo builds it.
const LIBRARY: &str = "libgptrt_plugin_grammar.so";

#[derive(Args, Debug, Default)]
pub(crate) struct ConstrainArgs {
    /// Constrain the output to JSON matching this JSON Schema file (the output is the JSON alone).
    #[arg(long, value_name = "FILE", group = "constraint")]
    pub(crate) json_schema: Option<PathBuf>,
    /// Constrain the output to this regular expression (the output is the match alone).
    #[arg(long, value_name = "PATTERN", group = "constraint")]
    pub(crate) regex: Option<String>,
    /// Constrain the output to this Lark grammar file (llguidance's Lark dialect).
    #[arg(long, value_name = "FILE", group = "constraint")]
    pub(crate) grammar: Option<PathBuf>,
}

fn read(path: &Path, what: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{what} {}: {e}", path.display()))
}

impl ConstrainArgs {
    /// Whether a constraint was asked for.
    pub(crate) fn is_set(&self) -> bool {
        self.json_schema.is_some() || self.regex.is_some() || self.grammar.is_some()
    }

    /// The `--sampler` form of the constraint (`ID:CONFIG`), if one was asked for.
    pub(crate) fn sampler(&self) -> Result<Option<String>, String> {
        let config = if let Some(path) = &self.json_schema {
            let text = read(path, "--json-schema")?;
            let schema: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| format!("--json-schema {}: not JSON: {e}", path.display()))?;
            json!({ "json_schema": schema })
        } else if let Some(pattern) = &self.regex {
            json!({ "regex": pattern })
        } else if let Some(path) = &self.grammar {
            json!({ "grammar": read(path, "--grammar")? })
        } else {
            return Ok(None);
        };
        Ok(Some(format!("{GRAMMAR_ID}:{config}")))
    }

    /// Which flag set the constraint, for messages.
    pub(crate) fn flag(&self) -> String {
        if let Some(path) = &self.json_schema {
            format!("--json-schema {}", path.display())
        } else if let Some(pattern) = &self.regex {
            format!("--regex {pattern:?}")
        } else if let Some(path) = &self.grammar {
            format!("--grammar {}", path.display())
        } else {
            String::new()
        }
    }
}

/// Load the grammar plugin into `host` unless it is there already (`--plugin`,
/// `$GPTRT_PLUGIN_PATH`): from beside this executable or its `plugins/` folder.
pub(crate) fn ensure_grammar_plugin(host: &mut PluginHost) -> Result<(), String> {
    if host.find(GRAMMAR_ID).is_some() {
        return Ok(());
    }
    let exe = std::env::current_exe().map_err(|e| format!("locating gptrt: {e}"))?;
    let dir = exe.parent().unwrap_or(Path::new("."));
    let candidates = [dir.join(LIBRARY), dir.join("plugins").join(LIBRARY)];
    match candidates.iter().find(|p| p.is_file()) {
        Some(path) => host.load(path).map(|_| ()).map_err(|e| e.to_string()),
        None => Err(format!(
            "the grammar plugin ({GRAMMAR_ID}) is not loaded and {LIBRARY} is not beside gptrt \
             ({}): build it with `cargo build -p gptrt-plugin-grammar` or pass --plugin PATH",
            dir.display()
        )),
    }
}
