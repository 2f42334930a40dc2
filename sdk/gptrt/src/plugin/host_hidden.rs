//! Host capability `org.gptrt.hidden_states` (ABI 1.2): pooled final hidden states of token
//! sequences, offered when the attached model's graph returns `last_hidden_state`.

use std::ffi::c_void;

use gptrt_plugin_api::{
    GptrtHiddenStates, GPTRT_PLUGIN_BUFFER_TOO_SMALL, GPTRT_PLUGIN_ERROR,
    GPTRT_PLUGIN_INVALID_ARGUMENT, GPTRT_PLUGIN_OK, GPTRT_PLUGIN_UNSUPPORTED, GPTRT_POOLING_LAST,
    GPTRT_POOLING_MEAN,
};

use super::host_api::{arg_slice, context, guarded};
use crate::model::Model;
use crate::tasks::Pooling;

/// The capability's table for `model`, or `None` when its graph lacks the output.
pub(super) fn table(model: &Model) -> Option<GptrtHiddenStates> {
    model.has_hidden_states().then(|| GptrtHiddenStates {
        struct_size: std::mem::size_of::<GptrtHiddenStates>(),
        hidden_size: model.hidden_size(),
        features: Some(host_features),
    })
}

/// `GptrtHiddenStates::features`.
unsafe extern "C" fn host_features(
    host_data: *mut c_void,
    ids: *const u32,
    lengths: *const usize,
    n_sequences: usize,
    pooling: i32,
    out: *mut f32,
    capacity: usize,
    out_len: *mut usize,
) -> i32 {
    guarded(|| {
        // SAFETY: host API contract.
        let (Some(ctx), Some(lengths)) = (unsafe { context(host_data) }, unsafe {
            arg_slice(lengths, n_sequences)
        }) else {
            return GPTRT_PLUGIN_INVALID_ARGUMENT;
        };
        let Some(model) = &ctx.model else {
            return GPTRT_PLUGIN_UNSUPPORTED;
        };
        let pooling = match pooling {
            GPTRT_POOLING_LAST => Pooling::Last,
            GPTRT_POOLING_MEAN => Pooling::Mean,
            _ => return GPTRT_PLUGIN_INVALID_ARGUMENT,
        };
        let Some(total) = lengths
            .iter()
            .try_fold(0usize, |sum, &n| sum.checked_add(n))
        else {
            return GPTRT_PLUGIN_INVALID_ARGUMENT;
        };
        // SAFETY: host API contract: `ids` holds the sum of `lengths`.
        let Some(ids) = (unsafe { arg_slice(ids, total) }) else {
            return GPTRT_PLUGIN_INVALID_ARGUMENT;
        };
        if out_len.is_null() {
            return GPTRT_PLUGIN_INVALID_ARGUMENT;
        }
        let needed = n_sequences * model.hidden_size();
        // SAFETY: checked non-NULL.
        unsafe { *out_len = needed };
        if capacity < needed || (out.is_null() && needed > 0) {
            return GPTRT_PLUGIN_BUFFER_TOO_SMALL;
        }
        let mut sequences = Vec::with_capacity(n_sequences);
        let mut start = 0;
        for &length in lengths {
            sequences.push(ids[start..start + length].to_vec());
            start += length;
        }
        let features = match model.features_of_ids(&sequences, pooling) {
            Ok(features) => features,
            Err(crate::Error::InvalidArgument { .. } | crate::Error::InvalidToken { .. }) => {
                return GPTRT_PLUGIN_INVALID_ARGUMENT
            }
            Err(crate::Error::ContextOverflow { .. }) => return GPTRT_PLUGIN_INVALID_ARGUMENT,
            Err(_) => return GPTRT_PLUGIN_ERROR,
        };
        for (row, vector) in features.iter().enumerate() {
            let width = vector.len();
            // SAFETY: `out` holds `capacity >= needed` floats; row * width + width <= needed.
            unsafe {
                std::ptr::copy_nonoverlapping(vector.as_ptr(), out.add(row * width), width);
            }
        }
        GPTRT_PLUGIN_OK
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use gptrt_plugin_api::{Host, Pooling as PluginPooling};

    use super::super::host_api::HostApi;
    use crate::model::Model;
    use crate::tasks::Pooling;

    fn tiny(layout: &str) -> Arc<Model> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../models/fixtures/tiny-random-gpt2")
            .join(layout);
        Arc::new(Model::load(dir).expect("the tiny fixture loads"))
    }

    #[test]
    fn hidden_states_are_the_models_features_and_absent_without_the_output() {
        let model = tiny("hidden");
        let api = HostApi::new(Some(model.clone()));
        // SAFETY: a host API this module made, alive for the test.
        let host = unsafe { Host::from_raw(&api.api) };
        let hidden = host
            .hidden_states()
            .expect("offered: the graph has the output");
        assert_eq!(hidden.hidden_size(), model.hidden_size());
        let tokenizer = model.tokenizer();
        let sequences = vec![
            tokenizer.encode("Hello world").unwrap(),
            tokenizer
                .encode("a longer text, padded on the left")
                .unwrap(),
        ];
        for (ours, theirs) in [
            (Pooling::Last, PluginPooling::Last),
            (Pooling::Mean, PluginPooling::Mean),
        ] {
            assert_eq!(
                hidden.features(&sequences, theirs).unwrap(),
                model.features_of_ids(&sequences, ours).unwrap()
            );
        }
        assert!(hidden.features(&[vec![]], PluginPooling::Last).is_err());

        let plain = HostApi::new(Some(tiny("single")));
        // SAFETY: as above.
        assert!(unsafe { Host::from_raw(&plain.api) }
            .hidden_states()
            .is_none());
        let bare = HostApi::new(None);
        // SAFETY: as above.
        assert!(unsafe { Host::from_raw(&bare.api) }
            .hidden_states()
            .is_none());
    }
}
