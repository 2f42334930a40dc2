//! Opening a plugin library so that the bytes checked against the allowlist are the bytes the
//! dynamic loader maps.
//!
//! Names: a relative path, a bare file name included, means that file relative to the working
//! directory, resolved to an absolute path before anything is read. `dlopen` searches its own path
//! (`LD_LIBRARY_PATH`, rpath, the system folders) only for names without a `/`, and the resolved
//! path always has one, so the file hashed is the file named.
//!
//! Bytes, on Linux: the file is opened once and read through that descriptor; the hash is taken
//! of those bytes, which are then copied into a sealed anonymous file (`memfd_create`), and
//! `dlopen` maps that copy through `/proc/self/fd/N`. Renaming another library over the path, or
//! writing into the file, after the hash changes nothing that is loaded. Where an anonymous file
//! is refused (a seccomp filter, an exec policy), `dlopen` maps the opened file's own descriptor
//! instead: a rename still cannot swap it, writing into the pinned file in place (which needs
//! write permission on that file) could. Elsewhere (no `/proc`: macOS, Windows, a Linux without
//! it mounted) the loader opens the path a second time after the hash, so a rename in between
//! can swap the library: there, keep plugin folders writable only by whoever may choose the
//! plugins.
//!
//! A library loaded through `/proc/self/fd/N` does not know its folder: `$ORIGIN` in its rpath
//! does not point next to it, and `dladdr` names the descriptor, not the file.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{plugin_error, Allowlist};
use crate::error::{Error, Result};

/// A library file, hashed, checked and loaded from the very bytes that were hashed.
pub(super) struct Opened {
    /// The absolute path the library was read from.
    pub(super) path: PathBuf,
    /// SHA-256 of the bytes loaded, hex.
    pub(super) sha256: String,
    pub(super) library: libloading::Library,
}

/// Read, hash, check against `allowlist`, then load `path` (see the module docs for the rules).
pub(super) fn open(path: &Path, allowlist: Option<&Allowlist>) -> Result<Opened> {
    let path = std::path::absolute(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let io = |source| Error::Io {
        path: path.clone(),
        source,
    };
    let mut file = File::open(&path).map_err(io)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io)?;
    let sha256: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if let Some(allowlist) = allowlist {
        allowlist.check(&path, &sha256)?;
    }
    #[cfg(test)]
    hook::run();
    let library = load(&path, file, &bytes).map_err(|e| {
        plugin_error(
            path.display().to_string(),
            format!("cannot load the library: {e}"),
        )
    })?;
    Ok(Opened {
        path,
        sha256,
        library,
    })
}

#[cfg(target_os = "linux")]
fn load(path: &Path, file: File, bytes: &[u8]) -> std::result::Result<libloading::Library, String> {
    use std::os::fd::OwnedFd;
    if !Path::new("/proc/self/fd").is_dir() {
        return load_path(path);
    }
    if let Ok(copy) = sealed_copy(path, bytes) {
        if let Ok(library) = load_fd(copy) {
            return Ok(library);
        }
    }
    load_fd(OwnedFd::from(file))
}

#[cfg(not(target_os = "linux"))]
fn load(
    path: &Path,
    _file: File,
    _bytes: &[u8],
) -> std::result::Result<libloading::Library, String> {
    load_path(path)
}

#[cfg_attr(target_os = "linux", allow(dead_code))]
fn load_path(path: &Path) -> std::result::Result<libloading::Library, String> {
    // SAFETY: loading a library runs its initialisers; that is the point of a plugin and the
    // allowlist is how a host restricts which code that may be.
    unsafe { libloading::Library::new(path) }.map_err(|e| e.to_string())
}

/// Load the library behind `fd` and keep `fd` open for ever on success. glibc recognises a library
/// it has loaded by its name as well as by its inode: were the descriptor closed, its number could
/// come back for another plugin, whose `/proc/self/fd/N` would then resolve to this library.
/// Libraries are never unloaded, so neither is the descriptor ever needed back.
#[cfg(target_os = "linux")]
fn load_fd(fd: std::os::fd::OwnedFd) -> std::result::Result<libloading::Library, String> {
    use std::os::fd::{AsRawFd, IntoRawFd};
    let name = format!("/proc/self/fd/{}", fd.as_raw_fd());
    // SAFETY: as in load_path; the descriptor holds exactly the bytes that were hashed.
    let library = unsafe { libloading::Library::new(&name) }.map_err(|e| e.to_string())?;
    let _kept_open = fd.into_raw_fd();
    Ok(library)
}

