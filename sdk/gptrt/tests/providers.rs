//! Execution providers: an ordered list, each strict or fallback; the provider a model really got
//! is reported with why earlier ones were skipped. GPU providers cannot run here (CPU-only ONNX
//! Runtime, no GPU): these tests pin the fallback and strict paths, with and without the cargo
//! features (`scripts/test.sh` runs them both ways).

mod common;

use gptrt::{ExecutionProvider, Model, ProviderRequest, Runtime};

fn load_with(providers: Vec<ProviderRequest>) -> gptrt::Result<Model> {
    let runtime = Runtime::builder().providers(providers).build()?;
    Model::load_with(&runtime, common::tiny().join("single"))
}

fn expected_reason(provider: ExecutionProvider) -> &'static str {
    if provider.compiled_in() {
        // A CPU-only ONNX Runtime lacks the provider's library.
        provider.library_file().unwrap()
    } else if provider == ExecutionProvider::DirectMl && !cfg!(windows) {
        "only on Windows"
    } else {
        "built without the"
    }
}

#[test]
fn cpu_is_the_default_and_the_last_resort() {
    let model = load_with(Vec::new()).unwrap();
    assert_eq!(model.provider(), "CPUExecutionProvider");
    assert!(model.provider_choice().skipped.is_empty());
}

#[test]
fn unusable_fallback_providers_are_skipped_with_the_reason() {
    let requests = vec![
        ProviderRequest::fallback(ExecutionProvider::TensorRt),
        ProviderRequest::fallback(ExecutionProvider::Cuda),
        ProviderRequest::fallback(ExecutionProvider::DirectMl),
    ];
    let model = load_with(requests).unwrap();
    assert_eq!(model.provider(), "CPUExecutionProvider");
    let skipped = &model.provider_choice().skipped;
    assert_eq!(skipped.len(), 3);
    for (provider, reason) in skipped {
        assert!(
            reason.contains(expected_reason(*provider)),
            "{provider}: {reason}"
        );
    }
    // Generation still works on the fallback.
    let out = model.generate("Hello world", &common::greedy(3)).unwrap();
    assert_eq!(out.token_ids.len(), 3);
}

#[test]
fn a_strict_provider_that_cannot_run_is_an_error() {
    for provider in [ExecutionProvider::Cuda, ExecutionProvider::TensorRt] {
        let err = load_with(vec![ProviderRequest::strict(provider)])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(provider.name()) && err.contains("strict"),
            "{err}"
        );
        assert!(err.contains(expected_reason(provider)), "{err}");
    }
    // Strict CPU always works.
    let model = load_with(vec![ProviderRequest::strict(ExecutionProvider::Cpu)]).unwrap();
    assert_eq!(model.provider(), "CPUExecutionProvider");
}

#[test]
fn provider_requests_parse() {
    assert_eq!(
        ProviderRequest::parse("cuda").unwrap(),
        ProviderRequest::fallback(ExecutionProvider::Cuda)
    );
    let strict = ProviderRequest::parse("tensorrt:strict:1").unwrap();
    assert_eq!(
        (strict.provider, strict.strict, strict.device_id),
        (ExecutionProvider::TensorRt, true, 1)
    );
    assert!(ProviderRequest::parse("metal")
        .unwrap_err()
        .contains("unknown execution provider"));
    assert!(ProviderRequest::parse("cuda:fast")
        .unwrap_err()
        .contains("fast"));
}
