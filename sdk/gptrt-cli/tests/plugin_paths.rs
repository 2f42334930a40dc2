//! A plugin named by a bare file name is the file of that name in the working directory, hashed
//! and loaded as such: a library of the same name on `LD_LIBRARY_PATH` never runs, pinned or not.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// tests/plugins/misbehaving.c (no fault) with its own id and, optionally, a constructor that
/// creates `marker`: the loader running any of the library's code shows as that file.
fn compile(out: &Path, id: &str, marker: Option<&Path>) {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/plugins/misbehaving.c");
    let mut defines = vec![format!("PLUGIN_ID=\"{id}\"")];
    defines.extend(marker.map(|m| format!("MARKER_FILE=\"{}\"", m.display())));
    gptrt_plugin_xtc_c::compile_c_plugin(&source, out, &defines).expect("compiling a fixture");
}

struct Fixture {
    root: PathBuf,
    /// The working directory: holds the pinned `libgptrt-bare.so` (or nothing) and the allowlist.
    cwd: PathBuf,
    /// On `LD_LIBRARY_PATH`: an unpinned `libgptrt-bare.so` that leaves `marker` when loaded.
    search: PathBuf,
    marker: PathBuf,
}

const NAME: &str = "libgptrt-bare.so";

fn fixture(test: &str, pinned_in_cwd: bool) -> Fixture {
    let root = std::env::temp_dir().join(format!("gptrt-bare-{}-{test}", std::process::id()));
    let (cwd, search) = (root.join("cwd"), root.join("search"));
    std::fs::create_dir_all(&cwd).unwrap();
    std::fs::create_dir_all(&search).unwrap();
    let marker = root.join("unpinned-ran");
    compile(&search.join(NAME), "org.gptrt.test.unpinned", Some(&marker));
    let pinned = root.join(NAME);
    compile(&pinned, "org.gptrt.test.pinned", None);
    let hash = sha256(&pinned);
    if pinned_in_cwd {
        std::fs::rename(&pinned, cwd.join(NAME)).unwrap();
    }
    std::fs::write(cwd.join("allowlist.txt"), format!("{hash}  {NAME}\n")).unwrap();
    Fixture {
        root,
        cwd,
        search,
        marker,
    }
}

/// The hash `gptrt plugins inspect` reports for a file given by absolute path (no allowlist).
fn sha256(path: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_gptrt"))
        .args(["plugins", "inspect"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    stdout
        .split_whitespace()
        .skip_while(|w| *w != "sha256")
        .nth(1)
        .expect("a sha256 line")
        .to_string()
}

fn gptrt(f: &Fixture, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gptrt"))
        .args(args)
        .current_dir(&f.cwd)
        .env("LD_LIBRARY_PATH", &f.search)
        .env_remove("GPTRT_PLUGIN_PATH")
        .env_remove("GPTRT_MODEL")
        .output()
        .expect("gptrt runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn model() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../models/fixtures/tiny-random-gpt2/single")
        .display()
        .to_string()
}

#[test]
fn inspect_and_generate_load_the_bare_name_from_the_working_directory() {
    let f = fixture("cwd", true);
    let inspect = gptrt(
        &f,
        &["plugins", "inspect", NAME, "--allowlist", "allowlist.txt"],
    );
    let stdout = text(&inspect.stdout);
    assert!(inspect.status.success(), "{}", text(&inspect.stderr));
    assert!(stdout.contains("org.gptrt.test.pinned"), "{stdout}");
    assert!(
        stdout.contains(&f.cwd.join(NAME).display().to_string()),
        "{stdout}"
    );
    let model = model();
    let generate = gptrt(
        &f,
        &[
            "generate",
            "--model",
            &model,
            "--prompt",
            "Hello",
            "--max-new-tokens",
            "2",
            "--plugin",
            NAME,
            "--plugin-allowlist",
            "allowlist.txt",
            "--sampler",
            "org.gptrt.test.pinned",
        ],
    );
    assert!(generate.status.success(), "{}", text(&generate.stderr));
    assert!(
        !f.marker.exists(),
        "the unpinned library on LD_LIBRARY_PATH ran"
    );
    std::fs::remove_dir_all(&f.root).unwrap();
}

#[test]
fn a_bare_name_missing_from_the_working_directory_is_not_searched_for() {
    let f = fixture("missing", false);
    for args in [
        &["plugins", "inspect", NAME, "--allowlist", "allowlist.txt"][..],
        &["plugins", "inspect", NAME],
    ] {
        let out = gptrt(&f, args);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{args:?} loaded something");
        assert!(
            stderr.contains(&f.cwd.join(NAME).display().to_string()),
            "{stderr}"
        );
        assert!(
            !f.marker.exists(),
            "{args:?}: the library on LD_LIBRARY_PATH ran"
        );
    }
    let _ = &f.search;
    std::fs::remove_dir_all(&f.root).unwrap();
}
