//! Plugin instances: a sampler as a link of the chain, a task head run on JSON.

use std::ffi::{c_char, c_void, CStr, CString};
use std::sync::Arc;

use gptrt_plugin_api::*;

use crate::error::{Error, Result};
use crate::model::Model;
use crate::sampling::{Candidates, Sampler, SamplerContext};

use super::host_api::HostApi;
use super::{plugin_error, PluginInfo, Vtable};
use crate::generate::calls;

fn last_error(
    instance: *mut c_void,
    slot: Option<unsafe extern "C" fn(*mut c_void) -> *const c_char>,
) -> Option<String> {
    let f = slot?;
    // SAFETY: the plugin's own function on its own instance.
    let text = unsafe { f(instance) };
    if text.is_null() {
        return None;
    }
    // SAFETY: NUL-terminated per the ABI, valid until the next call on the instance.
    Some(
        unsafe { CStr::from_ptr(text) }
            .to_string_lossy()
            .into_owned(),
    )
}

fn create_instance(
    plugin: &PluginInfo,
    create: Option<
        unsafe extern "C" fn(*const GptrtHostApi, *const c_char, *mut *mut c_void) -> i32,
    >,
    host: &HostApi,
    config_json: Option<&str>,
) -> Result<*mut c_void> {
    let create = create.ok_or_else(|| plugin_error(plugin.label(), "slot `create` is NULL"))?;
    let config = config_json
        .map(|c| {
            CString::new(c).map_err(|_| plugin_error(plugin.label(), "config JSON contains NUL"))
        })
        .transpose()?;
    let mut instance: *mut c_void = std::ptr::null_mut();
    let _in_call = calls::InCall::enter();
    // SAFETY: ABI call with valid pointers; the host API outlives the instance.
    let status = unsafe {
        create(
            &host.api,
            config.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            &mut instance,
        )
    };
    if status != GPTRT_PLUGIN_OK || instance.is_null() {
        let detail = host
            .last_log()
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        return Err(plugin_error(
            plugin.label(),
            format!("create failed (status {status}){detail}"),
        ));
    }
    Ok(instance)
}

/// A sampler plugin instance: a link of the sampler chain like any built-in one. The host checks
/// what it returns (sizes, token ids, NaN logits, the selection) before trusting it.
pub struct PluginSampler {
    plugin: Arc<PluginInfo>,
    vtable: GptrtSamplerVtable,
    instance: *mut c_void,
    host: Box<HostApi>,
}

// SAFETY: an instance is used by one thread at a time (the ABI's rule); the host API it holds is
// thread-safe (the model is Send + Sync).
unsafe impl Send for PluginSampler {}

impl PluginSampler {
    pub(super) fn new(
        plugin: Arc<PluginInfo>,
        config_json: Option<&str>,
        model: Option<Arc<Model>>,
    ) -> Result<PluginSampler> {
        let Vtable::Sampler(vtable) = plugin.vtable else {
            return Err(plugin_error(plugin.label(), "is not a sampler"));
        };
        let host = HostApi::new(model);
        let instance = create_instance(&plugin, vtable.create, &host, config_json)?;
        Ok(PluginSampler {
            plugin,
            vtable,
            instance,
            host,
        })
    }

    /// The plugin this instance comes from.
    pub fn plugin(&self) -> &PluginInfo {
        &self.plugin
    }

    fn fault(&self, message: String) -> Error {
        plugin_error(self.plugin.label(), message)
    }
}

impl Drop for PluginSampler {
    fn drop(&mut self) {
        if let Some(destroy) = self.vtable.destroy {
            let _in_call = calls::InCall::enter();
            // SAFETY: destroying the instance this struct owns, once.
            unsafe { destroy(self.instance) };
        }
        let _ = &self.host;
    }
}

impl Sampler for PluginSampler {
    // The chain names links by id: unique and what users pass to --sampler.
    #[allow(clippy::misnamed_getters)]
    fn name(&self) -> &str {
        &self.plugin.id
    }

