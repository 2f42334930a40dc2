//! The dialogue over one host session: persona, speaker tags, replies that end at the user tag,
//! and an overflow policy that drops the oldest whole turns and keeps the persona.
//!
//! `gptrt chat` (sdk/gptrt-cli/src/dialogue.rs) follows the same rules, but a plugin cannot link
//! the CLI or the SDK (it sees the model only through the C ABI), so this is its own small copy
//! over the `org.gptrt.sessions` capability; the overflow rule itself is shared
//! ([`TurnWindow`]).

use gptrt_plugin_api::{Host, HostSession, OutputStream, TurnWindow};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// What the config fixes for the life of the instance.
pub(crate) struct Settings {
    pub persona: String,
    pub user_tag: String,
    pub bot_tag: String,
    pub template: String,
    pub max_new_tokens: usize,
    /// The share of the turns' room kept after an overflow ([`TurnWindow::keep`]).
    pub overflow_keep: f64,
    /// Generation options for each turn (`max_new_tokens` included).
    pub generation: Map<String, Value>,
}

/// What a saved state keeps beside the session's tokens: the dialogue's shape.
#[derive(Serialize, Deserialize, Clone, Debug)]
struct Meta {
    persona: String,
    user_tag: String,
    bot_tag: String,
    template: String,
    /// Tokens of the persona (the sequence's first ones).
    persona_tokens: usize,
    /// Where each kept turn starts in the sequence.
    turn_starts: Vec<usize>,
    /// Turns taken so far (dropped ones included).
    turns: usize,
}

/// The task head: one dialogue, kept across runs.
pub struct Dialogue {
    host: Host,
    session: HostSession,
    /// The run's caller, who gets the reply as it is made.
    output: Option<OutputStream>,
    window: usize,
    max_new_tokens: usize,
    overflow_keep: f64,
    generation: Map<String, Value>,
    meta: Meta,
}

impl Dialogue {
    pub(crate) fn new(host: Host, settings: Settings) -> Result<Dialogue, String> {
        let sessions = host.sessions().ok_or(
            "the host offers no sessions (capability org.gptrt.sessions: an ABI 1.2 host with a \
             model)",
        )?;
        if host.token_bytes().is_none() {
            return Err("the host offers no token byte table (org.gptrt.token_bytes)".to_string());
        }
        let mut dialogue = Dialogue {
            session: sessions.create()?,
            output: host.output(),
            window: sessions.context_window(),
            max_new_tokens: settings.max_new_tokens,
            overflow_keep: settings.overflow_keep,
            generation: settings.generation,
            meta: Meta {
                persona: settings.persona,
                user_tag: settings.user_tag,
                bot_tag: settings.bot_tag,
                template: settings.template,
                persona_tokens: 0,
                turn_starts: Vec::new(),
                turns: 0,
            },
            host,
        };
        dialogue.reset()?;
        Ok(dialogue)
    }

    /// Back to the persona alone.
    pub(crate) fn reset(&mut self) -> Result<Value, String> {
        let persona = self.host.tokenize(&self.meta.persona)?;
        // A turn needs at least its tags, a word and one reply token.
        if persona.len() + 8 > self.window {
            return Err(format!(
                "config field \"persona\" is {} tokens; the model's context window is {} tokens, \
                 which leaves no room for a turn (shorten the persona)",
                persona.len(),
                self.window
            ));
        }
        self.session.set_tokens(&persona)?;
        self.meta.persona_tokens = persona.len();
        self.meta.turn_starts.clear();
        self.meta.turns = 0;
        // The persona runs now, so the first turn (and its time to first token) is only its own;
        // the dialogue above already matches the session if this fails.
        self.session.prefill()?;
        Ok(json!({ "context_tokens": persona.len() }))
    }

    /// The session's state with the dialogue's shape.
    pub(crate) fn save(&self, fp16_kv: bool) -> Result<Vec<u8>, String> {
        let data = serde_json::to_vec(&self.meta).map_err(|e| e.to_string())?;
        self.session.save(fp16_kv, &data)
    }

    /// Continue a saved dialogue; on error the dialogue is unchanged.
    pub(crate) fn restore(&mut self, bytes: &[u8]) -> Result<Value, String> {
        let sessions = self
            .host
            .sessions()
            .ok_or("the host no longer offers sessions")?;
        // Check the state in a scratch session first, so a bad one leaves this dialogue alone.
        let probe = sessions.create()?;
        let data = probe.restore(bytes)?;
        let meta: Meta = serde_json::from_slice(&data).map_err(|e| {
            format!("not a saved org.gptrt.dialogue state (its dialogue data: {e})")
        })?;
        let len = probe.context_len()?;
        if meta.persona_tokens > len || meta.turn_starts.iter().any(|&at| at > len) {
            return Err("the saved dialogue's turn boundaries do not fit its tokens".to_string());
        }
        self.session = probe;
        self.meta = meta;
        Ok(json!({ "context_tokens": len, "turns": self.meta.turns }))
    }

