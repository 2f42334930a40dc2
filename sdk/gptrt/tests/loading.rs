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

    // a graph whose weights are in a separate file has nothing to read them from in memory
    let folder = tiny().join("fused");
    let graph = read(folder.join("model.onnx"));
    let external = ModelBytes {
        config_json: &read(folder.join("config.json")),
        tokenizer_json: &read(folder.join("tokenizer.json")),
        generation_config_json: None,
        graph: &graph,
        with_past_graph: None,
    };
    let err = Model::load_from_memory(&runtime, &external)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("model.onnx.data") && err.contains("Model::load"),
        "{err}"
    );
}

#[test]
fn optimized_graphs_are_cached_and_reused() {
    // merged: weights inside the graph file; fused: weights in model.onnx.data beside it
    for layout in ["merged", "fused"] {
        let cache =
            std::env::temp_dir().join(format!("gptrt-optimized-{layout}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&cache);
        let runtime = Runtime::builder()
            .optimized_cache_dir(&cache)
            .build()
            .unwrap();
        let first = Model::load_with(&runtime, tiny().join(layout)).unwrap();
        let mut saved: Vec<_> = std::fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        saved.sort();
        assert_eq!(
            saved.len(),
            2,
            "{layout}: one optimised graph and its weights saved: {saved:?}"
        );
        let graph = &saved[0];
        assert!(graph.to_string_lossy().ends_with(".optimized.onnx"));
        assert_eq!(
            saved[1].file_name().unwrap().to_string_lossy(),
            format!("{}.data", graph.file_name().unwrap().to_string_lossy()),
            "{layout}: the weights sit beside the cached graph"
        );
        let modified = std::fs::metadata(graph).unwrap().modified().unwrap();
        let second = Model::load_with(&runtime, tiny().join(layout)).unwrap();
        assert_eq!(
            std::fs::metadata(graph).unwrap().modified().unwrap(),
            modified,
            "{layout}: reused, not rewritten"
        );
        let a = first.generate("Once upon a time", &greedy(12)).unwrap();
        let b = second.generate("Once upon a time", &greedy(12)).unwrap();
        assert_eq!(a.token_ids, b.token_ids, "{layout}");
        assert_eq!(
            a.token_ids,
            common::reference().cases[1].greedy_ids[..12],
            "{layout}"
        );
        std::fs::remove_dir_all(&cache).unwrap();
    }
}