    fn apply(&mut self, candidates: &mut Candidates, context: &SamplerContext<'_>) -> Result<()> {
        let apply = self
            .vtable
            .apply
            .ok_or_else(|| self.fault("slot `apply` is NULL".to_string()))?;
        let vocab_limit = context.vocab_size;
        let items = candidates.items_mut();
        let before = items.len();
        let mut raw = GptrtCandidates {
            struct_size: std::mem::size_of::<GptrtCandidates>(),
            data: items.as_mut_ptr().cast::<GptrtCandidate>(),
            size: before,
            sorted: false,
            probs_valid: false,
            selected: -1,
            stop_reason: std::ptr::null(),
        };
        let ctx = GptrtSamplerContext {
            struct_size: std::mem::size_of::<GptrtSamplerContext>(),
            tokens: context.tokens.as_ptr(),
            n_tokens: context.tokens.len(),
            prompt_len: context.prompt_len,
            max_length: context.max_length,
            vocab_size: vocab_limit,
        };
        // A generation that is cancelled or out of time calls no more plugins: the generator
        // stops the row without this token (see `calls::take_skipped`).
        if let Some(reason) = calls::stop_before_call() {
            return Err(self.fault(format!(
                "apply not called: the generation stopped ({})",
                reason.name()
            )));
        }
        let status = {
            let _in_call = calls::InCall::enter();
            // SAFETY: `raw.data` points to `before` initialised candidates with the ABI layout
            // (checked at compile time); the plugin may only shrink `size`.
            unsafe { apply(self.instance, &mut raw, &ctx) }
        };
        if status != GPTRT_PLUGIN_OK {
            let detail = last_error(self.instance, self.vtable.last_error)
                .unwrap_or_else(|| "no message".to_string());
            return Err(self.fault(format!("apply failed with status {status}: {detail}")));
        }
        if !raw.stop_reason.is_null() {
            // SAFETY: non-NULL, and per the ABI a NUL-terminated name valid until the next call.
            let reason =
                unsafe { super::stop::read(raw.stop_reason) }.map_err(|m| self.fault(m))?;
            calls::stop_by_sampler(reason);
            return Err(self.fault(format!("ended the sequence ({})", reason.name())));
        }
        if raw.data != items.as_mut_ptr().cast::<GptrtCandidate>() {
            return Err(self.fault(
                "apply replaced the candidates buffer (only shrinking `size` is allowed)"
                    .to_string(),
            ));
        }
        if raw.size > before || raw.size == 0 {
            return Err(self.fault(format!(
                "apply left {} candidates out of {before} (must be 1..={before})",
                raw.size
            )));
        }
        items.truncate(raw.size);
        if let Some(bad) = items.iter().find(|c| c.id as usize >= vocab_limit) {
            return Err(self.fault(format!(
                "returned token id {} outside the vocabulary (size {vocab_limit})",
                bad.id
            )));
        }
        if let Some(bad) = items.iter().find(|c| c.logit.is_nan()) {
            return Err(self.fault(format!("returned a NaN logit for token {}", bad.id)));
        }
        if raw.selected >= 0 {
            let index = usize::try_from(raw.selected).unwrap_or(usize::MAX);
            if index >= items.len() {
                return Err(self.fault(format!(
                    "selected index {} but only {} candidates remain",
                    raw.selected,
                    items.len()
                )));
            }
            candidates.select(index);
        }
        Ok(())
    }

    fn accept(&mut self, token: u32) {
        if let Some(accept) = self.vtable.accept {
            let _in_call = calls::InCall::enter();
            // SAFETY: ABI call on the owned instance.
            unsafe { accept(self.instance, token) };
        }
    }

