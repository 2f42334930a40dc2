//! A turn-based dialogue over one session for `gptrt chat`: a persona, speaker tags, replies that
//! end at the next user tag, and an overflow policy that drops the oldest whole turns and keeps
//! the persona.

use std::time::Instant;

use gptrt::{GenerationConfig, SavedKv, Session, StopStrings};
use gptrt_plugin_api::{TurnWindow, DEFAULT_OVERFLOW_KEEP};
use serde::{Deserialize, Serialize};

/// What `gptrt chat` keeps beside the session's tokens in a saved state.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub(crate) struct DialogueMeta {
    pub persona: String,
    pub user_tag: String,
    pub bot_tag: String,
    /// Tokens of the persona (the sequence's first ones).
    pub persona_tokens: usize,
    /// Where each kept turn starts in the sequence.
    pub turn_starts: Vec<usize>,
    /// Turns taken so far (dropped ones included).
    pub turns: usize,
}

/// One turn's outcome.
pub(crate) struct TurnReport {
    pub turn: usize,
    pub reply: String,
    pub stop_reason: String,
    pub prompt_tokens_processed: usize,
    pub context_tokens: usize,
    pub time_to_first_token_ms: f64,
    pub dropped_turns: usize,
}

pub(crate) struct Dialogue {
    pub session: Session,
    pub meta: DialogueMeta,
    /// The share of the turns' room kept after an overflow ([`TurnWindow::keep`]).
    pub overflow_keep: f64,
}

impl Dialogue {
    /// A dialogue starting from `persona` (run through the model now, so the first turn runs
    /// only itself). A persona that leaves no room for a turn is an error.
    pub(crate) fn new(
        session: Session,
        persona: &str,
        user_tag: &str,
        bot_tag: &str,
    ) -> Result<Dialogue, String> {
        let mut dialogue = Dialogue {
            session,
            meta: DialogueMeta {
                persona: persona.to_string(),
                user_tag: user_tag.to_string(),
                bot_tag: bot_tag.to_string(),
                persona_tokens: 0,
                turn_starts: Vec::new(),
                turns: 0,
            },
            overflow_keep: DEFAULT_OVERFLOW_KEEP,
        };
        dialogue.reset()?;
        Ok(dialogue)
    }

    fn window(&self) -> usize {
        self.session.model().config().n_positions
    }

    /// Back to the persona alone.
    pub(crate) fn reset(&mut self) -> Result<(), String> {
        let window = self.window();
        let persona = self
            .session
            .model()
            .tokenizer()
            .encode(&self.meta.persona)
            .map_err(|e| e.to_string())?;
        // A turn needs at least its tags, a word and one reply token.
        if persona.len() + 8 > window {
            return Err(format!(
                "the persona is {} tokens; the model's context window is {window} tokens, which \
                 leaves no room for a turn (shorten the persona)",
                persona.len()
            ));
        }
        self.session
            .set_tokens(&persona)
            .map_err(|e| e.to_string())?;
        self.session.prefill().map_err(|e| e.to_string())?;
        self.meta.persona_tokens = persona.len();
        self.meta.turn_starts.clear();
        self.meta.turns = 0;
        Ok(())
    }

    /// The saved state (with the dialogue's own data).
    pub(crate) fn save(&self, kv: SavedKv) -> Result<Vec<u8>, String> {
        let data = serde_json::to_vec(&self.meta).map_err(|e| e.to_string())?;
        self.session
            .save_with_data(kv, &data)
            .map_err(|e| e.to_string())
    }

    /// Continue from a saved state; on error the dialogue is unchanged.
    pub(crate) fn load(&mut self, bytes: &[u8]) -> Result<(), String> {
        let probe = Session::new(self.session.model().clone()).map_err(|e| e.to_string())?;
        let data = probe.restore_with_data(bytes).map_err(|e| e.to_string())?;
        let meta: DialogueMeta = serde_json::from_slice(&data)
            .map_err(|e| format!("not a saved gptrt chat (its dialogue data: {e})"))?;
        let len = probe.context_len().map_err(|e| e.to_string())?;
        if meta.persona_tokens > len || meta.turn_starts.iter().any(|&at| at > len) {
            return Err("the saved chat's turn boundaries do not fit its tokens".to_string());
        }
        self.session.restore(bytes).map_err(|e| e.to_string())?;
        self.meta = meta;
        Ok(())
    }

