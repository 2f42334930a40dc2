//! `gptrt_generation_options_t`: every Hugging Face `GenerationConfig` field, with a typed setter
//! each and string-keyed setters that take any field by name (new options need no new symbol).

use std::ffi::c_char;
use std::sync::{Arc, Mutex, MutexGuard};

use gptrt::{EarlyStopping, GenerationConfig, StopStrings, TokenIds};
use serde_json::{Map, Value};

use crate::error::{
    boundary, gptrt_status_t, Failure, GPTRT_ERROR_INVALID_OPTION, GPTRT_ERROR_UNKNOWN_OPTION,
};
use crate::ffi::{check_out, read_slice, read_str, write_out, write_text};
use crate::handles;

/// Generation settings: the fields, names, meanings and defaults of Hugging Face's
/// `generation_config.json`. Opaque; made by `gptrt_generation_options_new` (Hugging Face's
/// defaults), `gptrt_generation_options_from_model` (the model folder's `generation_config.json`)
/// or `gptrt_generation_options_from_json`; released by `gptrt_generation_options_free`.
///
/// Every setter checks the value it receives (NaN, `top_p` outside (0, 1], `max_new_tokens` 0, a
/// bias that is not a finite 32-bit float...) and fails with `GPTRT_ERROR_INVALID_OPTION`, leaving
/// the options unchanged; `from_json` checks every field the same way. How fields combine
/// (`num_return_sequences` against `num_beams`) is checked by `gptrt_generation_options_validate`
/// and by every generation before it starts, so fields can be set in any order.
/// A session copies the options when a generation starts: changing them afterwards does not affect
/// it.
pub struct gptrt_generation_options_t(());

/// `early_stopping` for beam search: one of the `GPTRT_EARLY_STOPPING_*` values.
pub type gptrt_early_stopping_t = u32;

/// `early_stopping = false` (the default): stop when the best running beam can no longer beat the
/// worst finished one, judged at the current length.
pub const GPTRT_EARLY_STOPPING_HEURISTIC: gptrt_early_stopping_t = 0;
/// `early_stopping = true`: stop as soon as `num_beams` hypotheses are finished.
pub const GPTRT_EARLY_STOPPING_DONE: gptrt_early_stopping_t = 1;
/// `early_stopping = "never"`: stop only when no better hypothesis is possible at any length.
pub const GPTRT_EARLY_STOPPING_NEVER: gptrt_early_stopping_t = 2;

/// The object behind a `gptrt_generation_options_t`.
pub(crate) struct OptionsObject {
    config: Mutex<GenerationConfig>,
}

