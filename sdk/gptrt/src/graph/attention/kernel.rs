//! The arithmetic of one attention head over a filled KV cache, written so that a query's result
//! depends on its own query, the keys it may see and their values, and nothing else: not its place
//! in a batch, not the padding before it, not the other queries of the step, not the CPU. Every
//! dot product is one fixed chain of fused multiply-adds, keys are taken in blocks counted from the
//! row's first real token, and a key a query may not see, or a block with nothing new for it,
//! changes nothing it holds (the cache being finite, as a model's is: a hidden key's value is
//! still multiplied by its zero weight). So a padded row of a batch gets the bits it gets alone, and the
//! AVX-512 path the bits of the portable one.
//!
//! The queries of a step are the vector lanes (up to [`LANES`] at once), so each key and value is
//! read once per step whatever the number of new tokens; and the softmax is the running
//! (online) one, so a block's keys and values are used while they are in L1 and the next blocks
//! are already on their way from memory: a turn over a long history costs about what reading its
//! cache costs.

/// Queries processed together, one per vector lane.
pub(crate) const LANES: usize = 16;
/// Keys scored, weighed and summed together.
const BLOCK: usize = 16;
/// How many blocks ahead the cache is prefetched.
const PREFETCH_BLOCKS_AHEAD: usize = 4;

type Lanes = [f32; LANES];

/// One head of one row: where its inputs are.
pub(crate) struct Head<'a> {
    /// The step's queries, `[seq][head_dim]`, bias added and scaled.
    pub(crate) queries: &'a [f32],
    /// The cache's keys and values for positions `0..past + seq`, `[position][head_dim]`.
    pub(crate) keys: &'a [f32],
    pub(crate) values: &'a [f32],
    /// The row's padding mask over those positions: 0 = padding, never attended to.
    pub(crate) attends: &'a [i32],
    /// Positions filled before this step; query `s` sits at position `past + s`.
    pub(crate) past: usize,
    pub(crate) head_dim: usize,
}

/// Reusable buffers of one thread.
#[derive(Default)]
pub(crate) struct Scratch {
    /// Queries transposed: `[head_dim]` of lanes.
    queries: Vec<Lanes>,
    /// Weighted sums of values so far, transposed the same way.
    sums: Vec<Lanes>,
}

/// Softmax(q·k) · v for every query of `head`, written to `out` (`[seq][head_dim]`). A query with
/// no position to attend to (a padding position of a left-padded row) gets zeros.
pub(crate) fn attend(head: &Head<'_>, out: &mut [f32], scratch: &mut Scratch) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has the features the function is compiled for.
            return unsafe { avx512::attend(head, out, scratch) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: as above.
            return unsafe { attend_avx2(head, out, scratch) };
        }
    }
    attend_with::<Portable>(head, out, scratch);
}

/// The portable code, compiled for AVX2 (same arithmetic; its speed is not measured here).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn attend_avx2(head: &Head<'_>, out: &mut [f32], scratch: &mut Scratch) {
    attend_with::<Portable>(head, out, scratch);
}

/// The block operations, portable or with a CPU's vector instructions; every implementation
/// does the same arithmetic in the same order.
trait BlockOps {
    /// `scores[k][lane]` = Σ_i queries[i][lane] · keys[k][i] (one FMA chain in `i` order) for
    /// the `scores.len()` keys in `keys`.
    fn dot_products(queries: &[Lanes], keys: &[f32], scores: &mut [Lanes]);
    /// Each score becomes e^(score - max) in place, or 0 where it is -inf; returns their sums,
    /// added in key order.
    fn exponentiate(scores: &mut [Lanes], max: &Lanes) -> Lanes;
    /// `sums[i]` = `sums[i]` · rescale (when given), then += p_k · values[k][i] in key order.
    fn accumulate(sums: &mut [Lanes], rescale: Option<&Lanes>, probs: &[Lanes], values: &[f32]);
    /// Asks for the cache rows at `keys` and `values` ahead of their use.
    fn prefetch(keys: *const f32, values: *const f32, len: usize);
}

#[inline(always)]
fn attend_with<O: BlockOps>(head: &Head<'_>, out: &mut [f32], scratch: &mut Scratch) {
    let d = head.head_dim;
    let seq = head.queries.len() / d;
    // Blocks count from the row's first real token, wherever the padding puts it.
    let start = head.attends.iter().position(|&a| a != 0);
    for first in (0..seq).step_by(LANES) {
        let count = LANES.min(seq - first);
        let out = &mut out[first * d..(first + count) * d];
        match start {
            Some(start) => attend_group::<O>(head, start, first, count, out, scratch),
            None => out.fill(0.0),
        }
    }
}

