//! An ONNX graph gptrt runs: its signature and layout ([`signature`]), what its bytes say without
//! loading them (external weights, batch-dependent ops), and one forward step over it.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use ort::session::Session;

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::provider::ProviderChoice;
use crate::runtime::{GraphSource, Runtime};

pub(crate) mod attention;
pub(crate) mod bytes;
mod hidden;
pub mod signature;
mod step;

pub(crate) use hidden::missing_hidden_states;
use signature::Signature;
pub(crate) use step::StepInput;

/// One ONNX graph and its checked signature.
pub(crate) struct Graph {
    pub(crate) path: PathBuf,
    session: Mutex<Session>,
    pub(crate) signature: Signature,
    pub(crate) provider: ProviderChoice,
    /// SHA-256 of the graph's bytes when it was loaded from memory (a file is hashed when a
    /// fingerprint is first asked for).
    pub(crate) memory_hash: Option<[u8; 32]>,
}

impl Graph {
    pub(crate) fn open(
        runtime: &Runtime,
        source: &GraphSource<'_>,
        config: &ModelConfig,
    ) -> Result<Graph> {
        let path = source.path();
        if let GraphSource::Memory { bytes, .. } = source {
            if let Some((initializer, file)) = bytes::external_initializer(bytes) {
                return Err(Error::model_files(
                    path,
                    format!(
                        "initializer {initializer} keeps its data in the separate file {file}, which a \
                         graph loaded from bytes cannot reach: load the model's folder with \
                         Model::load, or export the graph with its weights inside \
                         (models/export_fused.py --single-file)"
                    ),
                ));
            }
        }
        let (session, provider) = runtime.open_session(source)?;
        let mut signature = Signature::read(&session, path, config)?;
        signature.batch_dependent_ops = match source {
            GraphSource::File(path) => bytes::batch_dependent_ops_in_file(path),
            GraphSource::Memory { bytes, .. } => bytes::batch_dependent_ops(bytes),
        };
        let memory_hash = match source {
            GraphSource::File(_) => None,
            GraphSource::Memory { bytes, .. } => {
                use sha2::Digest;
                Some(sha2::Sha256::digest(bytes).into())
            }
        };
        Ok(Graph {
            path: path.to_path_buf(),
            session: Mutex::new(session),
            signature,
            provider,
            memory_hash,
        })
    }

    fn session(&self) -> MutexGuard<'_, Session> {
        // A panic while running a graph leaves the session itself intact.
        self.session
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