    fn reset(&mut self) {
        if let Some(reset) = self.vtable.reset {
            let _in_call = calls::InCall::enter();
            // SAFETY: ABI call on the owned instance.
            unsafe { reset(self.instance) };
        }
    }
}

/// A task-head plugin instance over a model.
pub struct TaskHead {
    plugin: Arc<PluginInfo>,
    vtable: GptrtTaskHeadVtable,
    instance: *mut c_void,
    host: Box<HostApi>,
}

// SAFETY: as for PluginSampler.
unsafe impl Send for TaskHead {}

impl TaskHead {
    pub(super) fn new(
        plugin: Arc<PluginInfo>,
        config_json: Option<&str>,
        model: Arc<Model>,
    ) -> Result<TaskHead> {
        let Vtable::TaskHead(vtable) = plugin.vtable else {
            return Err(plugin_error(plugin.label(), "is not a task head"));
        };
        let host = HostApi::new(Some(model));
        let instance = create_instance(&plugin, vtable.create, &host, config_json)?;
        Ok(TaskHead {
            plugin,
            vtable,
            instance,
            host,
        })
    }

    /// The plugin this instance comes from.
    pub fn plugin(&self) -> &PluginInfo {
        &self.plugin
    }

    /// Run the task: JSON in, JSON out (checked to be UTF-8 JSON).
    pub fn run(&mut self, input_json: &str) -> Result<String> {
        self.run_streaming(input_json, &mut |_| true)
    }

    /// [`TaskHead::run`], with the text the plugin writes as it works (capability
    /// `org.gptrt.output`: a dialogue's reply, piece by piece) passed to `on_text` on this
    /// thread; `on_text` returns `false` to ask the plugin to stop early (it still returns its
    /// result). A panic in `on_text` stops the run and resumes once the plugin has returned.
    pub fn run_streaming(
        &mut self,
        input_json: &str,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<String> {
        let attached = self.host.context.output.attach(on_text);
        let result = self.run_attached(input_json);
        if let Some(panic) = attached.detach() {
            std::panic::resume_unwind(panic);
        }
        result
    }

    fn run_attached(&self, input_json: &str) -> Result<String> {
        let label = self.plugin.label();
        let run = self
            .vtable
            .run
            .ok_or_else(|| plugin_error(&label, "slot `run` is NULL"))?;
        let input = CString::new(input_json)
            .map_err(|_| plugin_error(&label, "input JSON contains NUL"))?;
        let mut output: *mut c_char = std::ptr::null_mut();
        let status = {
            let _in_call = calls::InCall::enter();
            // SAFETY: ABI call with valid pointers.
            unsafe { run(self.instance, input.as_ptr(), &mut output) }
        };
        if status != GPTRT_PLUGIN_OK {
            let detail = last_error(self.instance, self.vtable.last_error)
                .unwrap_or_else(|| "no message".to_string());
            return Err(plugin_error(
                &label,
                format!("run failed with status {status}: {detail}"),
            ));
        }
        if output.is_null() {
            return Err(plugin_error(&label, "run succeeded but returned NULL"));
        }
        // SAFETY: NUL-terminated per the ABI; copied before it is freed.
        let text = unsafe { CStr::from_ptr(output) }
            .to_str()
            .map(str::to_string);
        if let Some(free) = self.vtable.free_string {
            // SAFETY: releasing the plugin's own allocation through its own function.
            unsafe { free(self.instance, output) };
        }
        let text = text.map_err(|_| plugin_error(&label, "run returned invalid UTF-8"))?;
        serde_json::from_str::<serde_json::Value>(&text)
            .map_err(|e| plugin_error(&label, format!("run returned invalid JSON: {e}")))?;
        Ok(text)
    }
}

impl Drop for TaskHead {
    fn drop(&mut self) {
        if let Some(destroy) = self.vtable.destroy {
            let _in_call = calls::InCall::enter();
            // SAFETY: destroying the owned instance once.
            unsafe { destroy(self.instance) };
        }
    }
}