/// Queries `first..first + count` (at most [`LANES`]), one per lane.
#[inline(always)]
fn attend_group<O: BlockOps>(
    head: &Head<'_>,
    start: usize,
    first: usize,
    count: usize,
    out: &mut [f32],
    scratch: &mut Scratch,
) {
    let d = head.head_dim;
    let Scratch { queries, sums } = scratch;
    queries.clear();
    queries.resize(d, [0.0; LANES]);
    for (lane, query) in head.queries[first * d..(first + count) * d]
        .chunks_exact(d)
        .enumerate()
    {
        for (column, &x) in queries.iter_mut().zip(query) {
            column[lane] = x;
        }
    }
    sums.clear();
    sums.resize(d, [0.0; LANES]);
    // Lane j sees positions up to first_position + j.
    let first_position = head.past + first;
    let end = first_position + count;
    let (mut max, mut total) = ([f32::NEG_INFINITY; LANES], [0.0f32; LANES]);
    let mut scores = [[0.0f32; LANES]; BLOCK];
    for at in (start..end).step_by(BLOCK) {
        let n = BLOCK.min(end - at);
        let ahead = (at + PREFETCH_BLOCKS_AHEAD * BLOCK).min(end);
        let fetch = (at + (PREFETCH_BLOCKS_AHEAD + 1) * BLOCK).min(end) - ahead;
        O::prefetch(
            head.keys[ahead * d..].as_ptr(),
            head.values[ahead * d..].as_ptr(),
            fetch * d,
        );
        let scores = &mut scores[..n];
        O::dot_products(queries, &head.keys[at * d..(at + n) * d], scores);
        for (k, row) in scores.iter_mut().enumerate() {
            let t = at + k;
            if head.attends[t] == 0 {
                *row = [f32::NEG_INFINITY; LANES];
            } else if t > first_position {
                let masked_lanes = (t - first_position).min(LANES);
                row[..masked_lanes].fill(f32::NEG_INFINITY);
            }
        }
        let mut new_max = max;
        for row in scores.iter() {
            for (m, &s) in new_max.iter_mut().zip(row) {
                *m = if s > *m { s } else { *m };
            }
        }
        // What the sums so far are worth under the new maximum: 1 where it did not move.
        let mut rescale = [max];
        O::exponentiate(&mut rescale, &new_max);
        let [rescale] = rescale;
        let block_total = O::exponentiate(scores, &new_max);
        for ((t, &r), &b) in total.iter_mut().zip(&rescale).zip(&block_total) {
            *t = *t * r + b;
        }
        let moved = rescale.iter().any(|&r| r != 1.0);
        O::accumulate(
            sums,
            moved.then_some(&rescale),
            scores,
            &head.values[at * d..(at + n) * d],
        );
        max = new_max;
    }
    for (lane, out) in out.chunks_exact_mut(d).enumerate() {
        let total = total[lane];
        for (o, column) in out.iter_mut().zip(sums.iter()) {
            // 0 only when the lane saw nothing; a NaN (a broken cache) stays visible
            *o = if total == 0.0 {
                0.0
            } else {
                column[lane] / total
            };
        }
    }
}

/// Plain Rust, for any CPU.
struct Portable;

impl BlockOps for Portable {
    #[inline(always)]
    fn dot_products(queries: &[Lanes], keys: &[f32], scores: &mut [Lanes]) {
        let d = queries.len();
        for (key, score) in keys.chunks_exact(d).zip(scores.iter_mut()) {
            let mut acc = [0.0f32; LANES];
            for (&k, column) in key.iter().zip(queries) {
                for (a, &q) in acc.iter_mut().zip(column) {
                    *a = k.mul_add(q, *a);
                }
            }
            *score = acc;
        }
    }

    #[inline(always)]
    fn exponentiate(scores: &mut [Lanes], max: &Lanes) -> Lanes {
        let mut sums = [0.0f32; LANES];
        for row in scores.iter_mut() {
            for ((s, &m), sum) in row.iter_mut().zip(max).zip(sums.iter_mut()) {
                let p = exp(*s - m);
                let p = if *s == f32::NEG_INFINITY { 0.0 } else { p };
                *s = p;
                *sum += p;
            }
        }
        sums
    }