impl OptionsObject {
    fn new(config: GenerationConfig) -> Arc<OptionsObject> {
        Arc::new(OptionsObject {
            config: Mutex::new(config),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, GenerationConfig> {
        // Every update replaces whole fields: the config is consistent even after a panic.
        self.config
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn new_handle(config: GenerationConfig, out_options: *mut *mut gptrt_generation_options_t) {
    let handle = handles::insert::<gptrt_generation_options_t>(OptionsObject::new(config));
    // SAFETY: every caller checked `out_options` non-NULL before doing any work.
    unsafe { write_out(out_options, handle) };
}

/// Apply `change` to the options' config (the entry-point body of every setter). The changed config
/// must pass `GenerationConfig::validate_fields`, the one per-field rule of every path, or the
/// options stay as they were: the call that received a bad value is the one that fails.
fn update(
    function: &str,
    options: *mut gptrt_generation_options_t,
    change: impl FnOnce(&mut GenerationConfig) -> Result<(), Failure>,
) -> gptrt_status_t {
    boundary(function, || {
        let object = handles::get(options, "options")?;
        let mut config = object.lock();
        let mut changed = config.clone();
        change(&mut changed)?;
        changed.validate_fields()?;
        *config = changed;
        Ok(())
    })
}

/// Whether `key` names a `GenerationConfig` field (not one that would land in `unsupported`).
fn is_known(key: &str) -> bool {
    let mut map = Map::new();
    map.insert(key.to_string(), Value::Null);
    match serde_json::from_value::<GenerationConfig>(Value::Object(map)) {
        Ok(config) => !config.unsupported.contains_key(key),
        // A known field that is not optional refuses null.
        Err(_) => true,
    }
}

fn unknown(key: &str) -> Failure {
    Failure::new(
        GPTRT_ERROR_UNKNOWN_OPTION,
        format!(
            "`{key}` is not a generation option gptrt knows (Hugging Face GenerationConfig names: \
             max_new_tokens, temperature, top_p, ...)"
        ),
    )
}

/// The config as a JSON map. Through text, so that an `f32` such as 0.9 reads back as `0.9`, not
/// as its `f64` widening.
fn to_map(config: &GenerationConfig) -> Result<Map<String, Value>, Failure> {
    match serde_json::to_string(config).and_then(|text| serde_json::from_str::<Value>(&text)) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Failure::new(
            crate::error::GPTRT_ERROR_INTERNAL,
            "generation options did not serialise to an object",
        )),
        Err(e) => Err(Failure::new(
            crate::error::GPTRT_ERROR_INTERNAL,
            format!("generation options did not serialise: {e}"),
        )),
    }
}

/// Set one field by name from a JSON value (`null` unsets an optional field).
fn set_value(config: &mut GenerationConfig, key: &str, value: Value) -> Result<(), Failure> {
    if !is_known(key) {
        return Err(unknown(key));
    }
    let mut map = to_map(config)?;
    let shown = value.to_string();
    map.insert(key.to_string(), value);
    let updated: GenerationConfig = serde_json::from_value(Value::Object(map)).map_err(|e| {
        Failure::new(
            GPTRT_ERROR_INVALID_OPTION,
            format!("invalid generation option `{key}` = {shown}: {e}"),
        )
    })?;
    *config = updated;
    Ok(())
}

/// Generation options with Hugging Face's defaults (greedy, 20 tokens in all unless
/// `max_new_tokens` is set). On success `*out_options` receives a new handle to release with
/// `gptrt_generation_options_free`.
///
/// [thread-safe]
///
/// # Safety
/// `out_options` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn gptrt_generation_options_new(
    out_options: *mut *mut gptrt_generation_options_t,
) -> gptrt_status_t {
    boundary("gptrt_generation_options_new", || {
        check_out(out_options, "out_options")?;
        new_handle(GenerationConfig::default(), out_options);
        Ok(())
    })
}

/// Generation options from the model folder's `generation_config.json` (Hugging Face's defaults
/// where it is silent): what a session uses when given no options.
///
/// [thread-safe]
///
/// # Safety
/// `out_options` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn gptrt_generation_options_from_model(
    model: *const crate::model::gptrt_model_t,
    out_options: *mut *mut gptrt_generation_options_t,
) -> gptrt_status_t {
    boundary("gptrt_generation_options_from_model", || {
        check_out(out_options, "out_options")?;
        let model = handles::get(model, "model")?;
        new_handle(model.generation_config().clone(), out_options);
        Ok(())
    })
}

/// Generation options from a JSON object in `generation_config.json` form, for example
/// `{"max_new_tokens": 32, "do_sample": true, "top_p": 0.9}`; missing fields take Hugging Face's
/// defaults. Hugging Face's bookkeeping fields (`transformers_version`, `_from_model_config`) are
/// accepted; any other field gptrt does not know is `GPTRT_ERROR_UNKNOWN_OPTION`, a wrong type
/// `GPTRT_ERROR_INVALID_OPTION`.
///
/// [thread-safe]
///
/// # Safety
/// `json` is NULL or NUL-terminated; `out_options` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn gptrt_generation_options_from_json(
    json: *const c_char,
    out_options: *mut *mut gptrt_generation_options_t,
) -> gptrt_status_t {
    boundary("gptrt_generation_options_from_json", || {
        check_out(out_options, "out_options")?;
        // SAFETY: per this function's contract.
        let json = unsafe { read_str(json, "json")? };
        let config: GenerationConfig = serde_json::from_str(json).map_err(|e| {
            Failure::new(
                GPTRT_ERROR_INVALID_OPTION,
                format!("not a generation config JSON object: {e}"),
            )
        })?;
        let unsupported = config.unsupported_fields();
        if !unsupported.is_empty() {
            return Err(Failure::new(
                GPTRT_ERROR_UNKNOWN_OPTION,
                format!(
                    "generation option(s) gptrt does not know: {}",
                    unsupported.join(", ")
                ),
            ));
        }
        config.validate_fields()?;
        new_handle(config, out_options);
        Ok(())
    })
}