    /// The text a user turn appends.
    fn turn_text(&self, line: &str, first: bool) -> String {
        let (before, after) = self
            .meta
            .template
            .split_once("{text}")
            .unwrap_or((&self.meta.template, ""));
        let tags = |part: &str| {
            part.replace("{user_tag}", &self.meta.user_tag)
                .replace("{bot_tag}", &self.meta.bot_tag)
        };
        let separator = if first { "" } else { "\n" };
        format!("{separator}{}{line}{}", tags(before), tags(after))
    }

    /// Take one user turn and generate the reply.
    pub(crate) fn say(&mut self, line: &str) -> Result<Value, String> {
        let session = &self.session;
        let start = session.context_len()?;
        let text = self.turn_text(line, start == 0);
        let new = self.host.tokenize(&text)?;
        if self.meta.persona_tokens + new.len() >= self.window {
            return Err(format!(
                "the turn is {} tokens and the persona {}: together longer than the model's \
                 context window ({} tokens); say it in fewer words",
                new.len(),
                self.meta.persona_tokens,
                self.window
            ));
        }
        session.append_text(&text)?;
        let mut starts = self.meta.turn_starts.clone();
        starts.push(start);
        let turn_window = TurnWindow {
            window: self.window,
            persona_tokens: self.meta.persona_tokens,
            reply_budget: self.max_new_tokens.min(self.window / 2).max(1),
            keep: self.overflow_keep,
        };
        let mut tokens = session.tokens()?;
        let dropped = turn_window.drop_oldest_turns(&mut tokens, &mut starts);
        if dropped > 0 {
            session.set_tokens(&tokens)?;
        }
        let config = self.turn_config();
        // The reply goes to the run's caller as it is made (capability org.gptrt.output); the
        // caller may stop it early.
        let output = self.output;
        let mut to_caller = |text: &str| output.is_none_or(|stream| stream.write_text(text));
        let report = match session.generate_turn(Some(&config), &mut to_caller) {
            Ok(report) => report,
            Err(error) => {
                // Back to before the turn: the dialogue stays as it was (less dropped turns).
                let kept = starts.pop().unwrap_or(start);
                let _ = session.rewind(kept);
                self.meta.turn_starts = starts;
                return Err(error);
            }
        };
        let report: Value = serde_json::from_str(&report)
            .map_err(|e| format!("the host's turn report is not JSON: {e}"))?;
        let reply = report["text"].as_str().unwrap_or_default().to_string();
        let ids: Vec<u32> = report["token_ids"]
            .as_array()
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| id.as_u64().and_then(|id| u32::try_from(id).ok()))
                    .collect()
            })
            .unwrap_or_default();
        // Keep the reply's text in the sequence and drop what follows it (the stop string's
        // tokens, an end token): the next turn then appends its tags to the reply itself.
        let (kept, rest) = self.reply_prefix(&ids, &reply);
        session.rewind(tokens.len() + kept)?;
        if !rest.is_empty() {
            session.append_text(&rest)?;
        }
        self.meta.turn_starts = starts;
        self.meta.turns += 1;
        Ok(json!({
            "reply": reply.trim_end(),
            "stop_reason": report["stop_reason"],
            "dropped_turns": dropped,
            "context_tokens": session.context_len()?,
            "prompt_tokens_processed": report["prompt_tokens_processed"],
            "turn": self.meta.turns,
        }))
    }

    /// The turn's generation options: the config's, with the user tag as a stop string.
    fn turn_config(&self) -> String {
        let mut config = self.generation.clone();
        let mut stops = match config.remove("stop_strings") {
            Some(Value::Array(stops)) => stops,
            Some(Value::String(stop)) => vec![Value::String(stop)],
            _ => Vec::new(),
        };
        stops.push(Value::String(self.meta.user_tag.clone()));
        config.insert("stop_strings".to_string(), Value::Array(stops));
        Value::Object(config).to_string()
    }

    /// How many of the generated `ids` spell a prefix of `reply`, and the rest of `reply` after
    /// it (text the kept tokens do not cover, usually none). Byte-wise, from the token table.
    fn reply_prefix(&self, ids: &[u32], reply: &str) -> (usize, String) {
        let mut best = (0, reply.to_string());
        let Some(table) = self.host.token_bytes() else {
            return best;
        };
        let mut bytes = Vec::new();
        for (count, &id) in ids.iter().enumerate() {
            let Some(token) = table.token(id) else {
                break;
            };
            bytes.extend_from_slice(token);
            if bytes.len() > reply.len() || !reply.as_bytes().starts_with(&bytes) {
                break;
            }
            if let Some(rest) = reply.get(bytes.len()..) {
                best = (count + 1, rest.to_string());
            }
        }
        best
    }
}
