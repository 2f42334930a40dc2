//! A model's fingerprint: what a saved session must match to be restored on it.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::model::Model;

/// Three SHA-256 digests that identify a model for saved sessions: its architecture
/// (`config.json`'s shape fields), its graphs' signatures (inputs and outputs, names, types and
/// shapes), and its weights (the graph files' bytes, and every external-data file beside them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    /// `n_layer`, `n_head`, `n_embd`, `n_positions`, `vocab_size`, `bos/eos_token_id`.
    pub config: [u8; 32],
    /// The graphs' inputs and outputs.
    pub graph: [u8; 32],
    /// The graph files and their external weight files.
    pub weights: [u8; 32],
}

impl Fingerprint {
    /// The fingerprint's 96 bytes: config, graph, weights.
    pub fn to_bytes(&self) -> [u8; 96] {
        let mut out = [0u8; 96];
        out[..32].copy_from_slice(&self.config);
        out[32..64].copy_from_slice(&self.graph);
        out[64..].copy_from_slice(&self.weights);
        out
    }

    /// [`Fingerprint::to_bytes`] read back.
    pub fn from_bytes(bytes: &[u8; 96]) -> Fingerprint {
        let part = |at: usize| {
            let mut out = [0u8; 32];
            out.copy_from_slice(&bytes[at..at + 32]);
            out
        };
        Fingerprint {
            config: part(0),
            graph: part(32),
            weights: part(64),
        }
    }

    /// Which parts differ from `other`, in words (`config`, `graph`, `weights`).
    pub fn differences(&self, other: &Fingerprint) -> Vec<&'static str> {
        [
            ("config", self.config != other.config),
            ("graph", self.graph != other.graph),
            ("weights", self.weights != other.weights),
        ]
        .into_iter()
        .filter_map(|(name, differs)| differs.then_some(name))
        .collect()
    }
}

impl std::fmt::Display for Fingerprint {
    /// `config:xxxxxxxx graph:xxxxxxxx weights:xxxxxxxx` (the first 4 bytes of each, in hex).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let short = |digest: &[u8; 32]| {
            digest[..4]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        write!(
            f,
            "config:{} graph:{} weights:{}",
            short(&self.config),
            short(&self.graph),
            short(&self.weights)
        )
    }
}

impl Model {
    /// The model's [`Fingerprint`]. The first call hashes the weight files (the 31 MB demo
    /// model: well under a second in release builds); later calls return the cached value.
    pub fn fingerprint(&self) -> Result<Fingerprint> {
        if let Some(fingerprint) = self.fingerprint.get() {
            return Ok(*fingerprint);
        }
        let fingerprint = self.compute_fingerprint()?;
        Ok(*self.fingerprint.get_or_init(|| fingerprint))
    }

    fn compute_fingerprint(&self) -> Result<Fingerprint> {
        let c = &self.config;
        let config = Sha256::digest(
            format!(
                "gpt2 n_layer={} n_head={} n_embd={} n_positions={} vocab_size={} bos={} eos={}",
                c.n_layer,
                c.n_head,
                c.n_embd,
                c.n_positions,
                c.vocab_size,
                c.bos_token_id,
                c.eos_token_id
            )
            .as_bytes(),
        )
        .into();
        let mut graph = Sha256::new();
        let mut weights = Sha256::new();
        for graph_file in std::iter::once(&self.prompt_graph).chain(self.step_graph.as_ref()) {
            for info in graph_file
                .signature
                .inputs
                .iter()
                .chain(&graph_file.signature.outputs)
            {
                graph.update(format!(
                    "{}:{}:{:?};",
                    info.name, info.element_type, info.shape
                ));
            }
            graph.update(b"|");
            match graph_file.memory_hash {
                Some(hash) => weights.update(hash),
                None => weights.update(hash_file(&graph_file.path)?),
            }
        }
        // External weights sit beside the graph (`*.data`, `*.onnx_data`, `*.onnx.data`).
        if self.prompt_graph.memory_hash.is_none() {
            let mut extra: Vec<_> = std::fs::read_dir(&self.dir)
                .map_err(|source| Error::Io {
                    path: self.dir.clone(),
                    source,
                })?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|path| {
                    path.is_file()
                        && path
                            .file_name()
                            .and_then(|name| name.to_str())
                            .is_some_and(|name| name.ends_with(".data") || name.ends_with("_data"))
                })
                .collect();
            extra.sort();
            for path in extra {
                weights.update(hash_file(&path)?);
            }
        }
        Ok(Fingerprint {
            config,
            graph: graph.finalize().into(),
            weights: weights.finalize().into(),
        })
    }
}

fn hash_file(path: &Path) -> Result<[u8; 32]> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = file.read(&mut buffer).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hasher.finalize().into())
}
