//! GPT-2's byte-level BPE tokenizer and UTF-8-safe streaming detokenization.

use std::path::Path;

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::AddedToken;

use crate::error::{regular_file_present, Error, Result};

/// GPT-2's end-of-text token, also used to start an empty prompt.
pub const ENDOFTEXT: &str = "<|endoftext|>";

/// A GPT-2 byte-level BPE tokenizer.
///
/// Loads `tokenizer.json`, or `vocab.json` + `merges.txt` (GPT-2's original files, also shipped as
/// `encoder.json` + `vocab.bpe`). Decoding goes through a per-token byte table, so streaming and
/// whole-text decoding agree byte for byte.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    /// Raw bytes of every token id, concatenated; `token_offsets[id]..token_offsets[id + 1]`.
    token_bytes: Vec<u8>,
    token_offsets: Vec<usize>,
    special: Vec<bool>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size())
            .finish()
    }
}

impl Tokenizer {
    /// Load from a model folder: `tokenizer.json`, else `vocab.json` + `merges.txt`.
    pub fn from_dir(dir: &Path) -> Result<Tokenizer> {
        let json = dir.join("tokenizer.json");
        if regular_file_present(&json)? {
            return Tokenizer::from_file(&json);
        }
        let vocab = dir.join("vocab.json");
        let merges = dir.join("merges.txt");
        if regular_file_present(&vocab)? && regular_file_present(&merges)? {
            return Tokenizer::from_vocab_and_merges(&vocab, &merges);
        }
        Err(Error::ModelFiles {
            path: dir.to_path_buf(),
            message: "no tokenizer: expected tokenizer.json, or vocab.json + merges.txt \
                      (models/make_tokenizer.py writes them)"
                .to_string(),
        })
    }

    /// Load a `tokenizer.json`.
    pub fn from_file(path: &Path) -> Result<Tokenizer> {
        let json = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Tokenizer::from_json(&json, path)
    }

    /// Load a `tokenizer.json` from bytes.
    pub fn from_bytes(json: &[u8]) -> Result<Tokenizer> {
        Tokenizer::from_json(json, Path::new("<memory>/tokenizer.json"))
    }

    /// Parse `tokenizer.json` (`origin` names it in errors). The `tokenizers` crate panics on some
    /// malformed files (a `decoder` nested past serde_json's depth limit, or with a syntax error
    /// inside it): the JSON's depth and syntax are checked first, and a panic that still escapes
    /// becomes an error naming the file.
    fn from_json(json: &[u8], origin: &Path) -> Result<Tokenizer> {
        let error = |message: String| Error::Tokenizer(format!("{}: {message}", origin.display()));
        let depth = json_nesting_depth(json);
        if depth > MAX_JSON_DEPTH {
            return Err(error(format!(
                "JSON nested {depth} levels deep; a tokenizer needs a few, gptrt accepts up to \
                 {MAX_JSON_DEPTH}"
            )));
        }
        // The crate parses its `decoder` with `expect`: any parse error inside it (syntax, bytes
        // that are not UTF-8, a lone surrogate escape, a number out of range) panics, which aborts
        // a host built with `panic = "abort"` and prints through any host's hook. A full parse
        // here meets every such error first (skipping values would not check their strings).
        let value = serde_json::from_slice::<serde_json::Value>(json)
            .map_err(|e| error(format!("not valid JSON: {e}")))?;
        check_bpe_merges(&value).map_err(error)?;
        let parsed = std::panic::catch_unwind(|| tokenizers::Tokenizer::from_bytes(json)).map_err(
            |panic| {
                let reason = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("no message");
                error(format!(
                    "malformed tokenizer (the tokenizers crate failed: {reason})"
                ))
            },
        )?;
        let inner = parsed.map_err(|e| error(e.to_string()))?;
        Tokenizer::from_tokenizer(inner, origin)
    }