    /// Take one user turn and generate the reply, calling `on_text` with each piece of it.
    pub(crate) fn turn(
        &mut self,
        line: &str,
        config: &GenerationConfig,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<TurnReport, String> {
        let session = &self.session;
        let tokenizer = session.model().tokenizer();
        let window = self.window();
        let start = session.context_len().map_err(|e| e.to_string())?;
        let separator = if start > 0 { "\n" } else { "" };
        let text = format!(
            "{separator}{} {line}\n{}",
            self.meta.user_tag, self.meta.bot_tag
        );
        let new = tokenizer.encode(&text).map_err(|e| e.to_string())?;
        if self.meta.persona_tokens + new.len() >= window {
            return Err(format!(
                "the turn is {} tokens and the persona {}: together longer than the model's \
                 context window ({window} tokens); say it in fewer words",
                new.len(),
                self.meta.persona_tokens
            ));
        }
        session.append_tokens(&new).map_err(|e| e.to_string())?;
        let mut starts = self.meta.turn_starts.clone();
        starts.push(start);
        let turn_window = TurnWindow {
            window,
            persona_tokens: self.meta.persona_tokens,
            reply_budget: config.max_new_tokens.unwrap_or(20).min(window / 2).max(1),
            keep: self.overflow_keep,
        };
        let mut tokens = session.tokens().map_err(|e| e.to_string())?;
        let dropped = turn_window.drop_oldest_turns(&mut tokens, &mut starts);
        if dropped > 0 {
            session.set_tokens(&tokens).map_err(|e| e.to_string())?;
        }
        let mut config = config.clone();
        let mut stops = match config.stop_strings.take() {
            Some(stops) => stops.to_vec(),
            None => Vec::new(),
        };
        stops.push(self.meta.user_tag.clone());
        config.stop_strings = Some(StopStrings::Many(stops));
        let began = Instant::now();
        let mut first: Option<f64> = None;
        let outcome = session.generate_turn(&config, &mut |event| {
            first.get_or_insert_with(|| began.elapsed().as_secs_f64() * 1000.0);
            on_text(event.text);
            true
        });
        if let Err(error) = outcome {
            // Back to before the turn: the dialogue stays as it was (less any turns dropped).
            let kept = starts.last().copied().unwrap_or(start);
            let _ = session.rewind(kept);
            starts.pop();
            self.meta.turn_starts = starts;
            return Err(error.to_string());
        }
        let result = session.result().map_err(|e| e.to_string())?;
        // Keep the reply's text in the sequence and drop what follows it (the stop string's
        // tokens, an end token): the next turn then appends its tags to the reply itself.
        let reply_start = tokens.len();
        let kept = reply_prefix(tokenizer, &result.token_ids, &result.text);
        session
            .rewind(reply_start + kept.0)
            .map_err(|e| e.to_string())?;
        if !kept.1.is_empty() {
            session.append_text(&kept.1).map_err(|e| e.to_string())?;
        }
        self.meta.turn_starts = starts;
        self.meta.turns += 1;
        Ok(TurnReport {
            turn: self.meta.turns,
            reply: result.text.clone(),
            stop_reason: result.stop_reason.to_string(),
            prompt_tokens_processed: result.stats.prompt_tokens,
            context_tokens: session.context_len().map_err(|e| e.to_string())?,
            time_to_first_token_ms: first.unwrap_or(0.0),
            dropped_turns: dropped,
        })
    }
}

/// How many of the generated `ids` decode to a prefix of `reply`, and the rest of `reply` after
/// that prefix (text the kept tokens do not cover, usually none).
fn reply_prefix(tokenizer: &gptrt::Tokenizer, ids: &[u32], reply: &str) -> (usize, String) {
    let mut best = (0, reply.to_string());
    for count in 1..=ids.len() {
        let Ok(text) = tokenizer.decode(&ids[..count], false) else {
            break;
        };
        if text.len() > reply.len() {
            break;
        }
        if reply.starts_with(&text) {
            best = (count, reply[text.len()..].to_string());
        }
    }
    best
}