/// A copy of `options` (a new handle, changed independently).
///
/// [thread-safe]
///
/// # Safety
/// `out_options` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn gptrt_generation_options_clone(
    options: *const gptrt_generation_options_t,
    out_options: *mut *mut gptrt_generation_options_t,
) -> gptrt_status_t {
    boundary("gptrt_generation_options_clone", || {
        check_out(out_options, "out_options")?;
        let object = handles::get(options, "options")?;
        let config = object.lock().clone();
        new_handle(config, out_options);
        Ok(())
    })
}

/// Release an options handle. NULL, or a handle freed already, is ignored (set your variable to
/// NULL after freeing).
///
/// [thread-safe] Do not use the handle after this call.
#[no_mangle]
pub extern "C" fn gptrt_generation_options_free(options: *mut gptrt_generation_options_t) {
    crate::error::boundary_value((), || handles::remove(options));
}

/// Check every value and how they combine. `GPTRT_ERROR_INVALID_OPTION` with a message naming the
/// field (for example `temperature` <= 0, `top_p` outside (0, 1]).
///
/// [thread-safe]
#[no_mangle]
pub extern "C" fn gptrt_generation_options_validate(
    options: *const gptrt_generation_options_t,
) -> gptrt_status_t {
    boundary("gptrt_generation_options_validate", || {
        let object = handles::get(options, "options")?;
        let config = object.lock();
        config.validate()?;
        Ok(())
    })
}

/// Set any field by its Hugging Face name from a JSON value: `"32"`, `"0.7"`, `"true"`,
/// `"\"never\""`, `"[50256, 198]"`, `"[\"\\n\\n\"]"`; `"null"` unsets an optional field. An unknown
/// name is `GPTRT_ERROR_UNKNOWN_OPTION`; malformed JSON or a value of the wrong type is
/// `GPTRT_ERROR_INVALID_OPTION` (the options are unchanged).
///
/// [thread-safe]
///
/// # Safety
/// `key` and `json` are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn gptrt_generation_options_set_json(
    options: *mut gptrt_generation_options_t,
    key: *const c_char,
    json: *const c_char,
) -> gptrt_status_t {
    update("gptrt_generation_options_set_json", options, |config| {
        // SAFETY: per this function's contract.
        let (key, json) = unsafe { (read_str(key, "key")?, read_str(json, "json")?) };
        let value: Value = serde_json::from_str(json).map_err(|e| {
            Failure::new(
                GPTRT_ERROR_INVALID_OPTION,
                format!("`{key}`: the value is not JSON ({e}): {json}"),
            )
        })?;
        set_value(config, key, value)
    })
}

/// Set an integer field by name (`"max_new_tokens"`, `"top_k"`, `"seed"`, ...; a float field
/// takes an integer too). Errors as `gptrt_generation_options_set_json`.
///
/// [thread-safe]
///
/// # Safety
/// `key` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn gptrt_generation_options_set_int(
    options: *mut gptrt_generation_options_t,
    key: *const c_char,
    value: i64,
) -> gptrt_status_t {
    update("gptrt_generation_options_set_int", options, |config| {
        // SAFETY: per this function's contract.
        let key = unsafe { read_str(key, "key")? };
        set_value(config, key, Value::from(value))
    })
}

/// Set a number field by name (`"temperature"`, `"top_p"`, `"max_time"`, ...). NaN and infinities
/// are `GPTRT_ERROR_INVALID_OPTION`. Errors as `gptrt_generation_options_set_json`.
///
/// [thread-safe]
///
/// # Safety
/// `key` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn gptrt_generation_options_set_float(
    options: *mut gptrt_generation_options_t,
    key: *const c_char,
    value: f64,
) -> gptrt_status_t {
    update("gptrt_generation_options_set_float", options, |config| {
        // SAFETY: per this function's contract.
        let key = unsafe { read_str(key, "key")? };
        if !value.is_finite() {
            return Err(Failure::new(
                GPTRT_ERROR_INVALID_OPTION,
                format!("`{key}`: {value} is not a finite number"),
            ));
        }
        set_value(config, key, Value::from(value))
    })
}

