//! One ONNX Runtime library per process: a runtime that asks for another file is refused, naming
//! both, instead of silently getting the one already loaded. (Its own test binary: the first
//! runtime of a process fixes the library.)

use gptrt::{Error, Runtime};

#[test]
fn another_library_path_is_an_error_naming_both_libraries() {
    let first = Runtime::default_runtime().expect("the setup folder's library loads");
    let loaded = first.library_path().to_path_buf();

    // The same file, by the path it was loaded from, is fine.
    Runtime::builder()
        .library_path(&loaded)
        .build()
        .expect("the loaded library, named again");
    // A runtime that names no library reuses the loaded one.
    Runtime::builder().intra_threads(1).build().unwrap();

    let dir = std::env::temp_dir().join(format!("gptrt-second-ort-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let other = dir.join("libonnxruntime.so.1.31.1");
    std::fs::copy(&loaded, &other).unwrap();
    let result = Runtime::builder().library_path(&other).build();
    std::fs::remove_dir_all(&dir).unwrap();
    match result {
        Err(Error::RuntimeLibraryConflict {
            loaded: in_use,
            requested,
        }) => {
            assert_eq!(in_use, loaded);
            assert_eq!(requested, other);
        }
        other => panic!("expected RuntimeLibraryConflict, got {other:?}"),
    }
    let message = Runtime::builder()
        .library_path(dir.join("missing.so"))
        .build()
        .expect_err("a different, missing file")
        .to_string();
    assert!(
        message.contains(&loaded.display().to_string()) && message.contains("missing.so"),
        "{message}"
    );
}
