//! The overflow rule of turn-based dialogues (`gptrt chat`, `plugins/dialogue`): when the next
//! turn and its reply no longer fit the context window, the oldest whole turns go and the persona
//! stays.
//!
//! GPT-2's positions are learned and absolute: the turns kept after a drop sit at new positions,
//! so their cache must be computed again (the persona's, a prefix, is kept). Dropping only as much
//! as the next turn needs would make every later turn overflow again and re-run nearly the whole
//! window; dropping down to a low-water mark pays for one re-run of at most `keep` of the room,
//! after which turns again run only their own tokens until the window is full once more.

/// The share of the turns' room kept after an overflow when the caller does not choose one.
pub const DEFAULT_OVERFLOW_KEEP: f64 = 0.5;

/// Where a dialogue's kept turns are, and how much of the window survives an overflow.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TurnWindow {
    /// The model's context window in tokens.
    pub window: usize,
    /// Tokens of the persona, the sequence's first ones (never dropped).
    pub persona_tokens: usize,
    /// Tokens reserved for the reply.
    pub reply_budget: usize,
    /// After an overflow, the kept turns fill at most this share of the room the window leaves
    /// them (window - persona - reply budget); 1.0 drops only as many turns as the next one
    /// needs.
    pub keep: f64,
}

impl TurnWindow {
    /// Checks `keep` (a share in (0, 1]) and names the field when it is not one.
    pub fn check_keep(keep: f64, field: &str) -> Result<f64, String> {
        if keep.is_finite() && keep > 0.0 && keep <= 1.0 {
            Ok(keep)
        } else {
            Err(format!(
                "{field} is {keep}: it is the share of the turns' room kept after the context \
                 window overflows, greater than 0 and at most 1"
            ))
        }
    }

    /// Drop the oldest whole turns from `tokens` when the newest one (the last start in
    /// `starts`, already appended) and the reply budget do not fit the window. `starts` holds
    /// each kept turn's first position and is updated. Returns how many turns were dropped.
    pub fn drop_oldest_turns(&self, tokens: &mut Vec<u32>, starts: &mut Vec<usize>) -> usize {
        if tokens.len() + self.reply_budget <= self.window {
            return 0;
        }
        let room = self
            .window
            .saturating_sub(self.persona_tokens + self.reply_budget);
        // Truncation toward zero: the low-water mark never exceeds the share asked for.
        let low_water = self.persona_tokens + (room as f64 * self.keep) as usize;
        let mut dropped = 0;
        while starts.len() > 1
            && (tokens.len() + self.reply_budget > self.window || tokens.len() > low_water)
        {
            let (first, next) = (starts[0], starts[1]);
            tokens.drain(first..next);
            starts.remove(0);
            for start in starts.iter_mut() {
                *start -= next - first;
            }
            dropped += 1;
        }
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A persona of 10 tokens and `turns` turns of 10 tokens each.
    fn dialogue(turns: usize) -> (Vec<u32>, Vec<usize>) {
        let tokens = (0..10 + 10 * turns as u32).collect();
        let starts = (0..turns).map(|turn| 10 + 10 * turn).collect();
        (tokens, starts)
    }

    fn window(keep: f64) -> TurnWindow {
        TurnWindow {
            window: 100,
            persona_tokens: 10,
            reply_budget: 10,
            keep,
        }
    }

    #[test]
    fn nothing_drops_while_the_turn_and_its_reply_fit() {
        let (mut tokens, mut starts) = dialogue(8);
        assert_eq!(window(0.5).drop_oldest_turns(&mut tokens, &mut starts), 0);
        assert_eq!(tokens.len(), 90);
        assert_eq!(starts.len(), 8);
    }

    #[test]
    fn an_overflow_drops_down_to_the_low_water_mark_keeping_the_persona() {
        let (mut tokens, mut starts) = dialogue(9);
        // room 80, keep half: at most 40 tokens of turns stay, the newest ones
        assert_eq!(window(0.5).drop_oldest_turns(&mut tokens, &mut starts), 5);
        assert_eq!(starts, [10, 20, 30, 40]);
        assert_eq!(tokens[..10], (0..10).collect::<Vec<u32>>()[..]);
        assert_eq!(tokens[10], 60, "the oldest kept turn is turn 5");
        assert_eq!(*tokens.last().unwrap(), 99);
    }

    #[test]
    fn keep_one_drops_only_what_the_next_turn_needs() {
        let (mut tokens, mut starts) = dialogue(9);
        assert_eq!(window(1.0).drop_oldest_turns(&mut tokens, &mut starts), 1);
        assert_eq!(tokens.len(), 90);
    }

    #[test]
    fn the_newest_turn_stays_even_when_it_alone_is_over_the_mark() {
        let mut tokens: Vec<u32> = (0..100).collect();
        let mut starts = vec![10, 20];
        assert_eq!(window(0.5).drop_oldest_turns(&mut tokens, &mut starts), 1);
        assert_eq!(starts, [10]);
        assert_eq!(tokens.len(), 90);
    }

    #[test]
    fn keep_must_be_a_share() {
        for bad in [0.0, -1.0, 1.5, f64::NAN, f64::INFINITY] {
            let error = TurnWindow::check_keep(bad, "overflow_keep").unwrap_err();
            assert!(error.contains("overflow_keep"), "{error}");
        }
        assert_eq!(TurnWindow::check_keep(0.25, "x"), Ok(0.25));
    }
}
