//! Keeping a batched row's numbers equal to its numbers alone.
//!
//! ONNX Runtime's CPU MatMul (attention weights times values, summed over the cached positions)
//! sums in groups of 4 positions counted from the start of the row. A row shifted right by left
//! padding gets the same logits, bit for bit, only when the shift is a multiple of 4; by any other
//! amount they differ in the last bits (1e-5 in fp32 logits), which sampling, or an int8 graph's
//! activation quantization, can turn into another token. A sequence alone is never padded, so in a
//! batch every row's left padding is kept a multiple of [`ROW_ALIGNMENT`]: rows share a prompt pass
//! only when their lengths agree modulo it, and a group of rows (or a sequence joining a running
//! batch) whose width disagrees with the batch's takes its first decode steps alone until it agrees.

use super::output::TokenEvent;
use super::rows::Row;
use super::{Generator, KvCache};
use crate::error::Result;

/// Every row's left padding in a batch is a multiple of this many positions. 4 is what ONNX
/// Runtime 1.31's CPU kernels need (measured on every layout and on the int8 demo graph; see
/// `models/README.md`); 8 leaves a margin for kernels that group by 8. The cost falls on batches
/// only: rows whose prompt lengths differ modulo 8 take separate prompt passes, and a group (or a
/// row joining a running batch) takes at most 7 decode steps alone before it steps with the rest.
pub const ROW_ALIGNMENT: usize = 8;

impl<'m> Generator<'m> {
    /// Before the first pass: keep the rows whose prompt length agrees (modulo the alignment) with
    /// the largest such group and take the others out, grouped the same way, to run after it.
    pub(super) fn split_off_misaligned(&mut self) -> Vec<Vec<Row>> {
        let residue = |row: &Row| row.prompt_len % ROW_ALIGNMENT;
        let mut counts = [0usize; ROW_ALIGNMENT];
        for row in &self.rows {
            counts[residue(row)] += 1;
        }
        let keep = (0..ROW_ALIGNMENT)
            .max_by_key(|&r| (counts[r], std::cmp::Reverse(r)))
            .unwrap_or(0);
        let mut groups: Vec<Vec<Row>> = (0..ROW_ALIGNMENT).map(|_| Vec::new()).collect();
        let mut kept = Vec::with_capacity(counts[keep]);
        for row in std::mem::take(&mut self.rows) {
            if residue(&row) == keep {
                kept.push(row);
            } else {
                groups[residue(&row)].push(row);
            }
        }
        self.rows = kept;
        groups.retain(|group| !group.is_empty());
        groups
    }

    /// A batch of `rows` that have not run yet, sharing this generator's model, padding token and
    /// cancellation.
    pub(super) fn sibling(&self, rows: Vec<Row>) -> Generator<'m> {
        Generator {
            model: self.model,
            rows,
            next_id: 0,
            pad: self.pad,
            cache: KvCache::default(),
            logits: Vec::new(),
            input_ids: Vec::new(),
            attention_mask: Vec::new(),
            position_ids: Vec::new(),
            text_buf: String::new(),
            piece_buf: String::new(),
            stats: Default::default(),
            started: false,
            cancel: self.cancel.clone(),
            resumed: 0,
            fed: 0,
        }
    }

    /// The batch's width: positions in every row's mask, padding included.
    fn width(&self) -> usize {
        self.rows.first().map_or(0, |row| row.mask.len())
    }

    /// Merge `other` (started, its rows not in this batch) into this running batch. While any of
    /// its rows runs, it steps alone until its width agrees with the batch's modulo
    /// [`ROW_ALIGNMENT`], so whichever side is shorter is padded by a multiple of it. A group that
    /// stopped meanwhile takes any padding it needs (its rows only fill their place until retired).
    pub(super) fn merge(
        &mut self,
        mut other: Generator<'m>,
        on_token: &mut dyn FnMut(&TokenEvent<'_>) -> bool,
    ) -> Result<()> {
        if self.rows.is_empty() {
            self.add_stats(&other);
            self.cache = other.cache;
            self.rows = other.rows;
            return Ok(());
        }
        let width = self.width();
        while !other.is_done() && other.width() % ROW_ALIGNMENT != width % ROW_ALIGNMENT {
            other.step(on_token)?;
        }
        self.add_stats(&other);
        let own = other.width();
        let uses_cache = self.model.uses_cache();
        if own > width && other.is_done() {
            // Its rows' caches are kept whole (a session copies a finished row's positions back
            // out of the batch): the batch grows by a multiple of the alignment instead, and the
            // stopped rows take whatever padding is left over.
            let grow = (own - width).next_multiple_of(ROW_ALIGNMENT);
            if uses_cache {
                self.cache.pad_left(grow)?;
                other.cache.pad_left(grow - (own - width))?;
            }
            pad_rows(&mut self.rows, grow, self.pad);
            pad_rows(&mut other.rows, grow - (own - width), self.pad);
        } else if own > width {
            if uses_cache {
                self.cache.pad_left(own - width)?;
            }
            pad_rows(&mut self.rows, own - width, self.pad);
        } else if width > own {
            if uses_cache {
                other.cache.pad_left(width - own)?;
            }
            pad_rows(&mut other.rows, width - own, self.pad);
        }
        if uses_cache {
            self.cache.append_rows(other.cache)?;
        }
        self.rows.append(&mut other.rows);
        Ok(())
    }

    fn add_stats(&mut self, other: &Generator<'m>) {
        self.fed += other.fed;
        let other = &other.stats;
        self.stats.prompt_tokens += other.prompt_tokens;
        self.stats.prompt_seconds += other.prompt_seconds;
        self.stats.decode_tokens += other.decode_tokens;
        self.stats.decode_seconds += other.decode_seconds;
        self.stats.sampling_seconds += other.sampling_seconds;
    }
}

fn pad_rows(rows: &mut [Row], count: usize, pad: u32) {
    for row in rows {
        row.fed_ids
            .splice(0..0, std::iter::repeat_n(i64::from(pad), count));
        row.mask.splice(0..0, std::iter::repeat_n(0, count));
    }
}
