//! `gptrt_generation_options_t`: every Hugging Face `GenerationConfig` field, with a typed setter
//! each and string-keyed setters that take any field by name (new options need no new symbol).

use std::ffi::c_char;
use std::sync::{Arc, Mutex, MutexGuard};

use gptrt::GenerationConfig;
use serde_json::{Map, Value};

use crate::error::{
    boundary, gptrt_status_t, Failure, GPTRT_ERROR_INVALID_OPTION, GPTRT_ERROR_UNKNOWN_OPTION,
};
use crate::ffi::{check_out, read_str, write_out, write_text};
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

// Last in this file: the header lists the typed setters after the functions above.
mod typed;