    /// Build GPT-2's tokenizer from its original vocabulary and merges files.
    pub fn from_vocab_and_merges(vocab: &Path, merges: &Path) -> Result<Tokenizer> {
        let (Some(vocab_str), Some(merges_str)) = (vocab.to_str(), merges.to_str()) else {
            return Err(Error::Tokenizer(format!(
                "{}: path is not valid UTF-8",
                vocab.display()
            )));
        };
        let bpe = BPE::from_file(vocab_str, merges_str).build().map_err(|e| {
            Error::Tokenizer(format!("{} / {}: {e}", vocab.display(), merges.display()))
        })?;
        let mut inner = tokenizers::Tokenizer::new(bpe);
        inner.with_pre_tokenizer(Some(ByteLevel::default().add_prefix_space(false)));
        inner.with_decoder(Some(ByteLevelDecoder::default()));
        inner.add_special_tokens(&[AddedToken::from(ENDOFTEXT, true)]);
        Tokenizer::from_tokenizer(inner, vocab)
    }

    fn from_tokenizer(inner: tokenizers::Tokenizer, origin: &Path) -> Result<Tokenizer> {
        let unicode_to_byte = byte_level_inverse();
        let vocab_size = inner.get_vocab_size(true);
        let mut token_bytes = Vec::with_capacity(vocab_size * 6);
        let mut token_offsets = Vec::with_capacity(vocab_size + 1);
        let mut special = vec![false; vocab_size];
        let added = inner.get_added_tokens_decoder();
        for id in 0..vocab_size as u32 {
            token_offsets.push(token_bytes.len());
            if let Some(token) = added.get(&id) {
                special[id as usize] = token.special;
                token_bytes.extend_from_slice(token.content.as_bytes());
                continue;
            }
            let Some(piece) = inner.id_to_token(id) else {
                return Err(Error::Tokenizer(format!(
                    "{}: token ids are not contiguous (no token for id {id})",
                    origin.display()
                )));
            };
            for ch in piece.chars() {
                match unicode_to_byte.get(ch as usize).copied().flatten() {
                    Some(byte) => token_bytes.push(byte),
                    None => {
                        return Err(Error::Tokenizer(format!(
                            "{}: token {id} ({piece:?}) is not byte-level BPE; gptrt needs GPT-2's tokenizer",
                            origin.display()
                        )))
                    }
                }
            }
        }
        token_offsets.push(token_bytes.len());
        Ok(Tokenizer {
            inner,
            token_bytes,
            token_offsets,
            special,
        })
    }

    /// Number of token ids, special tokens included.
    pub fn vocab_size(&self) -> usize {
        self.special.len()
    }

    /// Encode text to ids. `<|endoftext|>` in the text becomes its special id, as in GPT-2.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .inner
            .encode(text, false)
            .map_err(|e| Error::Tokenizer(format!("encoding failed: {e}")))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The raw bytes of one token (special tokens give their text).
    pub fn token_bytes(&self, id: u32) -> Result<&[u8]> {
        let id = id as usize;
        if id >= self.vocab_size() {
            return Err(Error::InvalidToken {
                id: id as u32,
                vocab_size: self.vocab_size(),
            });
        }
        Ok(&self.token_bytes[self.token_offsets[id]..self.token_offsets[id + 1]])
    }

    /// The byte table behind [`Tokenizer::token_bytes`]: `vocab_size + 1` offsets into the bytes of
    /// every token back to back, and each token's special flag.
    pub(crate) fn byte_table(&self) -> (&[usize], &[u8], &[bool]) {
        (&self.token_offsets, &self.token_bytes, &self.special)
    }

    /// Whether the id is a special token (such as `<|endoftext|>`).
    pub fn is_special(&self, id: u32) -> bool {
        self.special.get(id as usize).copied().unwrap_or(false)
    }

    /// Decode ids to text. Invalid UTF-8 becomes U+FFFD, as in Hugging Face.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        let mut bytes = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            if skip_special_tokens && self.is_special(id) {
                continue;
            }
            bytes.extend_from_slice(self.token_bytes(id)?);
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The underlying `tokenizers` tokenizer.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }
}

/// Deeper JSON than this makes the `tokenizers` crate panic (serde_json's limit is 128, and the
/// crate unwraps that error inside its `decoder` parser); real tokenizer files nest 4-5 levels.
const MAX_JSON_DEPTH: usize = 64;

