//! Reading the caller's arguments and writing its out-parameters and buffers. Every raw pointer the
//! host gives us is touched here and nowhere else.

use std::ffi::{c_char, CStr};

use crate::error::{Failure, GPTRT_ERROR_BUFFER_TOO_SMALL, GPTRT_ERROR_INVALID_UTF8};

/// Borrow a NUL-terminated UTF-8 string.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that stays valid and unchanged for `'a`
/// (the duration of the call, as the header documents).
pub(crate) unsafe fn read_str<'a>(ptr: *const c_char, what: &str) -> Result<&'a str, Failure> {
    if ptr.is_null() {
        return Err(Failure::null(what));
    }
    // SAFETY: non-NULL and NUL-terminated per the caller's contract.
    let bytes = unsafe { CStr::from_ptr(ptr) }.to_bytes();
    std::str::from_utf8(bytes).map_err(|e| {
        Failure::new(
            GPTRT_ERROR_INVALID_UTF8,
            format!(
                "`{what}` is not valid UTF-8 (invalid byte at offset {})",
                e.valid_up_to()
            ),
        )
    })
}

/// Borrow `len` elements; NULL is allowed only when `len` is 0.
///
/// # Safety
/// `ptr` is NULL or points to `len` initialised elements valid for `'a`.
pub(crate) unsafe fn read_slice<'a, T>(
    ptr: *const T,
    len: usize,
    what: &str,
) -> Result<&'a [T], Failure> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Failure::null(what));
    }
    if len > isize::MAX as usize / std::mem::size_of::<T>().max(1) {
        return Err(Failure::invalid(format!("`{what}` length {len} is absurd")));
    }
    // SAFETY: non-NULL, `len` elements per the caller's contract, size checked above.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Check that an out-parameter is not NULL (before doing any work).
pub(crate) fn check_out<T>(out: *mut T, what: &str) -> Result<(), Failure> {
    if out.is_null() {
        Err(Failure::null(what))
    } else {
        Ok(())
    }
}

/// Write an out-parameter (checked non-NULL earlier by [`check_out`]).
///
/// # Safety
/// `out` is NULL or valid for a write of `T`.
pub(crate) unsafe fn write_out<T>(out: *mut T, value: T) {
    if !out.is_null() {
        // SAFETY: valid for writes per the caller's contract; `write` drops nothing old (the
        // memory belongs to the host and may be uninitialised).
        unsafe { out.write(value) };
    }
}

/// Copy `items` into the caller's array of `capacity` elements and write the count to `out_count`.
/// Too small: `GPTRT_ERROR_BUFFER_TOO_SMALL`, the array untouched, `*out_count` = the count needed.
/// `buffer` may be NULL when `capacity` is 0 (a size query).
///
/// # Safety
/// `buffer` is NULL or valid for `capacity` writes of `T`; `out_count` is NULL or valid.
pub(crate) unsafe fn write_array<T: Copy>(
    items: &[T],
    buffer: *mut T,
    capacity: usize,
    out_count: *mut usize,
    what: &str,
) -> Result<(), Failure> {
    check_out(out_count, "out_count")?;
    if buffer.is_null() && capacity > 0 {
        return Err(Failure::null(what));
    }
    // SAFETY: checked non-NULL.
    unsafe { write_out(out_count, items.len()) };
    if capacity < items.len() {
        return Err(Failure::new(
            GPTRT_ERROR_BUFFER_TOO_SMALL,
            format!(
                "`{what}` holds {capacity} elements; {} are needed (written to *out_count)",
                items.len()
            ),
        ));
    }
    if !items.is_empty() {
        // SAFETY: `buffer` is valid for `capacity >= items.len()` elements and cannot overlap
        // memory we own.
        unsafe { std::ptr::copy_nonoverlapping(items.as_ptr(), buffer, items.len()) };
    }
    Ok(())
}

/// Copy `text` plus a terminating NUL into the caller's buffer of `capacity` bytes and write the
/// size used (text bytes + 1) to `out_size`. Too small: `GPTRT_ERROR_BUFFER_TOO_SMALL`, the buffer
/// untouched, `*out_size` = the size needed. `buffer` may be NULL when `capacity` is 0.
///
/// # Safety
/// `buffer` is NULL or valid for `capacity` byte writes; `out_size` is NULL or valid.
pub(crate) unsafe fn write_text(
    text: &str,
    buffer: *mut c_char,
    capacity: usize,
    out_size: *mut usize,
    what: &str,
) -> Result<(), Failure> {
    check_out(out_size, "out_size")?;
    if buffer.is_null() && capacity > 0 {
        return Err(Failure::null(what));
    }
    let needed = text.len() + 1;
    // SAFETY: checked non-NULL.
    unsafe { write_out(out_size, needed) };
    if capacity < needed {
        return Err(Failure::new(
            GPTRT_ERROR_BUFFER_TOO_SMALL,
            format!(
                "`{what}` holds {capacity} bytes; {needed} are needed, the terminating NUL \
                 included (written to *out_size)"
            ),
        ));
    }
    // SAFETY: `buffer` is valid for `capacity >= needed` bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), buffer.cast::<u8>(), text.len());
        buffer.add(text.len()).write(0);
    }
    Ok(())
}

/// A NUL-terminated static string for C.
pub(crate) fn static_cstr(text: &'static str) -> *const c_char {
    debug_assert!(text.ends_with('\0'));
    text.as_ptr().cast()
}
