//! Where a cache tensor lives, and moving its data through the host when an operation needs it.

use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::session::Session;
use ort::value::Tensor;

use crate::error::{Error, Result};
use crate::provider::ProviderChoice;

/// Where a session keeps its KV cache between steps: the memory of the device its provider runs
/// on, so a GPU step neither downloads nor uploads the cache (for the CPU provider, host memory).
/// Only the logits come back to the host.
#[derive(Debug, Clone)]
pub(crate) struct CacheDevice {
    pub(crate) device: AllocationDevice<'static>,
    pub(crate) id: i32,
}

impl CacheDevice {
    pub(crate) fn for_provider(choice: &ProviderChoice) -> CacheDevice {
        CacheDevice {
            device: choice.provider.memory_device(),
            id: choice.device_id,
        }
    }

    /// Where `tensor` lives.
    pub(crate) fn of(tensor: &Tensor<f32>) -> CacheDevice {
        let info = tensor.memory_info();
        CacheDevice {
            device: AllocationDevice::new(info.allocation_device().as_str()),
            id: info.device_id(),
        }
    }

    pub(crate) fn is_host(&self) -> bool {
        self.device == AllocationDevice::CPU
    }

    /// The session's allocator for this device's memory.
    pub(crate) fn allocator(&self, session: &Session) -> ort::Result<Allocator> {
        let info = MemoryInfo::new(
            self.device.clone(),
            self.id,
            AllocatorType::Device,
            MemoryType::Default,
        )?;
        Allocator::new(session, info)
    }

    /// `tensor`, which is in host memory, on this device.
    pub(crate) fn place(&self, tensor: Tensor<f32>) -> ort::Result<Tensor<f32>> {
        if self.is_host() {
            Ok(tensor)
        } else {
            tensor.to(self.device.clone(), self.id)
        }
    }
}

/// Run `f` on a cache tensor's shape and data in host memory: in place, or on a copy when the
/// tensor lives on a device (the cache operations of batching and beam search run on the host).
pub(crate) fn with_host_data<R>(
    tensor: &Tensor<f32>,
    what: &str,
    f: impl FnOnce(&[i64], &[f32]) -> R,
) -> Result<R> {
    if tensor.memory_info().is_cpu_accessible() {
        let (shape, data) = tensor.extract_tensor();
        return Ok(f(shape, data));
    }
    let host = tensor
        .to(AllocationDevice::CPU, 0)
        .map_err(|e| Error::ort(format!("{what} the KV cache (copying it to the host)"), e))?;
    let (shape, data) = host.extract_tensor();
    Ok(f(shape, data))
}

/// A cache tensor holding `data` on `device`.
pub(crate) fn cache_tensor(
    dims: Vec<i64>,
    data: Vec<f32>,
    device: &CacheDevice,
    what: &str,
) -> Result<Tensor<f32>> {
    let err = |e| Error::ort(format!("{what} the KV cache"), e);
    device
        .place(Tensor::from_array((dims, data)).map_err(err)?)
        .map_err(err)
}
