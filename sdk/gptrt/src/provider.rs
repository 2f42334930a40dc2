//! Execution providers: which hardware backend runs the graph, chosen from an ordered list where
//! each entry is strict (fail when unusable) or a fallback (try the next one). CPU always works and
//! ends every list. Which provider a session really got is reported, with why others were skipped.

use std::path::Path;

use ort::session::builder::SessionBuilder;

/// An ONNX Runtime execution provider gptrt knows how to request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExecutionProvider {
    /// ONNX Runtime's CPU provider (always available).
    Cpu,
    /// NVIDIA CUDA (cargo feature `cuda`).
    Cuda,
    /// NVIDIA TensorRT (cargo feature `tensorrt`).
    TensorRt,
    /// DirectML on Windows (cargo feature `directml`).
    DirectMl,
}

impl ExecutionProvider {
    /// ONNX Runtime's name for it.
    pub fn name(self) -> &'static str {
        match self {
            ExecutionProvider::Cpu => "CPUExecutionProvider",
            ExecutionProvider::Cuda => "CUDAExecutionProvider",
            ExecutionProvider::TensorRt => "TensorrtExecutionProvider",
            ExecutionProvider::DirectMl => "DmlExecutionProvider",
        }
    }

    /// Parse `cpu`, `cuda`, `tensorrt` or `directml` (or ONNX Runtime's full name).
    pub fn parse(text: &str) -> Option<ExecutionProvider> {
        let all = [
            ExecutionProvider::Cpu,
            ExecutionProvider::Cuda,
            ExecutionProvider::TensorRt,
            ExecutionProvider::DirectMl,
        ];
        let short = |p: ExecutionProvider| match p {
            ExecutionProvider::Cpu => "cpu",
            ExecutionProvider::Cuda => "cuda",
            ExecutionProvider::TensorRt => "tensorrt",
            ExecutionProvider::DirectMl => "directml",
        };
        all.into_iter()
            .find(|&p| text.eq_ignore_ascii_case(short(p)) || text == p.name())
    }

    /// Whether this build of gptrt can request it.
    pub fn compiled_in(self) -> bool {
        match self {
            ExecutionProvider::Cpu => true,
            ExecutionProvider::Cuda => cfg!(feature = "cuda"),
            ExecutionProvider::TensorRt => cfg!(feature = "tensorrt"),
            ExecutionProvider::DirectMl => cfg!(all(feature = "directml", windows)),
        }
    }

    /// The memory ONNX Runtime's tensors for this provider live in (its `OrtMemoryInfo` device).
    pub(crate) fn memory_device(self) -> ort::memory::AllocationDevice<'static> {
        use ort::memory::AllocationDevice;
        match self {
            ExecutionProvider::Cpu => AllocationDevice::CPU,
            ExecutionProvider::Cuda | ExecutionProvider::TensorRt => AllocationDevice::CUDA,
            ExecutionProvider::DirectMl => AllocationDevice::DIRECTML,
        }
    }

    /// The provider library ONNX Runtime loads for it, next to its own library.
    pub fn library_file(self) -> Option<&'static str> {
        match self {
            ExecutionProvider::Cpu => None,
            ExecutionProvider::Cuda => Some("libonnxruntime_providers_cuda.so"),
            ExecutionProvider::TensorRt => Some("libonnxruntime_providers_tensorrt.so"),
            ExecutionProvider::DirectMl => Some("DirectML.dll"),
        }
    }
}

impl std::fmt::Display for ExecutionProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One entry of the provider list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderRequest {
    /// The provider.
    pub provider: ExecutionProvider,
    /// Fail instead of falling back when it cannot be used.
    pub strict: bool,
    /// GPU index for GPU providers.
    pub device_id: i32,
}

impl ProviderRequest {
    /// A fallback request for `provider` on device 0.
    pub fn fallback(provider: ExecutionProvider) -> ProviderRequest {
        ProviderRequest {
            provider,
            strict: false,
            device_id: 0,
        }
    }

    /// A strict request for `provider` on device 0.
    pub fn strict(provider: ExecutionProvider) -> ProviderRequest {
        ProviderRequest {
            provider,
            strict: true,
            device_id: 0,
        }
    }

