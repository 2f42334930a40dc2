//! Turning a config into a parser, on a thread of its own with a large stack.
//!
//! llguidance compiles a Lark rule's references and a JSON Schema's `$ref`s by recursion, one
//! nested call (a few KB of stack) per link of a chain: a config of a few tens of KB whose rules
//! each name the next (`a: b`, `b: c`, ...) overflowed the calling thread's stack, and a stack
//! overflow kills the whole host process (hand-written hostile configs run through the fuzz target
//! `grammar_config` found it; a host's worker thread has 2 MB). The config's size is bounded, so the deepest chain is too, and the
//! compile runs where that chain fits. The stack is only reserved address space: a config uses
//! the pages its chain reaches.

use std::sync::Arc;

use llguidance::{ParserFactory, TokenParser};

/// The most bytes of config the plugin compiles (a large JSON Schema is a few hundred KB).
pub const MAX_CONFIG_BYTES: usize = 512 << 10;

/// The compile thread's stack. Each link of a chain takes at least 8 config bytes (`ab: ac` and
/// a newline) and, measured, under 4 KB of stack: 512 KB of config is at most 64K links, 256 MB.
pub const COMPILE_STACK_BYTES: usize = 512 << 20;

/// Compile `config_json` (see [`crate::grammar_of`]) with `factory`; what is wrong with it as an
/// error.
pub(crate) fn parser(
    factory: Arc<ParserFactory>,
    config_json: &str,
    kind: &'static str,
) -> Result<TokenParser, String> {
    if config_json.len() > MAX_CONFIG_BYTES {
        return Err(format!(
            "the config is {} bytes, more than the {MAX_CONFIG_BYTES} this plugin compiles",
            config_json.len()
        ));
    }
    let config = config_json.to_string();
    std::thread::Builder::new()
        .name("gptrt-grammar-compile".to_string())
        .stack_size(COMPILE_STACK_BYTES)
        .spawn(move || {
            let grammar = crate::grammar_of(&config)?;
            factory
                .create_parser(grammar)
                .map_err(|e| format!("the {kind} is invalid: {e}"))
        })
        .map_err(|e| format!("cannot start the grammar compiler's thread: {e}"))?
        .join()
        .map_err(|_| format!("compiling the {kind} failed (a panic inside llguidance)"))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use llguidance::toktrie::{ApproximateTokEnv, TokEnv, TokRxInfo, TokTrie};

    /// A parser factory over 256 one-byte tokens and an end token.
    fn factory() -> Arc<ParserFactory> {
        let mut words: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        words.push(vec![TokTrie::SPECIAL_TOKEN_MARKER, b'e']);
        let info = TokRxInfo::new(words.len() as u32, 256);
        let env: TokEnv = Arc::new(ApproximateTokEnv::new(TokTrie::from(&info, &words)));
        let mut factory = ParserFactory::new_simple(&env).unwrap();
        factory.quiet();
        Arc::new(factory)
    }

    /// `links` Lark rules, each naming the next, in as few bytes as the format allows.
    fn lark_chain(links: usize) -> String {
        let name = |i: usize| format!("r{i:x}");
        let mut lark = String::from("start: r0\n");
        for i in 0..links {
            lark.push_str(&format!("{}: {}\n", name(i), name(i + 1)));
        }
        lark.push_str(&format!("{}: \"x\"\n", name(links)));
        serde_json::json!({ "grammar": lark }).to_string()
    }

    /// Found by the fuzz target: chains of rule references or `$ref`s deeper than the caller's
    /// stack allows used to overflow it (a crash of the host, here of the test thread's 2 MB).
    #[test]
    fn a_deep_chain_of_rules_or_refs_compiles_without_overflowing_the_stack() {
        let factory = factory();
        let chain = parser(factory.clone(), &lark_chain(5000), "grammar").unwrap();
        // The masks run on the caller's thread: a deep grammar must not overflow it there either.
        let mut matcher = llguidance::Matcher::new(Ok(chain));
        let mask = matcher.compute_mask().unwrap();
        assert!(mask.is_allowed(u32::from(b'x')) && mask.num_set() == 1);
        matcher.consume_token(u32::from(b'x')).unwrap();
        assert!(matcher.is_accepting().unwrap());
        let mut defs = serde_json::Map::new();
        for i in 0..5000 {
            defs.insert(
                format!("a{i}"),
                serde_json::json!({ "$ref": format!("#/$defs/a{}", i + 1) }),
            );
        }
        defs.insert("a5000".into(), serde_json::json!({ "type": "integer" }));
        let schema = serde_json::json!({
            "json_schema": { "$defs": defs, "$ref": "#/$defs/a0" }
        });
        parser(factory, &schema.to_string(), "JSON schema").unwrap();
    }

    /// The deepest chain the size bound lets through still fits the compile thread's stack.
    #[test]
    fn the_longest_chain_within_the_size_bound_fits_the_stack() {
        let mut links = 1;
        while lark_chain(links * 2).len() <= MAX_CONFIG_BYTES {
            links *= 2;
        }
        let (mut low, mut high) = (links, links * 2);
        while high - low > 1 {
            let mid = (low + high) / 2;
            if lark_chain(mid).len() <= MAX_CONFIG_BYTES {
                low = mid;
            } else {
                high = mid;
            }
        }
        let config = lark_chain(low);
        assert!(config.len() <= MAX_CONFIG_BYTES);
        let _ = parser(factory(), &config, "grammar");
        let Err(error) = parser(factory(), &lark_chain(high), "grammar") else {
            panic!("a config over the bound compiled");
        };
        assert!(error.contains("bytes, more than"), "{error}");
    }
}
