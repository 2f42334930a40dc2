//! The plugin loader's checks on what a library's `gptrt_plugin_entry` returns, fed arbitrary
//! entries, descriptors and vtables (any sizes, ABI versions, kinds, NULL or non-UTF-8 strings,
//! missing slots): an accepted library or an error, never a panic; what is accepted has every
//! required slot and every plugin the entry announced.
#![no_main]
use std::cell::RefCell;
use std::ffi::{c_char, c_void, CString};
use std::path::Path;

use gptrt_plugin_api::*;
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

/// Never called: the loader only checks that slots are set.
extern "C" fn slot() {}

thread_local! {
    static DESCRIPTORS: RefCell<Vec<GptrtPluginDescriptor>> = const { RefCell::new(Vec::new()) };
}

/// Index past the descriptors made: NULL, which the loader must refuse.
extern "C" fn get_plugin(index: usize) -> *const GptrtPluginDescriptor {
    DESCRIPTORS.with(|d| {
        d.borrow()
            .get(index)
            .map_or(std::ptr::null(), |d| d as *const _)
    })
}

fn size(u: &mut Unstructured<'_>, real: usize) -> Result<usize> {
    Ok(match u.int_in_range(0..=4u8)? {
        0 => real,
        1 => real - 8,
        2 => real + 8,
        3 => 0,
        _ => u.arbitrary()?,
    })
}

fn abi(u: &mut Unstructured<'_>) -> Result<GptrtAbiVersion> {
    let major = if u.ratio(7, 8)? {
        GPTRT_PLUGIN_ABI_MAJOR
    } else {
        u.arbitrary()?
    };
    Ok(GptrtAbiVersion {
        major,
        minor: u.arbitrary()?,
    })
}

/// NULL, a UTF-8 string, or bytes that are not UTF-8.
fn text(u: &mut Unstructured<'_>, keep: &mut Vec<CString>) -> Result<*const c_char> {
    let choice = u.int_in_range(0..=5u8)?;
    if choice == 0 {
        return Ok(std::ptr::null());
    }
    let mut bytes: Vec<u8> = if choice == 1 {
        vec![0xff, 0xfe, b'x']
    } else {
        u.arbitrary::<String>()?.into_bytes()
    };
    bytes.retain(|&b| b != 0);
    keep.push(CString::new(bytes).unwrap());
    Ok(keep.last().unwrap().as_ptr())
}

/// A vtable big enough for either kind (its words are its size then slots set or NULL).
fn vtable(u: &mut Unstructured<'_>, keep: &mut Vec<Box<[usize; 16]>>) -> Result<*const c_void> {
    if u.ratio(1, 8)? {
        return Ok(std::ptr::null());
    }
    let mut words = Box::new([0usize; 16]);
    words[0] = size(
        u,
        std::mem::size_of::<GptrtSamplerVtable>().max(std::mem::size_of::<GptrtTaskHeadVtable>()),
    )?;
    for word in &mut words[1..8] {
        if u.ratio(7, 8)? {
            *word = slot as *const () as usize;
        }
    }
    keep.push(words);
    Ok(keep.last().unwrap().as_ptr().cast())
}

fn check(u: &mut Unstructured<'_>) -> Result<()> {
    let (mut strings, mut vtables) = (Vec::new(), Vec::new());
    let mut descriptors = Vec::new();
    for _ in 0..u.int_in_range(0..=4u8)? {
        descriptors.push(GptrtPluginDescriptor {
            struct_size: size(u, std::mem::size_of::<GptrtPluginDescriptor>())?,
            abi: abi(u)?,
            id: text(u, &mut strings)?,
            name: text(u, &mut strings)?,
            version: text(u, &mut strings)?,
            description: text(u, &mut strings)?,
            kind: if u.ratio(7, 8)? {
                u.int_in_range(1..=2)?
            } else {
                u.arbitrary()?
            },
            vtable: vtable(u, &mut vtables)?,
        });
    }
    let made = descriptors.len();
    DESCRIPTORS.with(|d| *d.borrow_mut() = descriptors);
    let entry = GptrtPluginEntry {
        struct_size: size(u, std::mem::size_of::<GptrtPluginEntry>())?,
        abi: abi(u)?,
        plugin_count: if u.ratio(7, 8)? { made } else { u.arbitrary()? },
        get_plugin: if u.ratio(15, 16)? {
            Some(get_plugin)
        } else {
            None
        },
    };
    let entry_ptr = if u.ratio(31, 32)? {
        &entry as *const _
    } else {
        std::ptr::null()
    };
    // SAFETY: every pointer above is NULL or backed by a large enough, live allocation.
    if let Ok(library) =
        unsafe { gptrt::fuzzing::check_plugin_entry(Path::new("fuzz.so"), entry_ptr) }
    {
        assert_eq!(library.plugins.len(), entry.plugin_count);
        assert!(entry.plugin_count <= made);
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = check(&mut Unstructured::new(data));
});
