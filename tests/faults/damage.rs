//! Damaged model folders made from the committed tiny fixture (`tiny-random-gpt2/single`), shared
//! by the fault-injection tests of the command (`sdk/gptrt-cli/tests/faults.rs`) and of the C API
//! (`sdk/gptrt-capi/tests/faults.rs`, through `tests/c/fault_injection.c`). Nothing but std: the
//! graph is damaged by editing its protobuf bytes in place (a varint for one of the same length),
//! so no Python or ONNX tooling is needed.
//!
//! Each case says what loading it must give: an error whose text holds every needle, an
//! acceptance (documented in the README's fault-injection notes), or either (a bit flip may land in
//! a weight). Never a panic, an abort or a hang.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What loading a damaged folder must do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Expect {
    /// A clean error whose message contains every needle (case-sensitive).
    Refused(&'static [&'static str]),
    /// Loads; a generation from it ends in tokens or a clean error.
    Accepted,
    /// A clean error or an acceptance, depending on where the damage fell.
    Either,
}

/// One damaged folder.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: &'static str,
    pub dir: PathBuf,
    pub expect: Expect,
}

pub fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/fixtures/tiny-random-gpt2/single")
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

// ---- protobuf, just enough to find a field's bytes ------------------------------------------

fn varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// `(field number, wire type, start, end)` of each top-level field of the message in
/// `bytes[start..end]`; for a varint the range is the varint's own bytes.
fn fields(bytes: &[u8], start: usize, end: usize) -> Vec<(u64, u64, usize, usize)> {
    let mut found = Vec::new();
    let mut at = start;
    while at < end {
        let Some(key) = varint(bytes, &mut at) else {
            break;
        };
        let (number, wire) = (key >> 3, key & 7);
        let from = at;
        match wire {
            0 => {
                if varint(bytes, &mut at).is_none() {
                    break;
                }
            }
            1 => at += 8,
            5 => at += 4,
            2 => {
                let Some(len) = varint(bytes, &mut at) else {
                    break;
                };
                let from = at;
                at += len as usize;
                found.push((number, wire, from, at));
                continue;
            }
            _ => break,
        }
        found.push((number, wire, from, at));
    }
    found
}

fn sub(bytes: &[u8], (start, end): (usize, usize), number: u64) -> Vec<(usize, usize)> {
    fields(bytes, start, end)
        .into_iter()
        .filter(|f| f.0 == number)
        .map(|f| (f.2, f.3))
        .collect()
}

fn graph(model: &[u8]) -> (usize, usize) {
    sub(model, (0, model.len()), 7)[0]
}

/// The `ValueInfoProto` of graph input (field 11) or output (12) `name`.
fn value_info(model: &[u8], field: u64, name: &str) -> (usize, usize) {
    sub(model, graph(model), field)
        .into_iter()
        .find(|&r| sub(model, r, 1).first().map(|&(s, e)| &model[s..e]) == Some(name.as_bytes()))
        .unwrap_or_else(|| panic!("no graph value {name}"))
}

/// Set a one-byte varint in place (the encoding keeps its length).
fn set_varint(model: &mut [u8], (start, end): (usize, usize), value: u8) {
    assert!(end == start + 1 && value < 0x80, "one-byte varint");
    model[start] = value;
}

/// `elem_type` of a graph value: ValueInfo.type(2).tensor_type(1).elem_type(1).
fn set_elem_type(model: &mut [u8], field: u64, name: &str, elem_type: u8) {
    let info = value_info(model, field, name);
    let tensor = sub(model, sub(model, info, 2)[0], 1)[0];
    let at = fields(model, tensor.0, tensor.1)
        .into_iter()
        .find(|f| f.0 == 1)
        .expect("elem_type");
    set_varint(model, (at.2, at.3), elem_type);
}

/// Dimension `index` of a graph value (a number, not a name): shape(2).dim(1).dim_value(1).
fn set_dim(model: &mut [u8], field: u64, name: &str, index: usize, value: u64) {
    let info = value_info(model, field, name);
    let tensor = sub(model, sub(model, info, 2)[0], 1)[0];
    let dim = sub(model, sub(model, tensor, 2)[0], 1)[index];
    let at = fields(model, dim.0, dim.1)
        .into_iter()
        .find(|f| f.0 == 1 && f.1 == 0)
        .expect("a numeric dimension");
    let mut encoded = Vec::new();
    let mut v = value;
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            encoded.push(byte);
            break;
        }
        encoded.push(byte | 0x80);
    }
    assert_eq!(encoded.len(), at.3 - at.2, "same varint length");
    model[at.2..at.3].copy_from_slice(&encoded);
}

