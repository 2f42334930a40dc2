//! A banned token is never emitted: when the chain leaves no allowed candidate (every logit `-inf`),
//! greedy, sampling, beam search and plugin-style selectors fail with an error naming the link
//! that banned the rest, instead of picking a banned token.

mod common;

use gptrt::sampling::{Dist, Greedy};
use gptrt::{
    Candidates, Error, GenerationConfig, Generator, Sampler, SamplerChain, SamplerContext,
};

fn prompt() -> Vec<u32> {
    common::reference().cases[0].prompt_ids.clone()
}

fn every_token() -> Vec<u32> {
    (0..50257).collect()
}

fn sampler_error(config: &GenerationConfig) -> (String, String) {
    let model = common::load("single");
    match model.generate_ids(vec![prompt()], config, &mut |_| true) {
        Err(Error::Sampler { sampler, message }) => (sampler, message),
        other => panic!("expected a sampler error, got {other:?}"),
    }
}

fn modes() -> Vec<(&'static str, GenerationConfig)> {
    let greedy = common::greedy(5);
    let sampling = GenerationConfig {
        do_sample: true,
        seed: Some(3),
        ..greedy.clone()
    };
    let beam = GenerationConfig {
        num_beams: 3,
        ..greedy.clone()
    };
    vec![("greedy", greedy), ("sampling", sampling), ("beam", beam)]
}

#[test]
fn suppressing_the_whole_vocabulary_is_an_error_naming_suppress_tokens() {
    for (mode, base) in modes() {
        let config = GenerationConfig {
            suppress_tokens: Some(every_token()),
            ..base
        };
        let (sampler, message) = sampler_error(&config);
        assert_eq!(sampler, "suppress_tokens", "{mode}: {message}");
        assert!(message.contains("banned every token"), "{mode}: {message}");
    }
}

#[test]
fn begin_suppressing_the_whole_vocabulary_is_an_error_at_the_first_token() {
    for (mode, base) in modes() {
        let config = GenerationConfig {
            begin_suppress_tokens: Some(every_token()),
            ..base
        };
        let (sampler, message) = sampler_error(&config);
        assert_eq!(sampler, "begin_suppress_tokens", "{mode}: {message}");
    }
}

/// `bad_words_ids` never bans an end token on its own (as in transformers), so the end token is
/// the one left; `min_new_tokens` then bans it too.
#[test]
fn bad_words_and_min_new_tokens_together_leave_nothing_and_name_the_last_ban() {
    for (mode, base) in modes() {
        let bad_words = GenerationConfig {
            bad_words_ids: Some(every_token().into_iter().map(|t| vec![t]).collect()),
            ..base.clone()
        };
        let model = common::load("single");
        let results = model
            .generate_ids(vec![prompt()], &bad_words, &mut |_| true)
            .unwrap();
        assert_eq!(
            results[0].token_ids,
            [50256],
            "{mode}: only the end token is left"
        );

        let config = GenerationConfig {
            min_new_tokens: Some(2),
            ..bad_words
        };
        let (sampler, message) = sampler_error(&config);
        assert_eq!(sampler, "min_new_tokens", "{mode}: {message}");
    }
}

/// remove_invalid_values writes f32::MIN over `-inf`, as transformers does; that is still a ban.
#[test]
fn remove_invalid_values_does_not_unban_tokens() {
    for (mode, base) in modes() {
        let config = GenerationConfig {
            bad_words_ids: Some(every_token().into_iter().map(|t| vec![t]).collect()),
            min_new_tokens: Some(2),
            remove_invalid_values: true,
            ..base
        };
        let (sampler, message) = sampler_error(&config);
        assert_eq!(sampler, "min_new_tokens", "{mode}: {message}");
    }
}

fn context(tokens: &[u32]) -> SamplerContext<'_> {
    SamplerContext {
        tokens,
        prompt_len: tokens.len(),
        max_length: 100,
        vocab_size: 8,
    }
}

#[test]
fn greedy_and_dist_refuse_all_minus_infinity_logits() {
    let logits = [f32::NEG_INFINITY; 8];
    let mut greedy = SamplerChain::new();
    greedy.push(Greedy);
    let mut dist = SamplerChain::new();
    dist.push(Dist::new(1));
    for chain in [&mut greedy, &mut dist] {
        match chain.sample(&logits, &context(&[1])) {
            Err(Error::Sampler { message, .. }) => {
                assert!(message.contains("-inf"), "{message}")
            }
            other => panic!("{:?}: expected an error, got {other:?}", chain.names()),
        }
    }
}

/// When rounding leaves the cumulative probability below the draw, the draw used to fall back to
/// the last candidate, which may be banned. Seed 215760's first draw is >= 1 - 8 / 2^24, and the
/// f32 sum of 31 probabilities of 1/31 is 1 - 8 / 2^24.
#[test]
fn a_draw_past_the_rounded_total_takes_the_last_allowed_token() {
    let mut logits = vec![0.0f32; 31];
    logits.extend([f32::NEG_INFINITY; 3]);
    let mut total = 0.0f32;
    (0..31).for_each(|_| total += 1.0 / 31.0);
    assert!(total < 1.0 - 7.0 / (1u32 << 24) as f32, "{total}");
    let mut chain = SamplerChain::new();
    chain.push(Dist::new(215_760));
    let tokens = [0];
    let context = SamplerContext {
        vocab_size: logits.len(),
        ..context(&tokens)
    };
    let token = chain.sample(&logits, &context).unwrap();
    assert_eq!(token, 30, "the last token with a probability");
}

/// A selector (a plugin's, say) that picks a banned token is refused by the chain.
struct PicksBanned;

impl Sampler for PicksBanned {
    fn name(&self) -> &str {
        "picks_banned"
    }
    fn apply(&mut self, candidates: &mut Candidates, _: &SamplerContext<'_>) -> gptrt::Result<()> {
        candidates.ban(0);
        let index = candidates.items().iter().position(|c| c.id == 0).unwrap();
        candidates.select(index);
        Ok(())
    }
}

#[test]
fn a_selector_that_picks_a_banned_token_is_an_error() {
    let model = common::load("single");
    let mut generator = Generator::new(&model, vec![prompt()], &common::greedy(3)).unwrap();
    generator.add_sampler(0, Box::new(PicksBanned)).unwrap();
    match generator.step(&mut |_| true) {
        Err(Error::Sampler { sampler, message }) => {
            assert_eq!(sampler, "picks_banned");
            assert!(message.contains("chose token 0"), "{message}");
        }
        other => panic!("expected an error, got {other:?}"),
    }
}
