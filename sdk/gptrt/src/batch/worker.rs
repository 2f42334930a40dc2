//! The batcher's worker thread: admits queued generations into the running batch, steps it, and
//! hands the stopped rows' results to their sessions.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::generate::{CancelToken, Generator, StopReason, TokenEvent};
use crate::model::Model;
use crate::worker::{panicked, yield_to_host_threads};

use super::{lock, BatchJob, BatcherStats, Inner, Member, TurnState};

/// A row of the batch: whose it is and how to stop it.
struct Row {
    member: Arc<dyn Member>,
    cancel: CancelToken,
    /// A session's turn: the positions its cache held when it came in.
    turn: Option<usize>,
}

/// Route a token to its session; `false` stops a row whose session was cancelled or dropped.
fn deliver(row: &Row, event: &TokenEvent<'_>, stats: &mut BatcherStats) -> bool {
    stats.tokens += 1;
    row.member.push_token(event);
    !row.cancel.is_cancelled()
}

pub(super) fn batcher_main(model: Arc<Model>, inner: Arc<Inner>) {
    yield_to_host_threads();
    let mut generator: Option<Generator<'_>> = None;
    let mut rows: HashMap<usize, Row> = HashMap::new();
    loop {
        let (jobs, shutdown) = {
            let mut queue = lock(&inner.queue);
            while !queue.shutdown && queue.pending.is_empty() && rows.is_empty() {
                queue = inner
                    .wake
                    .wait(queue)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            (std::mem::take(&mut queue.pending), queue.shutdown)
        };
        if shutdown {
            let freed = Arc::new(freed());
            for job in jobs {
                job.cancel.cancel();
                job.member.finish(Err(freed.clone()));
            }
            for row in rows.into_values() {
                row.member.finish(Err(freed.clone()));
            }
            return;
        }
        let mut stats = *lock(&inner.stats);
        let mut deferred = Vec::new();
        for job in jobs {
            // A batch made in this very round takes only new prompts before its first pass (and
            // none if a resumed turn made it): the others wait for the next round.
            if generator
                .as_ref()
                .is_some_and(|g| !g.can_join(job.turn.is_some()))
            {
                deferred.push(job);
                continue;
            }
            admit(&model, &mut generator, &mut rows, job, &mut stats);
        }
        if !deferred.is_empty() {
            lock(&inner.queue).pending.extend(deferred);
        }
        if let Some(batch) = generator.as_mut().filter(|g| !g.is_empty()) {
            let width = batch.len();
            let stepped = catch_unwind(AssertUnwindSafe(|| {
                batch.step(&mut |event| match rows.get(&event.row) {
                    Some(row) => deliver(row, event, &mut stats),
                    None => false,
                })
            }));
            stats.forward_passes += 1;
            stats.rows_stepped += width as u64;
            stats.max_rows = stats.max_rows.max(width);
            let failure = match stepped {
                Ok(Ok(_)) => None,
                Ok(Err(error)) => Some(error),
                Err(payload) => Some(panicked("the batched generation", payload.as_ref())),
            };
            match failure {
                Some(error) => fail_batch(&mut generator, &mut rows, error),
                None => retire(&mut generator, &mut rows),
            }
        }
        if generator.as_ref().is_some_and(Generator::is_empty) {
            // Empty: the next generation starts a fresh batch.
            generator = None;
        }
        *lock(&inner.stats) = stats;
    }
}

fn freed() -> Error {
    Error::Internal {
        context: "the batcher",
        message: "the batcher was freed while this generation was queued or running".to_string(),
    }
}

/// Put a queued generation into the batch: the first one makes the batch, later ones join it.
fn admit<'m>(
    model: &'m Arc<Model>,
    generator: &mut Option<Generator<'m>>,
    rows: &mut HashMap<usize, Row>,
    job: BatchJob,
    stats: &mut BatcherStats,
) {
    let row = Row {
        member: job.member,
        cancel: job.cancel,
        turn: job.turn.as_ref().map(|turn| turn.cached),
    };
    let tokens_before = stats.tokens;
    let admitted = catch_unwind(AssertUnwindSafe(|| -> Result<usize> {
        let mut add_samplers = |generator: &mut Generator<'m>| -> Result<()> {
            for sampler in &job.samplers {
                let host = sampler.host.lock().unwrap_or_else(|p| p.into_inner());
                crate::plugin::add_samplers(
                    &host,
                    std::slice::from_ref(&sampler.spec),
                    model,
                    generator,
                )?;
            }
            Ok(())
        };
        if let Some(turn) = job.turn {
            let mut resumed =
                Generator::resume(model, turn.tokens, turn.cache, turn.cached, &job.config)?;
            return match generator {
                None => {
                    add_samplers(&mut resumed)?;
                    let id = resumed.row_ids().first().copied().unwrap_or(0);
                    *generator = Some(resumed);
                    Ok(id)
                }
                Some(batch) => batch.join_generator(resumed, &mut add_samplers, &mut |event| {
                    deliver(&row, event, stats)
                }),
            };
        }
        let ids = model.tokenizer().encode(&job.prompt)?;
        match generator {
            None => {
                let mut batch = Generator::new(model, vec![ids], &job.config)?;
                add_samplers(&mut batch)?;
                let id = batch
                    .row_ids()
                    .first()
                    .copied()
                    .ok_or_else(|| Error::Internal {
                        context: "the batcher",
                        message: "a new batch came without its row".to_string(),
                    })?;
                *generator = Some(batch);
                Ok(id)
            }
            // A running batch: the newcomer's prompt runs alone and its first token arrives
            // before `join` returns its row id, so every token of that pass is the newcomer's.
            Some(batch) => batch.join_with(ids, &job.config, &mut add_samplers, &mut |event| {
                deliver(&row, event, stats)
            }),
        }
    }))
    .unwrap_or_else(|payload| {
        Err(panicked(
            "starting the batched generation",
            payload.as_ref(),
        ))
    });
    stats.generations += 1;
    if stats.tokens > tokens_before {
        // The newcomer's prompt had a forward pass of its own, and each token it took alone
        // before its width agreed with the batch's (see `ROW_ALIGNMENT`) one more.
        let passes = stats.tokens - tokens_before;
        stats.forward_passes += passes;
        stats.rows_stepped += passes;
        stats.max_rows = stats.max_rows.max(1);
    }
    match admitted {
        Ok(id) => {
            rows.insert(id, row);
        }
        Err(error) => row.member.finish_turn(Err(Arc::new(error)), None),
    }
}