/// `bytes` in a sealed anonymous file: nobody can change them after this returns.
#[cfg(target_os = "linux")]
fn sealed_copy(path: &Path, bytes: &[u8]) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::io::Write;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // The name shows in /proc/PID/maps and debuggers as `/memfd:gptrt-plugin:libfoo.so`.
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = std::ffi::CString::new(format!("gptrt-plugin:{file_name}"))
        .ok()
        .filter(|n| n.as_bytes().len() < 240)
        .unwrap_or_else(|| c"gptrt-plugin".to_owned());
    // SAFETY: a NUL-terminated name and plain flags; the result is checked.
    let raw =
        unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if raw < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a descriptor memfd_create just returned, owned by nobody else.
    let mut copy = File::from(unsafe { OwnedFd::from_raw_fd(raw) });
    copy.write_all(bytes)?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: fcntl on a descriptor we own; the result is checked.
    if unsafe { libc::fcntl(copy.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(copy.into())
}

/// A test-only step between the hash and the load, where a test swaps the file to prove that
/// what is loaded is what was hashed.
#[cfg(test)]
pub(super) mod hook {
    use std::cell::RefCell;

    thread_local! {
        static BETWEEN_HASH_AND_LOAD: RefCell<Option<Box<dyn FnOnce()>>> = RefCell::new(None);
    }

    /// Run `step` on this thread between the next load's hash and its `dlopen`.
    pub(crate) fn set(step: impl FnOnce() + 'static) {
        BETWEEN_HASH_AND_LOAD.with(|slot| *slot.borrow_mut() = Some(Box::new(step)));
    }

    pub(super) fn run() {
        if let Some(step) = BETWEEN_HASH_AND_LOAD.with(|slot| slot.borrow_mut().take()) {
            step();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::{hook, open};
    use crate::plugin::Allowlist;

    /// tests/plugins/misbehaving.c (no fault) with its own id and, optionally, a constructor that
    /// creates `marker`.
    fn compile(out: &Path, id: &str, marker: Option<&Path>) {
        let source =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/plugins/misbehaving.c");
        let mut defines = vec![format!("PLUGIN_ID=\"{id}\"")];
        defines.extend(marker.map(|m| format!("MARKER_FILE=\"{}\"", m.display())));
        gptrt_plugin_xtc_c::compile_c_plugin(&source, out, &defines).expect("compiling a fixture");
    }

    struct Fixture {
        dir: PathBuf,
        pinned: PathBuf,
        intruder: PathBuf,
        marker: PathBuf,
        allowlist: Allowlist,
    }

    /// A pinned library and an unpinned one whose constructor leaves a marker file.
    fn fixture(name: &str) -> Fixture {
        let dir = std::env::temp_dir().join(format!("gptrt-open-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pinned = dir.join("libpinned.so");
        let intruder = dir.join("libintruder.so");
        let marker = dir.join("intruder-ran");
        compile(&pinned, "org.gptrt.test.pinned", None);
        compile(&intruder, "org.gptrt.test.intruder", Some(&marker));
        let hash = open(&pinned, None).unwrap().sha256;
        let list = dir.join("allowlist.txt");
        std::fs::write(&list, format!("{hash}  libpinned.so\n")).unwrap();
        let allowlist = Allowlist::from_file(&list).unwrap();
        Fixture {
            dir,
            pinned,
            intruder,
            marker,
            allowlist,
        }
    }

    fn loaded_id(library: &libloading::Library) -> String {
        use gptrt_plugin_api::*;
        // SAFETY: test fixtures built from the ABI header.
        unsafe {
            let entry: libloading::Symbol<'_, GptrtPluginEntryFn> =
                library.get(GPTRT_PLUGIN_ENTRY_SYMBOL.as_bytes()).unwrap();
            let entry = &*entry();
            let descriptor = &*(entry.get_plugin.unwrap())(0);
            std::ffi::CStr::from_ptr(descriptor.id)
                .to_string_lossy()
                .into_owned()
        }
    }

    #[test]
    fn a_library_renamed_over_the_path_after_the_hash_is_not_what_loads() {
        let f = fixture("rename");
        let (intruder, pinned) = (f.intruder.clone(), f.pinned.clone());
        hook::set(move || std::fs::rename(&intruder, &pinned).unwrap());
        let opened = open(&f.pinned, Some(&f.allowlist)).unwrap();
        assert_eq!(loaded_id(&opened.library), "org.gptrt.test.pinned");
        assert!(!f.marker.exists(), "the unpinned library's constructor ran");
        // The swap did happen: loading the path now is refused.
        let err = open(&f.pinned, Some(&f.allowlist))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("SHA-256 mismatch"), "{err}");
        assert!(!f.marker.exists());
        std::fs::remove_dir_all(&f.dir).unwrap();
    }

    #[test]
    fn a_library_written_into_the_file_after_the_hash_is_not_what_loads() {
        let f = fixture("rewrite");
        let (intruder, pinned) = (f.intruder.clone(), f.pinned.clone());
        // Same inode, new bytes: only a private copy of what was hashed defeats this one.
        hook::set(move || std::fs::write(&pinned, std::fs::read(&intruder).unwrap()).unwrap());
        let opened = open(&f.pinned, Some(&f.allowlist)).unwrap();
        assert_eq!(loaded_id(&opened.library), "org.gptrt.test.pinned");
        assert!(!f.marker.exists(), "the unpinned library's constructor ran");
        std::fs::remove_dir_all(&f.dir).unwrap();
    }
}