/// The raw bytes of initializer `name`: initializer(5).raw_data(9).
fn raw_data(model: &[u8], name: &str) -> (usize, usize) {
    let tensor = sub(model, graph(model), 5)
        .into_iter()
        .find(|&r| sub(model, r, 8).first().map(|&(s, e)| &model[s..e]) == Some(name.as_bytes()))
        .unwrap_or_else(|| panic!("no initializer {name}"));
    sub(model, tensor, 9)[0]
}

// ---- making the folders -----------------------------------------------------------------------

struct Maker {
    root: PathBuf,
    graph: Vec<u8>,
    cases: Vec<Case>,
}

impl Maker {
    /// A folder of links to the fixture's files, less `drop`; the case then replaces some.
    fn folder(&mut self, name: &'static str, drop: &[&str], expect: Expect) -> PathBuf {
        let dir = self.root.join(name);
        fs::create_dir_all(&dir).unwrap();
        for file in [
            "config.json",
            "generation_config.json",
            "tokenizer.json",
            "model.onnx",
        ] {
            if !drop.contains(&file) {
                let target = fixture().join(file).canonicalize().unwrap();
                std::os::unix::fs::symlink(target, dir.join(file)).unwrap();
            }
        }
        self.cases.push(Case {
            name,
            dir: dir.clone(),
            expect,
        });
        dir
    }

    fn with_file(&mut self, name: &'static str, file: &str, bytes: &[u8], expect: Expect) {
        let dir = self.folder(name, &[file], expect);
        fs::write(dir.join(file), bytes).unwrap();
    }

    fn with_config(&mut self, name: &'static str, edit: &str, expect: Expect) {
        let text = fs::read_to_string(fixture().join("config.json")).unwrap();
        let (key, value) = edit.split_once('=').unwrap();
        let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
        json[key] = serde_json::from_str(value).unwrap_or(serde_json::Value::String(value.into()));
        self.with_file(name, "config.json", json.to_string().as_bytes(), expect);
    }

    fn with_graph(&mut self, name: &'static str, edit: impl FnOnce(&mut Vec<u8>), expect: Expect) {
        let mut graph = self.graph.clone();
        edit(&mut graph);
        self.with_file(name, "model.onnx", &graph, expect);
    }
}

fn mkfifo(path: &Path) {
    let made = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(made.success(), "mkfifo {}", path.display());
}