    /// Parse `NAME[:strict][:DEVICE]`, e.g. `cuda`, `cuda:strict`, `cuda:1`, `tensorrt:strict:0`.
    pub fn parse(text: &str) -> std::result::Result<ProviderRequest, String> {
        let mut parts = text.split(':');
        let name = parts.next().unwrap_or_default();
        let provider = ExecutionProvider::parse(name).ok_or_else(|| {
            format!("unknown execution provider {name:?} (cpu, cuda, tensorrt, directml)")
        })?;
        let mut request = ProviderRequest::fallback(provider);
        for part in parts {
            if part == "strict" {
                request.strict = true;
            } else {
                request.device_id = part.parse().map_err(|_| {
                    format!("{text:?}: expected `strict` or a device number, got {part:?}")
                })?;
            }
        }
        Ok(request)
    }
}

/// Which provider a session got, and why the ones before it were skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderChoice {
    /// The provider registered for the session (nodes it cannot run still fall back to CPU
    /// inside ONNX Runtime).
    pub provider: ExecutionProvider,
    /// The device index the provider runs on (0 for the CPU).
    pub device_id: i32,
    /// Providers tried first and why each could not be used.
    pub skipped: Vec<(ExecutionProvider, String)>,
}

impl ProviderChoice {
    /// Where sessions on this provider keep the KV cache between steps: `host memory` on the CPU,
    /// else the device's own memory (e.g. `Cuda memory of device 0`), bound with ONNX Runtime's
    /// IO binding so a step neither downloads nor uploads the cache.
    pub fn kv_cache_location(&self) -> String {
        match self.provider {
            ExecutionProvider::Cpu => "host memory".to_string(),
            provider => format!(
                "{} memory of device {}",
                provider.memory_device().as_str(),
                self.device_id
            ),
        }
    }
}

/// Try to register one provider; `Err` says why it cannot be used.
pub(crate) fn register(
    builder: &mut SessionBuilder,
    request: &ProviderRequest,
    ort_library: &Path,
) -> std::result::Result<(), String> {
    let provider = request.provider;
    if provider == ExecutionProvider::Cpu {
        return Ok(());
    }
    if !provider.compiled_in() {
        let feature = match provider {
            ExecutionProvider::Cuda => "cuda",
            ExecutionProvider::TensorRt => "tensorrt",
            _ => "directml",
        };
        return Err(
            if provider == ExecutionProvider::DirectMl && !cfg!(windows) {
                "DirectML runs only on Windows".to_string()
            } else {
                format!("this gptrt was built without the `{feature}` feature (cargo build --features {feature})")
            },
        );
    }
    if let Some(file) = provider.library_file() {
        let dir = ort_library.parent().unwrap_or(Path::new("."));
        if !cfg!(windows) && !dir.join(file).is_file() {
            return Err(format!(
                "{file} is missing next to {} (a GPU build of ONNX Runtime 1.31, e.g. PyPI's onnxruntime-gpu, ships it)",
                ort_library.display()
            ));
        }
    }
    register_compiled(builder, request)
}

// Without GPU features every arm returns early, which is the point.
#[allow(unused_variables, unreachable_code)]
fn register_compiled(
    builder: &mut SessionBuilder,
    request: &ProviderRequest,
) -> std::result::Result<(), String> {
    let dispatch: ort::ep::ExecutionProviderDispatch = match request.provider {
        #[cfg(feature = "cuda")]
        ExecutionProvider::Cuda => ort::ep::CUDA::default()
            .with_device_id(request.device_id)
            .build(),
        #[cfg(feature = "tensorrt")]
        ExecutionProvider::TensorRt => ort::ep::TensorRT::default()
            .with_device_id(request.device_id)
            .build(),
        #[cfg(all(feature = "directml", windows))]
        ExecutionProvider::DirectMl => ort::ep::DirectML::default()
            .with_device_id(request.device_id)
            .build(),
        other => return Err(format!("{other} is not compiled in")),
    };
    dispatch
        .error_on_failure()
        .register(builder)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kv_cache_stays_in_the_memory_of_the_device_that_runs() {
        for (provider, device_id, location) in [
            (ExecutionProvider::Cpu, 0, "host memory"),
            (ExecutionProvider::Cuda, 1, "Cuda memory of device 1"),
            (ExecutionProvider::TensorRt, 0, "Cuda memory of device 0"),
            (ExecutionProvider::DirectMl, 2, "DML memory of device 2"),
        ] {
            let choice = ProviderChoice {
                provider,
                device_id,
                skipped: Vec::new(),
            };
            assert_eq!(choice.kv_cache_location(), location, "{provider}");
        }
    }
}
