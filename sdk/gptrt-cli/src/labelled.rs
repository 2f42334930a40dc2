//! JSON-lines files of texts, `{"text": ..., "label": ...}` a line, as `gptrt train-head` and
//! `gptrt classify --input-file` read them.

use std::path::Path;

use serde::Deserialize;

/// One line.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Example {
    pub(crate) text: String,
    /// Absent in a file only to classify.
    #[serde(default)]
    pub(crate) label: Option<String>,
}

/// Read every non-blank line of `path`; `need_labels` makes a missing label an error. Errors name
/// the file and line.
pub(crate) fn read(path: &Path, need_labels: bool) -> Result<Vec<Example>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut examples = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{} line {}", path.display(), index + 1);
        let example: Example = serde_json::from_str(line)
            .map_err(|e| format!("{}: expected {{\"text\": ..., \"label\": ...}}: {e}", at()))?;
        if example.text.trim().is_empty() {
            return Err(format!("{}: the text is empty", at()));
        }
        match &example.label {
            Some(label) if label.trim().is_empty() => {
                return Err(format!("{}: the label is empty", at()))
            }
            None if need_labels => return Err(format!("{}: no \"label\"", at())),
            _ => {}
        }
        examples.push(example);
    }
    if examples.is_empty() {
        return Err(format!("{}: no examples", path.display()));
    }
    Ok(examples)
}