/// Make every damaged folder under `root` (emptied first).
pub fn make_all(root: &Path) -> Vec<Case> {
    use Expect::*;
    remove(root);
    fs::create_dir_all(root).unwrap();
    let graph = fs::read(fixture().join("model.onnx")).unwrap();
    let tokenizer = fs::read(fixture().join("tokenizer.json")).unwrap();
    let mut m = Maker {
        root: root.to_path_buf(),
        graph: graph.clone(),
        cases: Vec::new(),
    };

    // Missing files.
    m.folder(
        "missing-config",
        &["config.json"],
        Refused(&["config.json"]),
    );
    m.folder(
        "missing-tokenizer",
        &["tokenizer.json"],
        Refused(&["tokenizer"]),
    );
    m.folder("missing-graph", &["model.onnx"], Refused(&["ONNX graph"]));
    m.folder(
        "missing-generation-config",
        &["generation_config.json"],
        Accepted,
    );
    m.folder(
        "empty-folder",
        &[
            "config.json",
            "generation_config.json",
            "tokenizer.json",
            "model.onnx",
        ],
        Refused(&["ONNX graph"]),
    );

    // config.json: not JSON, wrong types, absurd numbers, numbers that disagree with the graph.
    m.with_file(
        "config-empty",
        "config.json",
        b"",
        Refused(&["config.json"]),
    );
    m.with_file(
        "config-truncated",
        "config.json",
        b"{\"n_layer\": 2, \"n_he",
        Refused(&["config.json"]),
    );
    m.with_file(
        "config-not-utf8",
        "config.json",
        b"{\"n_layer\": \xff\xfe}",
        Refused(&["config.json"]),
    );
    m.with_config(
        "config-layers-1e12",
        "n_layer=1000000000000",
        Refused(&["n_layer", "1024"]),
    );
    m.with_config(
        "config-layers-2pow63",
        "n_layer=9223372036854775808",
        Refused(&["n_layer"]),
    );
    m.with_config(
        "config-layers-negative",
        "n_layer=-2",
        Refused(&["config.json", "-2"]),
    );
    m.with_config("config-layers-zero", "n_layer=0", Refused(&["n_layer"]));
    m.with_config(
        "config-layers-string",
        "n_layer=\"two\"",
        Refused(&["config.json"]),
    );
    m.with_config(
        "config-layers-3",
        "n_layer=3",
        Refused(&["past_key_values.2"]),
    );
    m.with_config(
        "config-heads-not-dividing",
        "n_head=5",
        Refused(&["n_head"]),
    );
    m.with_config(
        "config-heads-8",
        "n_head=8",
        Refused(&["past_key_values.0.key"]),
    );
    m.with_config("config-embd-1e9", "n_embd=1000000000", Refused(&["n_embd"]));
    m.with_config(
        "config-positions-2pow62",
        "n_positions=4611686018427387904",
        Refused(&["n_positions"]),
    );
    m.with_config(
        "config-vocab-small",
        "vocab_size=100",
        Refused(&["vocab_size"]),
    );
    m.with_config(
        "config-vocab-2pow40",
        "vocab_size=1099511627776",
        Refused(&["vocab_size"]),
    );
    m.with_config(
        "config-eos-outside",
        "eos_token_id=4000000000",
        Refused(&["eos_token_id"]),
    );
    m.with_config(
        "config-float-layers",
        "n_layer=2.5",
        Refused(&["config.json"]),
    );

    // generation_config.json.
    m.with_file(
        "genconfig-garbage",
        "generation_config.json",
        b"\x00\x01{{",
        Refused(&["generation_config.json"]),
    );
    m.with_file(
        "genconfig-temperature-negative",
        "generation_config.json",
        b"{\"temperature\": -1}",
        Refused(&["temperature"]),
    );
    m.with_file(
        "genconfig-beams-1e9",
        "generation_config.json",
        b"{\"num_beams\": 1000000000}",
        Refused(&["num_beams"]),
    );
    m.with_file(
        "genconfig-top-p-2",
        "generation_config.json",
        b"{\"top_p\": 2}",
        Refused(&["top_p"]),
    );
    m.with_file(
        "genconfig-bias-1e39",
        "generation_config.json",
        b"{\"sequence_bias\": [[[5], 1e39]]}",
        Refused(&["generation_config.json", "out of range"]),
    );
    m.with_file(
        "genconfig-unknown-field",
        "generation_config.json",
        b"{\"no_such_option\": 1}",
        Accepted,
    );

    // tokenizer.json.
    m.with_file(
        "tokenizer-empty",
        "tokenizer.json",
        b"",
        Refused(&["tokenizer.json"]),
    );
    m.with_file(
        "tokenizer-truncated",
        "tokenizer.json",
        &tokenizer[..tokenizer.len() / 2],
        Refused(&["tokenizer.json"]),
    );
    m.with_file(
        "tokenizer-empty-object",
        "tokenizer.json",
        b"{}",
        Refused(&["tokenizer.json"]),
    );
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let deep_decoder = String::from_utf8_lossy(&tokenizer).replacen(
        "\"decoder\":",
        &format!("\"decoder\":{deep},\"x\":"),
        1,
    );
    m.with_file(
        "tokenizer-deep-decoder",
        "tokenizer.json",
        deep_decoder.as_bytes(),
        Refused(&["tokenizer.json"]),
    );

    // The graph: truncations, garbage, bit flips.
    m.with_file("graph-empty", "model.onnx", b"", Refused(&["model.onnx"]));
    m.with_file(
        "graph-100-bytes",
        "model.onnx",
        &graph[..100],
        Refused(&["model.onnx"]),
    );
    m.with_file(
        "graph-half",
        "model.onnx",
        &graph[..graph.len() / 2],
        Refused(&["model.onnx"]),
    );
    m.with_file(
        "graph-all-but-1",
        "model.onnx",
        &graph[..graph.len() - 1],
        Refused(&["model.onnx"]),
    );
    m.with_file(
        "graph-text",
        "model.onnx",
        b"this is not a protobuf at all\n",
        Refused(&["model.onnx"]),
    );
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut random = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let noise: Vec<u8> = (0..4096).map(|_| random() as u8).collect();
    m.with_file(
        "graph-random-bytes",
        "model.onnx",
        &noise,
        Refused(&["model.onnx"]),
    );
    for (name, at) in [
        ("graph-flip-header", 3usize),
        ("graph-flip-graph-start", 40),
        ("graph-flip-middle", graph.len() / 2),
        ("graph-flip-end", graph.len() - 20),
    ] {
        let mut flipped = graph.clone();
        flipped[at] ^= 0x10;
        m.with_file(name, "model.onnx", &flipped, Either);
    }
    let mut flipped = graph.clone();
    for _ in 0..64 {
        let at = (random() as usize) % flipped.len();
        flipped[at] ^= 1 << (random() % 8);
    }
    m.with_file("graph-flip-64-random", "model.onnx", &flipped, Either);

    // Wrong dtypes and shapes, by editing the graph's declared inputs and outputs. ONNX Runtime's
    // own type and shape inference refuses most of them first, naming the graph and the node;
    // gptrt's signature checks name the tensor for what it lets through.
    m.with_graph(
        "graph-input-ids-int32",
        |g| set_elem_type(g, 11, "input_ids", 6),
        Refused(&["input_ids"]),
    );
    m.with_graph(
        "graph-input-ids-float",
        |g| set_elem_type(g, 11, "input_ids", 1),
        Refused(&["model.onnx"]),
    );
    m.with_graph(
        "graph-past-float16",
        |g| set_elem_type(g, 11, "past_key_values.0.key", 10),
        Refused(&["model.onnx"]),
    );
    m.with_graph(
        "graph-logits-double",
        |g| set_elem_type(g, 12, "logits", 11),
        Refused(&["logits"]),
    );
    m.with_graph(
        "graph-past-5-heads",
        |g| set_dim(g, 11, "past_key_values.1.value", 1, 5),
        Refused(&["model.onnx"]),
    );
    m.with_graph(
        "graph-past-head-dim-9",
        |g| set_dim(g, 11, "past_key_values.0.key", 3, 9),
        Refused(&["model.onnx"]),
    );
    // Accepted: ONNX Runtime reports the output shape its inference computes (50257), not the
    // declared one; gptrt checks that against config.json at load and every step's actual logits.
    m.with_graph(
        "graph-logits-vocab-50256",
        |g| set_dim(g, 12, "logits", 2, 50256),
        Accepted,
    );
    m.with_file(
        "graph-not-gpt2",
        "model.onnx",
        &fs::read(fixture().join("../../not-gpt2.onnx")).unwrap(),
        Refused(&["unexpected input `x`"]),
    );
    // NaN weights load (gptrt does not scan weights); every logit is then NaN.
    m.with_graph(
        "graph-nan-positions",
        |g| {
            let (start, end) = raw_data(g, "transformer.wpe.weight");
            for word in g[start..end].chunks_exact_mut(4) {
                word.copy_from_slice(&f32::NAN.to_le_bytes());
            }
        },
        Accepted,
    );

    // Files that are not regular files, and ones that cannot be read.
    let dir = m.folder("graph-fifo", &["model.onnx"], Refused(&["regular file"]));
    mkfifo(&dir.join("model.onnx"));
    let dir = m.folder(
        "graph-directory",
        &["model.onnx"],
        Refused(&["regular file"]),
    );
    fs::create_dir(dir.join("model.onnx")).unwrap();
    let dir = m.folder(
        "graph-symlink-loop",
        &["model.onnx"],
        Refused(&["model.onnx"]),
    );
    std::os::unix::fs::symlink("model.onnx", dir.join("model.onnx")).unwrap();
    let dir = m.folder(
        "graph-dangling-symlink",
        &["model.onnx"],
        Refused(&["model.onnx"]),
    );
    std::os::unix::fs::symlink("nowhere.onnx", dir.join("model.onnx")).unwrap();
    let dir = m.folder(
        "config-fifo",
        &["config.json"],
        Refused(&["config.json", "not a regular file"]),
    );
    mkfifo(&dir.join("config.json"));
    let dir = m.folder(
        "config-directory",
        &["config.json"],
        Refused(&["config.json", "not a regular file"]),
    );
    fs::create_dir(dir.join("config.json")).unwrap();
    let dir = m.folder(
        "tokenizer-fifo",
        &["tokenizer.json"],
        Refused(&["tokenizer.json", "not a regular file"]),
    );
    mkfifo(&dir.join("tokenizer.json"));
    let dir = m.folder(
        "tokenizer-dev-zero",
        &["tokenizer.json"],
        Refused(&["tokenizer.json"]),
    );
    std::os::unix::fs::symlink("/dev/zero", dir.join("tokenizer.json")).unwrap();
    let dir = m.folder(
        "genconfig-fifo",
        &["generation_config.json"],
        Refused(&["generation_config.json"]),
    );
    mkfifo(&dir.join("generation_config.json"));
    let dir = m.folder(
        "genconfig-dev-zero",
        &["generation_config.json"],
        Refused(&["generation_config.json"]),
    );
    std::os::unix::fs::symlink("/dev/zero", dir.join("generation_config.json")).unwrap();
    // Root reads any file whatever its mode: these two are made only for other users.
    if !is_root() {
        for (name, file, needles) in [
            ("config-unreadable", "config.json", &["config.json"]),
            ("graph-unreadable", "model.onnx", &["model.onnx"]),
        ] {
            let dir = m.folder(name, &[file], Refused(needles));
            fs::copy(fixture().join(file), dir.join(file)).unwrap();
            fs::set_permissions(dir.join(file), fs::Permissions::from_mode(0o000)).unwrap();
        }
    }
    m.cases
}

/// Remove what `make_all` made (unreadable files and all).
pub fn remove(root: &Path) {
    if root.exists() {
        let _ = Command::new("chmod")
            .args(["-R", "u+rwX"])
            .arg(root)
            .status();
        let _ = fs::remove_dir_all(root);
    }
}