/// Hand the stopped rows' results to their sessions.
fn retire(generator: &mut Option<Generator<'_>>, rows: &mut HashMap<usize, Row>) {
    let Some(batch) = generator.as_mut() else {
        return;
    };
    // The stopped turns' sequences and caches, copied out before retiring drops their rows.
    let mut states = HashMap::new();
    for (&id, row) in rows.iter() {
        if let Some(before) = row.turn {
            if batch.is_stopped(id) {
                let state = batch
                    .stopped_row_state(id)
                    .map(|(tokens, cache, cached)| TurnState {
                        ran: cached.saturating_sub(before).max(1),
                        tokens,
                        cache,
                        cached,
                    });
                states.insert(id, state);
            }
        }
    }
    match batch.retire() {
        Ok(done) => {
            for (id, mut generation) in done {
                let Some(row) = rows.remove(&id) else {
                    continue;
                };
                if generation.stop_reason == StopReason::Callback && row.cancel.is_cancelled() {
                    generation.stop_reason = StopReason::Cancelled;
                }
                match states.remove(&id) {
                    Some(Ok(state)) => row.member.finish_turn(Ok(generation), Some(state)),
                    Some(Err(error)) => row.member.finish_turn(Err(Arc::new(error)), None),
                    None => row.member.finish(Ok(generation)),
                }
            }
        }
        Err(error) => fail_batch(generator, rows, error),
    }
}

/// A failed forward pass (or retirement) fails every row of the batch; the next generation
/// starts a fresh one.
fn fail_batch(generator: &mut Option<Generator<'_>>, rows: &mut HashMap<usize, Row>, error: Error) {
    *generator = None;
    let error = Arc::new(error);
    for row in std::mem::take(rows).into_values() {
        row.member.finish(Err(error.clone()));
    }
}