    #[inline(always)]
    fn accumulate(sums: &mut [Lanes], rescale: Option<&Lanes>, probs: &[Lanes], values: &[f32]) {
        let d = sums.len();
        if let Some(rescale) = rescale {
            for column in sums.iter_mut() {
                for (s, &r) in column.iter_mut().zip(rescale) {
                    *s *= r;
                }
            }
        }
        for (p, value) in probs.iter().zip(values.chunks_exact(d)) {
            for (column, &v) in sums.iter_mut().zip(value) {
                for (s, &p) in column.iter_mut().zip(p) {
                    *s = p.mul_add(v, *s);
                }
            }
        }
    }

    #[inline(always)]
    fn prefetch(_: *const f32, _: *const f32, _: usize) {}
}

/// e^x for x <= 0 (a score minus its row's maximum; NaN for -inf - -inf, which the callers
/// replace; NaN stays NaN), within 4e-7 relative, with no branch and no library call, so that it vectorises: x = n ln 2 + r
/// with |r| <= ln 2 / 2, e^r by a degree-6 polynomial, 2^n by exponent bits.
#[inline(always)]
fn exp(x: f32) -> f32 {
    // not f32::max, which would turn a NaN into the floor
    let x = if EXP_FLOOR > x { EXP_FLOOR } else { x };
    let n = (x * std::f32::consts::LOG2_E + ROUND) - ROUND;
    let r = n.mul_add(-LN2_LO, n.mul_add(-LN2_HI, x));
    let p = EXP_POLY[1..]
        .iter()
        .fold(EXP_POLY[0], |p, &c| p.mul_add(r, c));
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

const EXP_FLOOR: f32 = -87.0;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Adding and subtracting 1.5 * 2^23 rounds to the nearest integer, ties to even.
const ROUND: f32 = 12_582_912.0;
/// e^r's Taylor coefficients, highest degree first.
const EXP_POLY: [f32; 7] = [
    1.0 / 720.0,
    1.0 / 120.0,
    1.0 / 24.0,
    1.0 / 6.0,
    0.5,
    1.0,
    1.0,
];

#[cfg(target_arch = "x86_64")]
mod avx512;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_close_to_the_standard_one() {
        for i in 0..=8700 {
            let x = -(i as f32) / 100.0;
            let (ours, std) = (exp(x), x.exp());
            assert!(
                ((ours - std) / std).abs() < 4e-7,
                "exp({x}) = {ours}, std {std}"
            );
        }
    }

    /// A deterministic spread of values in [-scale, scale].
    fn numbers(count: usize, seed: u64, scale: f32) -> Vec<f32> {
        let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..count)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
            })
            .collect()
    }

    /// One row: `pad` padding positions, then `past - pad` real ones, then `seq` new ones.
    struct Row {
        queries: Vec<f32>,
        keys: Vec<f32>,
        values: Vec<f32>,
        attends: Vec<i32>,
        past: usize,
        d: usize,
    }

    impl Row {
        fn new(pad: usize, real_past: usize, seq: usize, d: usize, seed: u64) -> Row {
            let total = pad + real_past + seq;
            let mut keys = numbers(total * d, seed, 3.0);
            let mut values = numbers(total * d, seed + 1, 1.0);
            // padding positions hold what the model computed for padding: anything finite
            keys[..pad * d].fill(123.0);
            values[..pad * d].fill(-77.0);
            let mut attends = vec![1; total];
            attends[..pad].fill(0);
            Row {
                queries: numbers(seq * d, seed + 2, 1.0),
                keys,
                values,
                attends,
                past: pad + real_past,
                d,
            }
        }

        fn head(&self) -> Head<'_> {
            Head {
                queries: &self.queries,
                keys: &self.keys,
                values: &self.values,
                attends: &self.attends,
                past: self.past,
                head_dim: self.d,
            }
        }

        fn attend(&self) -> Vec<f32> {
            let mut out = vec![f32::NAN; self.queries.len()];
            attend(&self.head(), &mut out, &mut Scratch::default());
            out
        }

        /// The textbook formula in f64.
        fn reference(&self) -> Vec<f64> {
            let d = self.d;
            let mut out = Vec::new();
            for (s, q) in self.queries.chunks_exact(d).enumerate() {
                let visible: Vec<usize> = (0..=self.past + s)
                    .filter(|&t| self.attends[t] != 0)
                    .collect();
                let scores: Vec<f64> = visible
                    .iter()
                    .map(|&t| {
                        q.iter()
                            .zip(&self.keys[t * d..(t + 1) * d])
                            .map(|(&a, &b)| f64::from(a) * f64::from(b))
                            .sum()
                    })
                    .collect();
                let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let total: f64 = weights.iter().sum();
                for i in 0..d {
                    out.push(
                        visible
                            .iter()
                            .zip(&weights)
                            .map(|(&t, w)| w * f64::from(self.values[t * d + i]))
                            .sum::<f64>()
                            / total,
                    );
                }
            }
            out
        }
    }

    #[test]
    fn every_query_gets_the_textbook_attention() {
        // head sizes around the vector width, new-token counts around the lane count, histories
        // around the block size
        for (d, seq, past) in [
            (64, 16, 800),
            (64, 1, 37),
            (8, 3, 0),
            (24, 17, 5),
            (32, 40, 100),
        ] {
            let row = Row::new(0, past, seq, d, d as u64 + seq as u64);
            for (i, (ours, reference)) in row.attend().iter().zip(row.reference()).enumerate() {
                assert!(
                    (f64::from(*ours) - reference).abs() < 2e-5,
                    "d {d} seq {seq} past {past}, output {i}: {ours} vs {reference}"
                );
            }
        }
    }

    #[test]
    fn padding_before_a_row_changes_no_bit_of_its_result() {
        for (d, seq, past) in [(64, 16, 300), (64, 1, 50), (24, 21, 9), (8, 2, 0)] {
            let alone = Row::new(0, past, seq, d, 7);
            let expected = alone.attend();
            for pad in [1, 5, 16, 33] {
                let mut padded = Row::new(pad, past, seq, d, 7);
                // the same real keys and values, shifted behind the padding
                padded.keys[pad * d..].copy_from_slice(&alone.keys);
                padded.values[pad * d..].copy_from_slice(&alone.values);
                padded.queries.clone_from(&alone.queries);
                let got = padded.attend();
                assert!(
                    got.iter()
                        .zip(&expected)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "d {d} seq {seq} past {past} pad {pad}"
                );
            }
        }
    }

    #[test]
    fn a_query_at_a_padding_position_gets_zeros() {
        // a left-padded row whose new tokens are all padding: nothing to attend to
        let row = Row::new(6, 0, 4, 8, 3);
        let mut row = row;
        row.past = 2;
        row.attends = vec![0; 6];
        row.keys.truncate(6 * 8);
        row.values.truncate(6 * 8);
        assert!(row.attend().iter().all(|&x| x == 0.0));
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx512_path_gives_the_portable_bits() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            eprintln!("no AVX-512 on this CPU: nothing to compare");
            return;
        }
        for (d, seq, past, pad) in [
            (64, 16, 800, 3),
            (64, 1, 40, 0),
            (24, 19, 7, 2),
            (8, 5, 0, 1),
        ] {
            let row = Row::new(pad, past, seq, d, 11);
            let mut portable = vec![0.0; row.queries.len()];
            attend_with::<Portable>(&row.head(), &mut portable, &mut Scratch::default());
            let mut fast = vec![0.0; row.queries.len()];
            // SAFETY: the CPU has AVX-512F (checked above).
            unsafe { avx512::attend(&row.head(), &mut fast, &mut Scratch::default()) };
            assert!(
                fast.iter()
                    .zip(&portable)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "d {d} seq {seq} past {past} pad {pad}"
            );
        }
        // A NaN in the cache (a broken model) reaches the queries that see it on both paths.
        let mut row = Row::new(0, 20, 3, 16, 5);
        row.keys[4 * 16] = f32::NAN;
        let mut portable = vec![0.0; row.queries.len()];
        attend_with::<Portable>(&row.head(), &mut portable, &mut Scratch::default());
        let mut fast = vec![0.0; row.queries.len()];
        // SAFETY: as above.
        unsafe { avx512::attend(&row.head(), &mut fast, &mut Scratch::default()) };
        assert!(portable.iter().all(|x| x.is_nan()), "portable {portable:?}");
        assert!(fast.iter().all(|x| x.is_nan()), "avx512 {fast:?}");
    }
}
