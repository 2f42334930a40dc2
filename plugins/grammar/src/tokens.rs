//! The model's tokens as llguidance sees them: a token trie from the host's token byte table,
//! built once per table and process (a batch builds one instance per row, a session one per
//! generation, and building the trie and its mask slices costs far more than a mask).

use std::sync::{Arc, Mutex};

use gptrt_plugin_api::Host;
use llguidance::toktrie::{ApproximateTokEnv, TokEnv, TokRxInfo, TokTrie};
use llguidance::ParserFactory;

/// What identifies a table: its size, end token and a hash of its contents (not its address,
/// which a later model could reuse).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    vocab: usize,
    eos: u32,
    hash: u64,
}

static CACHE: Mutex<Option<(Key, Arc<ParserFactory>)>> = Mutex::new(None);

fn fnv(hash: &mut u64, bytes: &[u8]) {
    for &b in bytes {
        *hash = (*hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3);
    }
}

/// The model's end token and vocabulary size from its config.
fn model_facts(host: &Host) -> Result<(u32, usize), String> {
    let text = host
        .model_config_json()
        .map_err(|e| format!("needs the model's config (no model attached?): {e}"))?;
    let config: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("the host's model config: {e}"))?;
    let eos = match &config["eos_token_id"] {
        serde_json::Value::Array(ids) => ids.first().and_then(|v| v.as_u64()),
        other => other.as_u64(),
    }
    .ok_or("the model has no `eos_token_id`: a grammar cannot end its output")?;
    let vocab = config["vocab_size"].as_u64().unwrap_or(0);
    Ok((
        u32::try_from(eos).map_err(|_| "`eos_token_id` out of range")?,
        usize::try_from(vocab).map_err(|_| "`vocab_size` out of range")?,
    ))
}

/// A parser factory over the host model's tokens (shared), and the end token.
pub(crate) fn factory(host: &Host) -> Result<(Arc<ParserFactory>, u32), String> {
    let table = host
        .token_bytes()
        .ok_or("needs the host capability org.gptrt.token_bytes (a model attached, ABI 1.1+)")?;
    let (eos, config_vocab) = model_facts(host)?;
    // The model may have more rows than the tokenizer has tokens: those ids get no bytes.
    let vocab = table.len().max(config_vocab);
    if eos as usize >= vocab {
        return Err(format!(
            "`eos_token_id` {eos} is outside the vocabulary ({vocab})"
        ));
    }
    let mut hash = 0xCBF2_9CE4_8422_2325u64;
    let mut words = Vec::with_capacity(vocab);
    for id in 0..vocab as u32 {
        let mut word = Vec::new();
        if let Some(bytes) = table.token(id) {
            // llguidance's convention: special tokens start with 0xFF, so no text matches them.
            if table.is_special(id) || id == eos {
                word.push(TokTrie::SPECIAL_TOKEN_MARKER);
            }
            word.extend_from_slice(bytes);
        }
        fnv(&mut hash, &(word.len() as u32).to_le_bytes());
        fnv(&mut hash, &word);
        words.push(word);
    }
    let key = Key { vocab, eos, hash };
    let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((cached, factory)) = cache.as_ref() {
        if *cached == key {
            return Ok((factory.clone(), eos));
        }
    }
    let info = TokRxInfo::new(vocab as u32, eos);
    let env: TokEnv = Arc::new(ApproximateTokEnv::new(TokTrie::from(&info, &words)));
    let mut factory =
        ParserFactory::new_simple(&env).map_err(|e| format!("building the token trie: {e}"))?;
    factory.quiet();
    let factory = Arc::new(factory);
    *cache = Some((key, factory.clone()));
    Ok((factory, eos))
}
