//! Capability `org.gptrt.hidden_states` for Rust plugins: pooled final hidden states of token
//! sequences ([`Host::hidden_states`]).

use crate::*;

/// How a sequence's hidden states become one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// The last token's hidden state.
    Last,
    /// The mean over the sequence's tokens.
    Mean,
}

/// The host's hidden-state capability, borrowed from it ([`Host::hidden_states`]).
#[derive(Debug, Clone, Copy)]
pub struct HiddenStates {
    host: Host,
    table: GptrtHiddenStates,
}

impl Host {
    /// The model's final hidden states (capability `org.gptrt.hidden_states`, ABI 1.2), when the
    /// host offers them: `None` from an older host, without a model, or when the model's graph
    /// has no `last_hidden_state` output (`models/add_hidden_states.py` adds it).
    pub fn hidden_states(&self) -> Option<HiddenStates> {
        // SAFETY: the capability's table type.
        let table: GptrtHiddenStates = unsafe {
            self.capability(
                GPTRT_CAPABILITY_HIDDEN_STATES,
                std::mem::size_of::<GptrtHiddenStates>(),
            )
        }?;
        table.features?;
        Some(HiddenStates { host: *self, table })
    }
}

impl HiddenStates {
    /// Floats per feature vector (`n_embd`).
    pub fn hidden_size(&self) -> usize {
        self.table.hidden_size
    }

    /// One pooled feature vector per sequence (each at least one token), in order.
    pub fn features(
        &self,
        sequences: &[Vec<u32>],
        pooling: Pooling,
    ) -> Result<Vec<Vec<f32>>, String> {
        let Some(f) = self.table.features else {
            return Err("the host's hidden_states capability has no features function".to_string());
        };
        let ids: Vec<u32> = sequences.iter().flatten().copied().collect();
        let lengths: Vec<usize> = sequences.iter().map(Vec::len).collect();
        let width = self.table.hidden_size;
        let mut out = vec![0f32; sequences.len() * width];
        let mut written = 0usize;
        let pooling = match pooling {
            Pooling::Last => GPTRT_POOLING_LAST,
            Pooling::Mean => GPTRT_POOLING_MEAN,
        };
        // SAFETY: every buffer is valid for the length passed with it.
        let status = unsafe {
            f(
                self.host.raw().host_data,
                ids.as_ptr(),
                lengths.as_ptr(),
                lengths.len(),
                pooling,
                out.as_mut_ptr(),
                out.len(),
                &mut written,
            )
        };
        if status != GPTRT_PLUGIN_OK || written != out.len() {
            return Err(format!(
                "host hidden-state features failed with status {status} (empty or too long a text?)"
            ));
        }
        Ok(out
            .chunks_exact(width.max(1))
            .map(<[f32]>::to_vec)
            .collect())
    }
}
