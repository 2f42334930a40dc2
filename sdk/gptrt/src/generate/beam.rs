//! Beam search with the semantics of transformers 4.57's `_beam_search`: processors act on
//! log-probabilities, `2 * num_beams` candidates per step (more with several end tokens), finished
//! hypotheses scored `sum_logprobs / generated_len ** length_penalty`, and the same stopping rule
//! for `early_stopping` false / true / "never".

use std::time::Instant;

use super::prepare::prepare_prompts;
use super::{Generation, GenerationStats, StopReason};
use crate::config::{EarlyStopping, GenerationConfig};
use crate::error::Result;
use crate::graph::StepInput;
use crate::kv::KvCache;
use crate::model::Model;
use crate::sampling::{best_first, is_allowed, log_sum_exp, SamplerChain, SamplerContext};

/// transformers' stand-in for minus infinity in beam bookkeeping.
const NEG: f32 = -1.0e9;

struct Finished {
    tokens: Vec<u32>,
    score: f32,
    done: bool,
    reason: StopReason,
}

impl Model {
    /// Beam search for each prompt (`config.num_beams` > 1); returns `num_return_sequences`
    /// results per prompt, best first, with [`Generation::score`] set.
    pub fn generate_beams(
        &self,
        prompts: Vec<Vec<u32>>,
        config: &GenerationConfig,
    ) -> Result<Vec<Generation>> {
        let prepared = prepare_prompts(self, prompts, config)?;
        let mut results = Vec::new();
        for prompt in prepared.prompts {
            results.extend(self.beam_search(prompt, config, &prepared.eos)?);
        }
        Ok(results)
    }

