//! Capability `org.gptrt.output` for Rust plugins: text written during `run` reaches that run's
//! caller as it is made ([`Host::output`]).

use std::ffi::c_void;

use crate::*;

/// The caller's output stream, borrowed from the host ([`Host::output`]); look it up once (at
/// `create`) and write through it during each `run`.
#[derive(Debug, Clone, Copy)]
pub struct OutputStream {
    host_data: *mut c_void,
    write: unsafe extern "C" fn(
        host_data: *mut c_void,
        text: *const std::ffi::c_char,
        len: usize,
    ) -> i32,
}

impl Host {
    /// The output stream of the `run` under way (capability `org.gptrt.output`, ABI 1.2): `None`
    /// from an older host, whose callers then get only the run's result.
    pub fn output(&self) -> Option<OutputStream> {
        // SAFETY: the capability's table type.
        let table: GptrtOutput = unsafe {
            self.capability(GPTRT_CAPABILITY_OUTPUT, std::mem::size_of::<GptrtOutput>())
        }?;
        Some(OutputStream {
            host_data: self.raw().host_data,
            write: table.write_text?,
        })
    }
}

impl OutputStream {
    /// Pass `text` to the run's caller: `true` to go on, `false` when the caller asks the run to
    /// stop early (end it soon, still returning a result). Call it on the thread that is running
    /// `run`: the host drops text written from other threads.
    pub fn write_text(&self, text: &str) -> bool {
        // SAFETY: the capability's contract: `len` bytes at `text`, alive for the call; the
        // table and host data live as long as the instance.
        unsafe { (self.write)(self.host_data, text.as_ptr().cast(), text.len()) == 0 }
    }
}
