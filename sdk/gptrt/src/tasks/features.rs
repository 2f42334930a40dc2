//! Hidden-state features: each text's final hidden states (after ln_f) pooled into one vector, the
//! input of trained classification heads.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::graph::{missing_hidden_states, StepInput};
use crate::model::Model;

/// How many sequences one features pass runs at most.
pub const FEATURE_BATCH: usize = 32;

/// How a sequence's hidden states (one per token) become one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// The last token's hidden state: in a causal model the only one that has seen the whole
    /// text (what Hugging Face's `GPT2ForSequenceClassification` classifies).
    #[default]
    Last,
    /// The mean over the sequence's tokens (padding excluded).
    Mean,
}

impl Pooling {
    /// `last` or `mean`.
    pub fn name(self) -> &'static str {
        match self {
            Pooling::Last => "last",
            Pooling::Mean => "mean",
        }
    }
}

impl std::str::FromStr for Pooling {
    type Err = Error;
    fn from_str(text: &str) -> Result<Pooling> {
        match text {
            "last" => Ok(Pooling::Last),
            "mean" => Ok(Pooling::Mean),
            other => Err(Error::InvalidArgument {
                name: "pooling",
                message: format!("unknown pooling `{other}` (expected `last` or `mean`)"),
            }),
        }
    }
}

impl Model {
    /// Whether the graph returns `last_hidden_state`, which [`Model::features`] needs
    /// (`models/add_hidden_states.py` adds it to any export).
    pub fn has_hidden_states(&self) -> bool {
        self.prompt_graph().signature.has_hidden_states
    }

    /// The width of a feature vector (`n_embd`).
    pub fn hidden_size(&self) -> usize {
        self.config().n_embd
    }

    /// One pooled feature vector ([`Model::hidden_size`] floats) per text, in order. Texts run in
    /// batches of up to [`FEATURE_BATCH`], left-padded and grouped by length so that little
    /// padding runs. An empty text, or one longer than the context window, is refused; a graph
    /// without `last_hidden_state` gets an error naming the graph and the script that adds it.
    pub fn features(&self, texts: &[&str], pooling: Pooling) -> Result<Vec<Vec<f32>>> {
        let sequences = texts
            .iter()
            .map(|text| self.tokenizer().encode(text))
            .collect::<Result<Vec<_>>>()?;
        self.features_of_ids(&sequences, pooling)
    }

    /// [`Model::features`] of token sequences.
    pub fn features_of_ids(
        &self,
        sequences: &[Vec<u32>],
        pooling: Pooling,
    ) -> Result<Vec<Vec<f32>>> {
        if !self.has_hidden_states() {
            return Err(missing_hidden_states(self.prompt_graph()));
        }
        let n_positions = self.config().n_positions;
        for (index, ids) in sequences.iter().enumerate() {
            if ids.is_empty() {
                return Err(Error::InvalidArgument {
                    name: "text",
                    message: format!("text {index} is empty: there is nothing to classify"),
                });
            }
            if ids.len() > n_positions {
                return Err(Error::ContextOverflow {
                    prompt_tokens: ids.len(),
                    n_positions,
                });
            }
            self.check_ids(ids)?;
        }
        // Sorted by length, a batch's rows need little padding; results go back in input order.
        let mut order: Vec<usize> = (0..sequences.len()).collect();
        order.sort_by_key(|&index| sequences[index].len());
        let mut features = vec![Vec::new(); sequences.len()];
        for chunk in order.chunks(FEATURE_BATCH) {
            let rows: Vec<&[u32]> = chunk.iter().map(|&i| sequences[i].as_slice()).collect();
            for (&index, pooled) in chunk.iter().zip(self.pooled_batch(&rows, pooling)?) {
                features[index] = pooled;
            }
        }
        Ok(features)
    }

    /// One left-padded pass over `rows` (checked, non-empty), pooled.
    fn pooled_batch(&self, rows: &[&[u32]], pooling: Pooling) -> Result<Vec<Vec<f32>>> {
        let (batch, width) = (rows.len(), self.hidden_size());
        let seq = rows.iter().map(|row| row.len()).max().unwrap_or(0);
        let pad = i64::from(self.config().eos_token_id);
        let mut input_ids = Vec::with_capacity(batch * seq);
        let mut attention_mask = Vec::with_capacity(batch * seq);
        let mut position_ids = Vec::with_capacity(batch * seq);
        for row in rows {
            let padding = seq - row.len();
            input_ids.extend(std::iter::repeat_n(pad, padding));
            input_ids.extend(row.iter().map(|&id| i64::from(id)));
            attention_mask.extend(std::iter::repeat_n(0, padding));
            attention_mask.extend(std::iter::repeat_n(1, row.len()));
            // Hugging Face's left-padded positions: real tokens count from 0, padding sits at 0.
            position_ids.extend(std::iter::repeat_n(0, padding));
            position_ids.extend(0..row.len() as i64);
        }
        let hidden = self.prompt_graph().run_hidden(
            self.config(),
            &StepInput {
                batch,
                seq,
                input_ids: &input_ids,
                attention_mask: &attention_mask,
                position_ids: &position_ids,
            },
        )?;
        Ok(rows
            .iter()
            .enumerate()
            .map(|(row, ids)| {
                let states = &hidden[row * seq * width..(row + 1) * seq * width];
                match pooling {
                    Pooling::Last => states[(seq - 1) * width..].to_vec(),
                    Pooling::Mean => {
                        let real = &states[(seq - ids.len()) * width..];
                        let mut mean = vec![0f32; width];
                        for token in real.chunks_exact(width) {
                            for (sum, value) in mean.iter_mut().zip(token) {
                                *sum += value;
                            }
                        }
                        let count = ids.len() as f32;
                        mean.iter_mut().for_each(|value| *value /= count);
                        mean
                    }
                }
            })
            .collect())
    }
}