    fn beam_search(
        &self,
        prompt: Vec<u32>,
        config: &GenerationConfig,
        eos: &[u32],
    ) -> Result<Vec<Generation>> {
        let vocab = self.config().vocab_size;
        let beams = config.num_beams;
        let prompt_len = prompt.len();
        let budget = config.new_token_budget(prompt_len);
        let n_positions = self.config().n_positions;
        let max_length = (prompt_len + budget).min(n_positions);
        let keep = 2usize.max(1 + eos.len()) * beams;
        let length_penalty = config.length_penalty;
        let began = Instant::now();

        // do_sample is refused above, so this is the processors and renormalize_logits.
        let mut chain = SamplerChain::without_selector(config, eos, 1);
        let mut running: Vec<Vec<u32>> = vec![prompt.clone(); beams];
        let mut running_scores: Vec<f32> =
            (0..beams).map(|b| if b == 0 { 0.0 } else { NEG }).collect();
        let mut finished: Vec<Finished> = (0..beams)
            .map(|_| Finished {
                tokens: Vec::new(),
                score: NEG,
                done: false,
                reason: StopReason::MaxNewTokens,
            })
            .collect();
        let mut cache = KvCache::default();
        let mut logits = Vec::new();
        let mut log_probs = Vec::with_capacity(vocab);
        let mut scores = vec![0.0f32; beams * vocab];
        let mut order: Vec<u32> = Vec::with_capacity(beams * vocab);
        let mut stats = GenerationStats::default();
        let (mut input_ids, mut mask, mut positions) = (Vec::new(), Vec::new(), Vec::new());
        let mut first = true;

        // Nothing to generate when the budget is zero or the prompt already fills max_length.
        let mut searching = budget > 0 && prompt_len < max_length;
        while searching {
            let step_began = Instant::now();
            let cur_len = running[0].len();
            let full = first || !self.uses_cache();
            let seq = if full { cur_len } else { 1 };
            input_ids.clear();
            mask.clear();
            positions.clear();
            for row in &running {
                input_ids.extend(row[cur_len - seq..].iter().map(|&id| i64::from(id)));
                mask.extend(std::iter::repeat_n(1i64, cur_len));
                positions.extend((cur_len - seq) as i64..cur_len as i64);
            }
            self.forward(
                &StepInput {
                    batch: beams,
                    seq,
                    input_ids: &input_ids,
                    attention_mask: &mask,
                    position_ids: &positions,
                },
                &mut cache,
                &mut logits,
            )?;

            // Log-softmax, processors on the log-probabilities, plus each beam's running score.
            for (beam, row) in running.iter().enumerate() {
                let raw = &logits[beam * vocab..(beam + 1) * vocab];
                let log_sum = log_sum_exp(raw.iter().copied());
                // Reset from the log-probabilities rather than editing the candidates: that keeps
                // them indexed by id, so a processor's ban is a lookup, not a scan of the vocabulary.
                log_probs.clear();
                log_probs.extend(raw.iter().map(|&v| v - log_sum));
                chain.candidates_mut().reset(&log_probs);
                let context = SamplerContext {
                    tokens: row,
                    prompt_len,
                    max_length,
                    vocab_size: vocab,
                };
                chain.apply(&context)?;
                let processed = chain.candidates().to_logits(vocab);
                for (slot, value) in scores[beam * vocab..(beam + 1) * vocab]
                    .iter_mut()
                    .zip(processed)
                {
                    *slot = value + running_scores[beam];
                }
            }

            // The `keep` best continuations over all beams, best first.
            order.clear();
            order.extend(0..(beams * vocab) as u32);
            let by_score =
                |&a: &u32, &b: &u32| best_first((scores[a as usize], a), (scores[b as usize], b));
            order.select_nth_unstable_by(keep - 1, by_score);
            order.truncate(keep);
            order.sort_unstable_by(by_score);
            if !is_allowed(scores[order[0] as usize]) {
                // No beam has a continuation that is not banned: continuing would put banned
                // tokens in every beam (transformers does) and end with no finished hypothesis.
                let context = SamplerContext {
                    tokens: &running[0],
                    prompt_len,
                    max_length,
                    vocab_size: vocab,
                };
                let raw = &logits[..vocab];
                let token = order[0] % vocab as u32;
                let name = "beam search".to_string();
                return Err(chain.banned_choice(raw, &context, usize::MAX, name, token));
            }

            let out_of_time = config
                .max_time
                .is_some_and(|limit| began.elapsed().as_secs_f64() >= limit);
            let candidates: Vec<(usize, u32, f32, bool)> = order
                .iter()
                .map(|&index| {
                    let (beam, token) = (index as usize / vocab, index % vocab as u32);
                    let hit = eos.contains(&token) || cur_len + 1 >= max_length || out_of_time;
                    (beam, token, scores[index as usize], hit)
                })
                .collect();

            // Running beams for the next step: the best candidates that did not finish.
            let mut next: Vec<usize> = (0..keep).collect();
            next.sort_by(|&a, &b| {
                let score = |i: usize| candidates[i].2 + if candidates[i].3 { NEG } else { 0.0 };
                best_first((score(a), a), (score(b), b))
            });
            next.truncate(beams);
            let sources: Vec<usize> = next.iter().map(|&i| candidates[i].0).collect();
            let new_running: Vec<Vec<u32>> = next
                .iter()
                .map(|&i| {
                    let mut tokens = running[candidates[i].0].clone();
                    tokens.push(candidates[i].1);
                    tokens
                })
                .collect();
            let new_scores: Vec<f32> = next
                .iter()
                .map(|&i| candidates[i].2 + if candidates[i].3 { NEG } else { 0.0 })
                .collect();

            // Finished hypotheses: only the top `beams` candidates may finish.
            let all_done = finished.iter().all(|f| f.done);
            let generated_len = (cur_len + 1 - prompt_len) as f32;
            let mut merged: Vec<Finished> = std::mem::take(&mut finished);
            for (i, &(beam, token, score, hit)) in candidates.iter().enumerate() {
                let just_finished = hit && i < beams;
                let mut value = score / generated_len.powf(length_penalty);
                if all_done && config.early_stopping == EarlyStopping::Done {
                    value += NEG;
                }
                if !just_finished {
                    value += NEG;
                }
                let mut tokens = running[beam].clone();
                tokens.push(token);
                let reason = if eos.contains(&token) {
                    StopReason::Eos
                } else if out_of_time {
                    StopReason::MaxTime
                } else if max_length >= n_positions && prompt_len + budget > n_positions {
                    StopReason::ContextFull
                } else {
                    StopReason::MaxNewTokens
                };
                merged.push(Finished {
                    tokens,
                    score: value,
                    done: just_finished,
                    reason,
                });
            }
            let mut ranked: Vec<usize> = (0..merged.len()).collect();
            ranked.sort_by(|&a, &b| best_first((merged[a].score, a), (merged[b].score, b)));
            ranked.truncate(beams);
            let mut slots: Vec<Option<Finished>> = merged.into_iter().map(Some).collect();
            finished = ranked.iter().filter_map(|&i| slots[i].take()).collect();

            running = new_running;
            running_scores = new_scores;
            cache.select_rows(&sources)?;
            let seconds = step_began.elapsed().as_secs_f64();
            if first {
                stats.prompt_tokens = prompt_len;
                stats.prompt_seconds = seconds;
                first = false;
            } else {
                stats.decode_tokens += beams;
                stats.decode_seconds += seconds;
            }

            // Stop when no running beam can still beat the finished ones.
            let cur_len = cur_len + 1;
            let best_length =
                if config.early_stopping == EarlyStopping::Never && length_penalty > 0.0 {
                    max_length - prompt_len
                } else {
                    cur_len - prompt_len
                };
            let best_possible = running_scores[0] / (best_length as f32).powf(length_penalty);
            let all_finished = finished.iter().all(|f| f.done);
            let worst_finished = if all_finished {
                finished
                    .iter()
                    .map(|f| f.score)
                    .fold(f32::INFINITY, f32::min)
            } else {
                NEG
            };
            let improvement_possible = best_possible > worst_finished;
            let open_beam = !(all_finished && config.early_stopping == EarlyStopping::Done);
            let valid_continuations = !candidates.iter().all(|c| c.3);
            searching = improvement_possible && open_beam && valid_continuations;
        }

        let tokenizer = self.tokenizer();
        finished
            .into_iter()
            .filter(|f| f.done)
            .take(config.num_return_sequences)
            .map(|f| {
                let token_ids = f.tokens[prompt_len..].to_vec();
                Ok(Generation {
                    text: tokenizer.decode(&token_ids, true)?,
                    prompt_token_ids: prompt.clone(),
                    token_ids,
                    stop_reason: f.reason,
                    stop_string: None,
                    logprobs: None,
                    seed: None,
                    score: Some(f.score),
                    stats,
                })
            })
            .collect()
    }
}
