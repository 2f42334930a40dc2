//! The typed setters of `gptrt_generation_options_t`, one per field (the string-keyed setters in
//! the parent module reach the same fields by name). Most are rows of the `typed_setters!` table;
//! those taking strings or token sequences are written out.

use std::ffi::c_char;

use gptrt::{EarlyStopping, StopStrings, TokenIds};

use super::{
    gptrt_early_stopping_t, gptrt_generation_options_t, update, GPTRT_EARLY_STOPPING_DONE,
    GPTRT_EARLY_STOPPING_HEURISTIC, GPTRT_EARLY_STOPPING_NEVER,
};
use crate::error::{gptrt_status_t, Failure, GPTRT_ERROR_INVALID_OPTION};
use crate::ffi::{read_slice, read_str};

/// Writes the typed setters from a table, one row per setter: its doc, then
/// `fn C_NAME(PARAM: C_TYPE) => FIELD = VALUE;`, VALUE being an expression of PARAM (it may fail
/// with `?`). Each becomes a `#[no_mangle] extern "C"` function taking the options handle and the
/// value, with the `[thread-safe]` note, whose body goes through `update` (so the per-field rules
/// apply and a refused value leaves the options unchanged). A row whose C_TYPE is `[u32]` takes an
/// id array instead, `(PARAM, count)`, with its `# Safety` contract; PARAM is then the ids as a
/// `Vec<u32>`.
///
/// cbindgen sees these functions only through macro expansion (`[parse.expand]` in
/// `cbindgen.toml`), so `include/gptrt.h` stays generated from the code.
macro_rules! typed_setters {
    () => {};
    (
        $(#[$doc:meta])*
        fn $name:ident($ids:ident: [u32]) => $field:ident = $value:expr;
        $($rest:tt)*
    ) => {
        $(#[$doc])*
        ///
        /// [thread-safe]
        ///
        /// # Safety
        /// `ids` is NULL (count 0) or points to `count` ids.
        #[no_mangle]
        pub unsafe extern "C" fn $name(
            options: *mut gptrt_generation_options_t,
            $ids: *const u32,
            count: usize,
        ) -> gptrt_status_t {
            update(stringify!($name), options, |config| {
                // SAFETY: per this function's contract.
                let $ids = unsafe { read_slice($ids, count, stringify!($ids))? }.to_vec();
                config.$field = $value;
                Ok(())
            })
        }
        typed_setters!($($rest)*);
    };
    (
        $(#[$doc:meta])*
        fn $name:ident($param:ident: $c_type:ty) => $field:ident = $value:expr;
        $($rest:tt)*
    ) => {
        $(#[$doc])*
        ///
        /// [thread-safe]
        #[no_mangle]
        pub extern "C" fn $name(
            options: *mut gptrt_generation_options_t,
            $param: $c_type,
        ) -> gptrt_status_t {
            update(stringify!($name), options, |config| {
                config.$field = $value;
                Ok(())
            })
        }
        typed_setters!($($rest)*);
    };
}

fn early_stopping_mode(value: gptrt_early_stopping_t) -> Result<EarlyStopping, Failure> {
    match value {
        GPTRT_EARLY_STOPPING_HEURISTIC => Ok(EarlyStopping::Heuristic),
        GPTRT_EARLY_STOPPING_DONE => Ok(EarlyStopping::Done),
        GPTRT_EARLY_STOPPING_NEVER => Ok(EarlyStopping::Never),
        other => Err(Failure::new(
            GPTRT_ERROR_INVALID_OPTION,
            format!("`early_stopping` {other} is not a GPTRT_EARLY_STOPPING_* value"),
        )),
    }
}

/// One id is `TokenIds::One`, as Hugging Face writes a single end token.
fn token_ids(ids: Vec<u32>) -> TokenIds {
    match ids.as_slice() {
        [one] => TokenIds::One(*one),
        _ => TokenIds::Many(ids),
    }
}

// The header lists the setters in this order: early_stopping, the lists, then the table below.
typed_setters! {
    /// `early_stopping` for beam search: one of `GPTRT_EARLY_STOPPING_HEURISTIC` (the default),
    /// `GPTRT_EARLY_STOPPING_DONE`, `GPTRT_EARLY_STOPPING_NEVER`; any other value is
    /// `GPTRT_ERROR_INVALID_OPTION`.
    fn gptrt_generation_options_set_early_stopping(value: gptrt_early_stopping_t) => early_stopping = early_stopping_mode(value)?;
}

/// Stop when the generated text contains one of these strings (`stop_strings`); the text never
/// includes it. `count` UTF-8 strings; a count of 0 sets an empty list (no stop string).
///
/// [thread-safe]
///
/// # Safety
/// `strings` is NULL (count 0) or points to `count` NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn gptrt_generation_options_set_stop_strings(
    options: *mut gptrt_generation_options_t,
    strings: *const *const c_char,
    count: usize,
) -> gptrt_status_t {
    update(
        "gptrt_generation_options_set_stop_strings",
        options,
        |config| {
            // SAFETY: per this function's contract.
            let pointers = unsafe { read_slice(strings, count, "strings")? };
            let mut list = Vec::with_capacity(count);
            for (index, &pointer) in pointers.iter().enumerate() {
                // SAFETY: per this function's contract.
                list.push(unsafe { read_str(pointer, &format!("strings[{index}]"))? }.to_string());
            }
            config.stop_strings = Some(StopStrings::Many(list));
            Ok(())
        },
    )
}

/// Read `count` token sequences stored back to back in `ids`, sequence `i` being `lengths[i]` ids.
///
/// # Safety
/// `ids` holds the sum of `lengths` ids; `lengths` holds `count` entries (both NULL when empty).
unsafe fn read_sequences(
    ids: *const u32,
    lengths: *const usize,
    count: usize,
) -> Result<Vec<Vec<u32>>, Failure> {
    // SAFETY: per this function's contract.
    let lengths = unsafe { read_slice(lengths, count, "lengths")? };
    let total = lengths
        .iter()
        .try_fold(0usize, |sum, &len| sum.checked_add(len))
        .ok_or_else(|| Failure::invalid("the lengths add up to more than size_t holds"))?;
    // SAFETY: per this function's contract.
    let ids = unsafe { read_slice(ids, total, "ids")? };
    let mut sequences = Vec::with_capacity(count);
    let mut at = 0;
    for &len in lengths {
        sequences.push(ids[at..at + len].to_vec());
        at += len;
    }
    Ok(sequences)
}

/// Token sequences that must never be generated (`bad_words_ids`): `count` sequences stored back
/// to back in `ids`, sequence `i` being `lengths[i]` ids long.
///
/// [thread-safe]
///
/// # Safety
/// `lengths` holds `count` entries and `ids` their sum (either may be NULL when that is 0).
#[no_mangle]
pub unsafe extern "C" fn gptrt_generation_options_set_bad_words_ids(
    options: *mut gptrt_generation_options_t,
    ids: *const u32,
    lengths: *const usize,
    count: usize,
) -> gptrt_status_t {
    update(
        "gptrt_generation_options_set_bad_words_ids",
        options,
        |config| {
            // SAFETY: per this function's contract.
            config.bad_words_ids = Some(unsafe { read_sequences(ids, lengths, count)? });
            Ok(())
        },
    )
}

/// Biases for token sequences (`sequence_bias`): `biases[i]` is added to the last token of
/// sequence `i` when the text ends with the others. Sequences are stored as in
/// `gptrt_generation_options_set_bad_words_ids`.
///
/// [thread-safe]
///
/// # Safety
/// `lengths` and `biases` hold `count` entries and `ids` the sum of `lengths` (each may be NULL
/// when that is 0).
#[no_mangle]
pub unsafe extern "C" fn gptrt_generation_options_set_sequence_bias(
    options: *mut gptrt_generation_options_t,
    ids: *const u32,
    lengths: *const usize,
    biases: *const f32,
    count: usize,
) -> gptrt_status_t {
    update(
        "gptrt_generation_options_set_sequence_bias",
        options,
        |config| {
            // SAFETY: per this function's contract.
            let sequences = unsafe { read_sequences(ids, lengths, count)? };
            // SAFETY: per this function's contract.
            let biases = unsafe { read_slice(biases, count, "biases")? };
            config.sequence_bias =
                Some(sequences.into_iter().zip(biases.iter().copied()).collect());
            Ok(())
        },
    )
}

typed_setters! {
    /// Tokens that are never generated (`suppress_tokens`).
    fn gptrt_generation_options_set_suppress_tokens(ids: [u32]) => suppress_tokens = Some(ids);
    /// Tokens that are never generated first (`begin_suppress_tokens`).
    fn gptrt_generation_options_set_begin_suppress_tokens(ids: [u32]) => begin_suppress_tokens = Some(ids);
    /// Token(s) forced when the next token is the last one allowed (`forced_eos_token_id`).
    fn gptrt_generation_options_set_forced_eos_token_id(ids: [u32]) => forced_eos_token_id = Some(token_ids(ids));
    /// Token(s) that end generation (`eos_token_id`; default: the model's). A count of 0 sets an
    /// empty list: nothing ends generation but the limits. `gptrt_generation_options_unset(options,
    /// "eos_token_id")` goes back to the model's.
    fn gptrt_generation_options_set_eos_token_id(ids: [u32]) => eos_token_id = Some(token_ids(ids));
    /// Most tokens to generate after the prompt (`max_new_tokens`; at least 1). Unset (the default): `max_length` applies, else 20 tokens in all.
    fn gptrt_generation_options_set_max_new_tokens(value: usize) => max_new_tokens = Some(value);
    /// Most tokens in prompt plus generation (`max_length`), used only when `max_new_tokens` is unset.
    fn gptrt_generation_options_set_max_length(value: usize) => max_length = Some(value);
    /// End tokens are banned until this many tokens were generated (`min_new_tokens`).
    fn gptrt_generation_options_set_min_new_tokens(value: usize) => min_new_tokens = Some(value);
    /// End tokens are banned until the sequence, prompt included, is this long (`min_length`; default 0).
    fn gptrt_generation_options_set_min_length(value: usize) => min_length = value;
    /// Stop after this many seconds (`max_time`; > 0). Stop reason `GPTRT_STOP_MAX_TIME`.
    fn gptrt_generation_options_set_max_time(value: f64) => max_time = Some(value);
    /// Sample (`true`) or pick the most likely token (`false`, the default) (`do_sample`).
    fn gptrt_generation_options_set_do_sample(value: bool) => do_sample = value;
    /// Beams for beam search (`num_beams`; 1 = no beam search, the default). With more than 1 beam the token callback is not called and the poll API gets the whole text at the end; cancellation takes effect only between generations.
    fn gptrt_generation_options_set_num_beams(value: usize) => num_beams = value;
    /// Sequences returned (`num_return_sequences`). A session generates one sequence: values above 1 are refused when a generation starts.
    fn gptrt_generation_options_set_num_return_sequences(value: usize) => num_return_sequences = value;
    /// Beam scores are `sum_logprobs / length ** length_penalty` (`length_penalty`; default 1).
    fn gptrt_generation_options_set_length_penalty(value: f32) => length_penalty = value;
    /// Divide logits by this before sampling (`temperature`; > 0, default 1).
    fn gptrt_generation_options_set_temperature(value: f32) => temperature = value;
    /// Keep the k most likely tokens when sampling (`top_k`; 0 = off, default 50).
    fn gptrt_generation_options_set_top_k(value: usize) => top_k = value;
    /// Nucleus sampling: keep the most likely tokens whose probability reaches this (`top_p`; (0, 1], default 1 = off).
    fn gptrt_generation_options_set_top_p(value: f32) => top_p = value;
    /// Locally typical sampling mass (`typical_p`; (0, 1], default 1 = off).
    fn gptrt_generation_options_set_typical_p(value: f32) => typical_p = value;
    /// Drop tokens less likely than `min_p` times the most likely one when sampling (`min_p`; [0, 1]).
    fn gptrt_generation_options_set_min_p(value: f32) => min_p = Some(value);
    /// Drop tokens with probability below this when sampling (`epsilon_cutoff`; [0, 1), 0 = off).
    fn gptrt_generation_options_set_epsilon_cutoff(value: f32) => epsilon_cutoff = value;
    /// Eta sampling cutoff (`eta_cutoff`; [0, 1), 0 = off).
    fn gptrt_generation_options_set_eta_cutoff(value: f32) => eta_cutoff = value;
    /// Hugging Face's repetition penalty (`repetition_penalty`; > 0, 1 = off).
    fn gptrt_generation_options_set_repetition_penalty(value: f32) => repetition_penalty = value;
    /// OpenAI's presence penalty over generated tokens (`presence_penalty`, a gptrt extension; >= 0, 0 = off).
    fn gptrt_generation_options_set_presence_penalty(value: f32) => presence_penalty = value;
    /// OpenAI's frequency penalty over generated tokens (`frequency_penalty`, a gptrt extension; >= 0, 0 = off).
    fn gptrt_generation_options_set_frequency_penalty(value: f32) => frequency_penalty = value;
    /// Never repeat an n-gram of this size (`no_repeat_ngram_size`; 0 = off).
    fn gptrt_generation_options_set_no_repeat_ngram_size(value: usize) => no_repeat_ngram_size = value;
    /// Replace the processed logits by their log-softmax at the end of the processor chain (`renormalize_logits`).
    fn gptrt_generation_options_set_renormalize_logits(value: bool) => renormalize_logits = value;
    /// Replace NaN and infinite logits before sampling (`remove_invalid_values`).
    fn gptrt_generation_options_set_remove_invalid_values(value: bool) => remove_invalid_values = value;
    /// Token used to pad batches (`pad_token_id`; default: the first end token).
    fn gptrt_generation_options_set_pad_token_id(value: u32) => pad_token_id = Some(value);
    /// Token an empty prompt starts from (`bos_token_id`; default: the model's).
    fn gptrt_generation_options_set_bos_token_id(value: u32) => bos_token_id = Some(value);
    /// Seed of the sampling generator (`seed`, a gptrt extension). Unset: a fresh seed per generation, reported in `gptrt_session_result_json`.
    fn gptrt_generation_options_set_seed(value: u64) => seed = Some(value);
    /// Record the log-probability of each chosen token and of this many alternatives (`logprobs`, a gptrt extension); read them with `gptrt_session_result_json`.
    fn gptrt_generation_options_set_logprobs(value: usize) => logprobs = Some(value);
    /// Drop the oldest prompt tokens when the prompt does not fit the context window, instead of failing with `GPTRT_ERROR_CONTEXT_OVERFLOW` (`truncate_prompt`, a gptrt extension; default false).
    fn gptrt_generation_options_set_truncate_prompt(value: bool) => truncate_prompt = value;
}
