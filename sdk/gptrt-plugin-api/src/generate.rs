//! The host's text generation, safely wrapped ([`Host::generate`]).

use std::ffi::{c_char, CStr, CString};

use crate::*;

impl Host {
    /// Generate from `prompt` with a Hugging Face generation config (JSON; `None`: the model's
    /// `generation_config.json`) and return the generated text.
    pub fn generate(&self, prompt: &str, config_json: Option<&str>) -> Result<String, String> {
        let (Some(generate), Some(free)) = (self.raw().generate, self.raw().free_string) else {
            return Err("the host offers no generation (no model attached)".to_string());
        };
        let prompt = CString::new(prompt).map_err(|_| "the prompt contains NUL".to_string())?;
        let config = config_json
            .map(CString::new)
            .transpose()
            .map_err(|_| "the config contains NUL".to_string())?;
        let mut text: *mut c_char = std::ptr::null_mut();
        // SAFETY: NUL-terminated strings (or NULL for the config) and a pointer valid for a write.
        let status = unsafe {
            generate(
                self.raw().host_data,
                prompt.as_ptr(),
                config.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
                &mut text,
            )
        };
        if status != GPTRT_PLUGIN_OK || text.is_null() {
            return Err(format!("host generate failed with status {status}"));
        }
        // SAFETY: a NUL-terminated string the host returned, released right after the copy.
        let out = unsafe { CStr::from_ptr(text) }
            .to_string_lossy()
            .into_owned();
        // SAFETY: returned by this host's generate.
        unsafe { free(self.raw().host_data, text) };
        Ok(out)
    }
}
