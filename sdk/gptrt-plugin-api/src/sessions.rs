//! Capability `org.gptrt.sessions` for Rust plugins: dialogue sessions that keep their KV cache
//! between turns ([`Host::sessions`]).

use std::ffi::{c_char, c_void, CStr, CString};

use crate::*;

/// The host's session capability, borrowed from it ([`Host::sessions`]).
#[derive(Debug, Clone, Copy)]
pub struct Sessions {
    host: Host,
    table: GptrtSessions,
}

/// One host session; destroyed when dropped (and by the host with the instance at the latest).
#[derive(Debug)]
pub struct HostSession {
    sessions: Sessions,
    handle: GptrtSessionHandle,
}

impl Host {
    /// Dialogue sessions over the model (capability `org.gptrt.sessions`, ABI 1.2), when the host
    /// offers them: `None` from an older host or without a model.
    pub fn sessions(&self) -> Option<Sessions> {
        // Slots after `last_error` came later: a table that ends before them lacks only those.
        // SAFETY: the capability's table type.
        let table: GptrtSessions = unsafe {
            self.capability(
                GPTRT_CAPABILITY_SESSIONS,
                std::mem::offset_of!(GptrtSessions, prefill),
            )
        }?;
        Some(Sessions { host: *self, table })
    }
}

impl Sessions {
    /// The model's context window in tokens.
    pub fn context_window(&self) -> usize {
        self.table.context_window
    }

    /// A new, empty session.
    pub fn create(&self) -> Result<HostSession, String> {
        let f = self
            .table
            .create
            .ok_or("the host's sessions have no create")?;
        let mut handle = 0;
        // SAFETY: a valid out pointer.
        let status = unsafe { f(self.data(), &mut handle) };
        self.check("create", status)?;
        Ok(HostSession {
            sessions: *self,
            handle,
        })
    }

    fn data(&self) -> *mut c_void {
        self.host.raw().host_data
    }

    /// `status` as a result, with the host's message for a failure.
    fn check(&self, what: &str, status: i32) -> Result<(), String> {
        if status == GPTRT_PLUGIN_OK {
            return Ok(());
        }
        let message = self.take_string(self.table.last_error.map(|f| {
            let mut text: *mut c_char = std::ptr::null_mut();
            // SAFETY: a valid out pointer.
            unsafe { f(self.data(), &mut text) };
            text
        }));
        Err(match message {
            Some(message) => format!("host session {what} failed: {message}"),
            None => format!("host session {what} failed with status {status}"),
        })
    }

    /// Copy and release a string the host returned.
    fn take_string(&self, text: Option<*mut c_char>) -> Option<String> {
        let text = text.filter(|t| !t.is_null())?;
        // SAFETY: a NUL-terminated host string, released right after the copy.
        let copy = unsafe { CStr::from_ptr(text) }
            .to_string_lossy()
            .into_owned();
        if let Some(free) = self.host.raw().free_string {
            // SAFETY: releasing the host's own string through its function.
            unsafe { free(self.data(), text) };
        }
        Some(copy)
    }

    /// Copy and release bytes the host returned.
    fn take_bytes(&self, bytes: *mut u8, len: usize) -> Vec<u8> {
        if bytes.is_null() {
            return Vec::new();
        }
        // SAFETY: `len` host bytes, released right after the copy.
        let copy = unsafe { std::slice::from_raw_parts(bytes, len) }.to_vec();
        if let Some(free) = self.table.free_bytes {
            // SAFETY: releasing the host's own bytes through its function.
            unsafe { free(self.data(), bytes, len) };
        }
        copy
    }
}

/// What [`HostSession::generate_turn`]'s callback gets through the C boundary.
struct TextSink<'a> {
    on_text: &'a mut dyn FnMut(&str) -> bool,
}

unsafe extern "C" fn text_sink(user_data: *mut c_void, text: *const c_char, len: usize) -> i32 {
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: the `TextSink` generate_turn passed, alive for the call.
        let sink = unsafe { &mut *user_data.cast::<TextSink<'_>>() };
        if text.is_null() {
            return true;
        }
        // SAFETY: `len` bytes of UTF-8 from the host, valid for the call.
        let bytes = unsafe { std::slice::from_raw_parts(text.cast::<u8>(), len) };
        (sink.on_text)(&String::from_utf8_lossy(bytes))
    }));
    // A panicking callback stops the turn rather than unwinding into the host.
    i32::from(!run.unwrap_or(false))
}

impl HostSession {
    /// Append `text` to the sequence; returns how many tokens it added.
    pub fn append_text(&self, text: &str) -> Result<usize, String> {
        let s = &self.sessions;
        let f = s.table.append_text.ok_or("no append_text")?;
        let text = CString::new(text).map_err(|_| "the text contains NUL".to_string())?;
        let mut added = 0;
        // SAFETY: valid pointers for the call.
        let status = unsafe { f(s.data(), self.handle, text.as_ptr(), &mut added) };
        s.check("append_text", status)?;
        Ok(added)
    }