/// The deepest nesting of arrays and objects in `json`, brackets inside strings skipped: one pass
/// with no allocation, so the check costs nothing next to parsing the file.
fn json_nesting_depth(json: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &byte in json {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// The `tokenizers` crate cuts `continuing_subword_prefix` off the second part of every BPE merge
/// without checking that part is that long (a panic at load): refuse such a merge first, naming it.
fn check_bpe_merges(json: &serde_json::Value) -> std::result::Result<(), String> {
    let Some(model) = json.get("model") else {
        return Ok(());
    };
    let prefix = match model
        .get("continuing_subword_prefix")
        .and_then(serde_json::Value::as_str)
    {
        Some(prefix) if !prefix.is_empty() => prefix.len(),
        _ => return Ok(()),
    };
    let Some(merges) = model.get("merges").and_then(serde_json::Value::as_array) else {
        return Ok(());
    };
    for (index, merge) in merges.iter().enumerate() {
        let second = match merge {
            serde_json::Value::String(pair) => pair.split_once(' ').map(|(_, second)| second),
            serde_json::Value::Array(parts) => parts.get(1).and_then(serde_json::Value::as_str),
            _ => None,
        };
        if let Some(second) = second {
            if !second.is_char_boundary(prefix) {
                return Err(format!(
                    "BPE merge #{index}: its second part {second:?} is shorter than \
                     continuing_subword_prefix ({prefix} bytes)"
                ));
            }
        }
    }
    Ok(())
}

/// GPT-2's `bytes_to_unicode` table, inverted: for each char code below 324, the byte it stands for.
fn byte_level_inverse() -> Vec<Option<u8>> {
    let mut inverse = vec![None; 324];
    let printable = |b: u8| (33..=126).contains(&b) || (161..=172).contains(&b) || b >= 174;
    let mut next_unprintable = 256usize;
    for byte in 0..=255u8 {
        if printable(byte) {
            inverse[byte as usize] = Some(byte);
        } else {
            inverse[next_unprintable] = Some(byte);
            next_unprintable += 1;
        }
    }
    inverse
}

/// Incremental detokenizer: feed token ids one at a time, get text that never splits a UTF-8
/// character. The concatenation of everything it returns equals [`Tokenizer::decode`] of all ids
/// with special tokens skipped.
#[derive(Debug, Default, Clone)]
pub struct StreamDecoder {
    pending: Vec<u8>,
}

impl StreamDecoder {
    /// A decoder with nothing pending.
    pub fn new() -> StreamDecoder {
        StreamDecoder::default()
    }

    /// Add one token; returns the text that became complete (possibly empty).
    pub fn push(&mut self, tokenizer: &Tokenizer, id: u32) -> Result<String> {
        let mut text = String::new();
        self.push_into(tokenizer, id, &mut text)?;
        Ok(text)
    }

    /// Add one token and append the text that became complete to `text` (no allocation when
    /// `text` has room).
    pub fn push_into(&mut self, tokenizer: &Tokenizer, id: u32, text: &mut String) -> Result<()> {
        if tokenizer.is_special(id) {
            return Ok(());
        }
        self.pending.extend_from_slice(tokenizer.token_bytes(id)?);
        let mut consumed = 0;
        for chunk in self.pending.utf8_chunks() {
            text.push_str(chunk.valid());
            consumed += chunk.valid().len();
            let invalid = chunk.invalid();
            if invalid.is_empty() {
                continue;
            }
            let at_end = consumed + invalid.len() == self.pending.len();
            // An invalid tail may still be the start of a character the next token completes.
            if at_end
                && std::str::from_utf8(invalid)
                    .err()
                    .and_then(|e| e.error_len())
                    .is_none()
            {
                break;
            }
            text.push(char::REPLACEMENT_CHARACTER);
            consumed += invalid.len();
        }
        self.pending.drain(..consumed);
        Ok(())
    }

    /// Text for bytes still pending at the end (an incomplete character becomes U+FFFD).
    pub fn finish(&mut self) -> String {
        let text = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        text
    }
}