/// Set a boolean field by name (`"do_sample"`, `"truncate_prompt"`, `"early_stopping"`, ...).
/// Errors as `gptrt_generation_options_set_json`.
///
/// [thread-safe]
///
/// # Safety
/// `key` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn gptrt_generation_options_set_bool(
    options: *mut gptrt_generation_options_t,
    key: *const c_char,
    value: bool,
) -> gptrt_status_t {
    update("gptrt_generation_options_set_bool", options, |config| {
        // SAFETY: per this function's contract.
        let key = unsafe { read_str(key, "key")? };
        set_value(config, key, Value::from(value))
    })
}

/// Set a string field by name (`"stop_strings"` with one string, `"early_stopping"` with
/// `"never"`). The value must be UTF-8. Errors as `gptrt_generation_options_set_json`.
///
/// [thread-safe]
///
/// # Safety
/// `key` and `value` are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn gptrt_generation_options_set_string(
    options: *mut gptrt_generation_options_t,
    key: *const c_char,
    value: *const c_char,
) -> gptrt_status_t {
    update("gptrt_generation_options_set_string", options, |config| {
        // SAFETY: per this function's contract.
        let (key, value) = unsafe { (read_str(key, "key")?, read_str(value, "value")?) };
        set_value(config, key, Value::from(value))
    })
}

/// Put a field back to Hugging Face's default (optional fields become unset, so the model's
/// `eos_token_id` applies again, for instance). An unknown name is `GPTRT_ERROR_UNKNOWN_OPTION`.
///
/// [thread-safe]
///
/// # Safety
/// `key` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn gptrt_generation_options_unset(
    options: *mut gptrt_generation_options_t,
    key: *const c_char,
) -> gptrt_status_t {
    update("gptrt_generation_options_unset", options, |config| {
        // SAFETY: per this function's contract.
        let key = unsafe { read_str(key, "key")? };
        let defaults = to_map(&GenerationConfig::default())?;
        let value = defaults.get(key).cloned().unwrap_or(Value::Null);
        set_value(config, key, value)
    })
}

/// One field's value as JSON (`null` when unset), copied into `buffer` (NUL-terminated).
/// `*out_size` receives the size needed (the NUL included), also when the status is
/// `GPTRT_ERROR_BUFFER_TOO_SMALL`; pass `buffer = NULL, capacity = 0` to ask for it. An unknown
/// name is `GPTRT_ERROR_UNKNOWN_OPTION`.
///
/// [thread-safe]
///
/// # Safety
/// `key` is NULL or NUL-terminated; `buffer` is NULL or valid for `capacity` bytes; `out_size` is
/// NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn gptrt_generation_options_get_json(
    options: *const gptrt_generation_options_t,
    key: *const c_char,
    buffer: *mut c_char,
    capacity: usize,
    out_size: *mut usize,
) -> gptrt_status_t {
    boundary("gptrt_generation_options_get_json", || {
        check_out(out_size, "out_size")?;
        let object = handles::get(options, "options")?;
        // SAFETY: per this function's contract.
        let key = unsafe { read_str(key, "key")? };
        if !is_known(key) {
            return Err(unknown(key));
        }
        let map = to_map(&object.lock())?;
        let text = map.get(key).cloned().unwrap_or(Value::Null).to_string();
        // SAFETY: per this function's contract.
        unsafe { write_text(&text, buffer, capacity, out_size, "buffer") }
    })
}

/// Every set field as one JSON object in `generation_config.json` form (unset optional fields are
/// left out), copied into `buffer` (NUL-terminated). `*out_size` receives the size needed (the NUL
/// included), also when the status is `GPTRT_ERROR_BUFFER_TOO_SMALL`; pass `buffer = NULL,
/// capacity = 0` to ask for it.
///
/// [thread-safe]
///
/// # Safety
/// `buffer` is NULL or valid for `capacity` bytes; `out_size` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn gptrt_generation_options_to_json(
    options: *const gptrt_generation_options_t,
    buffer: *mut c_char,
    capacity: usize,
    out_size: *mut usize,
) -> gptrt_status_t {
    boundary("gptrt_generation_options_to_json", || {
        check_out(out_size, "out_size")?;
        let object = handles::get(options, "options")?;
        let text = Value::Object(to_map(&object.lock())?).to_string();
        // SAFETY: per this function's contract.
        unsafe { write_text(&text, buffer, capacity, out_size, "buffer") }
    })
}

// ---- Typed setters: one per field (string-keyed setters above reach the same fields). ----

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
