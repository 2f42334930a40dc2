//! Session options: a model loads from bytes in memory, and optimised graphs are cached on disk and
//! reused, with the same results.

mod common;

use common::{greedy, tiny};
use gptrt::{Model, ModelBytes, Runtime};

fn read(path: std::path::PathBuf) -> Vec<u8> {
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn a_model_loads_from_bytes_in_memory() {
    let runtime = Runtime::default_runtime().unwrap();
    for (dir, graph, with_past) in [
        ("single", "model.onnx", None),
        (
            "split",
            "decoder_model.onnx",
            Some("decoder_with_past_model.onnx"),
        ),
    ] {
        let folder = tiny().join(dir);
        let graph = read(folder.join(graph));
        let with_past = with_past.map(|f| read(folder.join(f)));
        let files = ModelBytes {
            config_json: &read(folder.join("config.json")),
            tokenizer_json: &read(folder.join("tokenizer.json")),
            generation_config_json: None,
            graph: &graph,
            with_past_graph: with_past.as_deref(),
        };
        let from_memory = Model::load_from_memory(&runtime, &files).unwrap();
        let from_disk = common::load(dir);
        assert_eq!(from_memory.layout(), from_disk.layout());
        let a = from_memory.generate("Hello world", &greedy(12)).unwrap();
        let b = from_disk.generate("Hello world", &greedy(12)).unwrap();
        assert_eq!(a.token_ids, b.token_ids, "{dir}");
    }
    let broken = ModelBytes {
        config_json: b"{}",
        tokenizer_json: b"",
        generation_config_json: None,
        graph: b"",
        with_past_graph: None,
    };
    let err = Model::load_from_memory(&runtime, &broken)
        .unwrap_err()
        .to_string();
    assert!(err.contains("config.json"), "{err}");
}

#[test]
fn optimized_graphs_are_cached_and_reused() {
    let cache = std::env::temp_dir().join(format!("gptrt-optimized-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    let runtime = Runtime::builder()
        .optimized_cache_dir(&cache)
        .build()
        .unwrap();
    let first = Model::load_with(&runtime, tiny().join("merged")).unwrap();
    let saved: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(saved.len(), 1, "one optimised graph saved: {saved:?}");
    let modified = std::fs::metadata(&saved[0]).unwrap().modified().unwrap();
    let second = Model::load_with(&runtime, tiny().join("merged")).unwrap();
    assert_eq!(
        std::fs::metadata(&saved[0]).unwrap().modified().unwrap(),
        modified,
        "reused, not rewritten"
    );
    let a = first.generate("Once upon a time", &greedy(12)).unwrap();
    let b = second.generate("Once upon a time", &greedy(12)).unwrap();
    assert_eq!(a.token_ids, b.token_ids);
    assert_eq!(a.token_ids, common::reference().cases[1].greedy_ids[..12]);
    std::fs::remove_dir_all(&cache).unwrap();
}