    /// Generate a turn with `config_json` (fields over the model's generation config), calling
    /// `on_text` with each piece (return `false` to stop). Returns the host's JSON report:
    /// `{"text", "stop_reason", "stop_string", "token_ids", "prompt_tokens_processed"}`.
    pub fn generate_turn(
        &self,
        config_json: Option<&str>,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<String, String> {
        let s = &self.sessions;
        let f = s.table.generate_turn.ok_or("no generate_turn")?;
        let config = config_json
            .map(CString::new)
            .transpose()
            .map_err(|_| "the config JSON contains NUL".to_string())?;
        let mut sink = TextSink { on_text };
        let mut out: *mut c_char = std::ptr::null_mut();
        // SAFETY: valid pointers; `sink` outlives the call.
        let status = unsafe {
            f(
                s.data(),
                self.handle,
                config.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
                Some(text_sink),
                (&mut sink as *mut TextSink<'_>).cast(),
                &mut out,
            )
        };
        s.check("generate_turn", status)?;
        s.take_string(Some(out))
            .ok_or_else(|| "host session generate_turn returned no report".to_string())
    }

    /// Keep the first `len` tokens.
    pub fn rewind(&self, len: usize) -> Result<(), String> {
        let s = &self.sessions;
        let f = s.table.rewind.ok_or("no rewind")?;
        // SAFETY: plain values.
        s.check("rewind", unsafe { f(s.data(), self.handle, len) })
    }

    /// The sequence's length in tokens.
    pub fn context_len(&self) -> Result<usize, String> {
        let s = &self.sessions;
        let f = s.table.length.ok_or("no length")?;
        let mut len = 0;
        // SAFETY: a valid out pointer.
        s.check("length", unsafe { f(s.data(), self.handle, &mut len) })?;
        Ok(len)
    }

    /// The sequence's tokens.
    pub fn tokens(&self) -> Result<Vec<u32>, String> {
        let s = &self.sessions;
        let f = s.table.tokens.ok_or("no tokens")?;
        let mut ids = vec![0u32; self.context_len()?];
        let mut len = 0;
        // SAFETY: `ids` holds its length.
        let status = unsafe { f(s.data(), self.handle, ids.as_mut_ptr(), ids.len(), &mut len) };
        s.check("tokens", status)?;
        ids.truncate(len);
        Ok(ids)
    }

    /// Run the tokens not in the cache yet through the model now. A host without the slot (an
    /// older table) runs them with the next turn instead, so this is then a no-op.
    pub fn prefill(&self) -> Result<(), String> {
        let s = &self.sessions;
        match s.table.prefill {
            // SAFETY: a handle of this table's host.
            Some(f) => s.check("prefill", unsafe { f(s.data(), self.handle) }),
            None => Ok(()),
        }
    }

    /// Replace the sequence by `ids` (the shared prefix keeps its cache).
    pub fn set_tokens(&self, ids: &[u32]) -> Result<(), String> {
        let s = &self.sessions;
        let f = s.table.set_tokens.ok_or("no set_tokens")?;
        // SAFETY: `ids` is valid for its length.
        s.check("set_tokens", unsafe {
            f(s.data(), self.handle, ids.as_ptr(), ids.len())
        })
    }

    /// The session's state with `data` of the caller's, the cache in fp16 when `fp16_kv`.
    pub fn save(&self, fp16_kv: bool, data: &[u8]) -> Result<Vec<u8>, String> {
        let s = &self.sessions;
        let f = s.table.save.ok_or("no save")?;
        let (mut bytes, mut len) = (std::ptr::null_mut(), 0);
        // SAFETY: valid pointers for the call.
        let status = unsafe {
            f(
                s.data(),
                self.handle,
                i32::from(fp16_kv),
                data.as_ptr(),
                data.len(),
                &mut bytes,
                &mut len,
            )
        };
        s.check("save", status)?;
        Ok(s.take_bytes(bytes, len))
    }

    /// Continue from `save`'s bytes; returns the caller's data saved with them.
    pub fn restore(&self, state: &[u8]) -> Result<Vec<u8>, String> {
        let s = &self.sessions;
        let f = s.table.restore.ok_or("no restore")?;
        let (mut data, mut len) = (std::ptr::null_mut(), 0);
        // SAFETY: valid pointers for the call.
        let status = unsafe {
            f(
                s.data(),
                self.handle,
                state.as_ptr(),
                state.len(),
                &mut data,
                &mut len,
            )
        };
        s.check("restore", status)?;
        Ok(s.take_bytes(data, len))
    }
}

impl Drop for HostSession {
    fn drop(&mut self) {
        if let Some(f) = self.sessions.table.destroy {
            // SAFETY: destroying the handle this value owns, once.
            unsafe { f(self.sessions.data(), self.handle) };
        }
    }
}
