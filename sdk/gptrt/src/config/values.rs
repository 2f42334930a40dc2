//! Values of generation fields that Hugging Face lets take more than one form.

use serde::{Deserialize, Serialize};

/// One token id or several, as Hugging Face allows for `eos_token_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TokenIds {
    /// A single id.
    One(u32),
    /// Several ids.
    Many(Vec<u32>),
}

impl TokenIds {
    /// The ids as a list.
    pub fn to_vec(&self) -> Vec<u32> {
        match self {
            TokenIds::One(id) => vec![*id],
            TokenIds::Many(ids) => ids.clone(),
        }
    }
}

/// Hugging Face's `early_stopping` for beam search: `false`, `true` or `"never"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EarlyStopping {
    /// `false` (the default): stop when the best running beam can no longer beat the worst
    /// finished hypothesis, judged at the current length (Hugging Face's heuristic).
    #[default]
    Heuristic,
    /// `true`: stop as soon as `num_beams` hypotheses are finished.
    Done,
    /// `"never"`: stop only when no better hypothesis is possible at any length.
    Never,
}

impl Serialize for EarlyStopping {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            EarlyStopping::Heuristic => s.serialize_bool(false),
            EarlyStopping::Done => s.serialize_bool(true),
            EarlyStopping::Never => s.serialize_str("never"),
        }
    }
}

impl<'de> Deserialize<'de> for EarlyStopping {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Bool(false) => Ok(EarlyStopping::Heuristic),
            serde_json::Value::Bool(true) => Ok(EarlyStopping::Done),
            serde_json::Value::String(text) if text == "never" => Ok(EarlyStopping::Never),
            other => Err(serde::de::Error::custom(format!(
                "early_stopping must be true, false or \"never\", got {other}"
            ))),
        }
    }
}

/// One stop string or several (`stop_strings`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StopStrings {
    /// A single string.
    One(String),
    /// Several strings.
    Many(Vec<String>),
}

impl StopStrings {
    /// The strings as a list.
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            StopStrings::One(s) => vec![s.clone()],
            StopStrings::Many(list) => list.clone(),
        }
    }
}
