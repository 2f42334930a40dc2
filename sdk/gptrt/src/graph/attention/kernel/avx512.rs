//! The block operations with AVX-512 intrinsics: the portable arithmetic, instruction for
//! instruction.

use std::arch::x86_64::*;

use super::{
    attend_with, BlockOps, Head, Lanes, Scratch, BLOCK, EXP_FLOOR, EXP_POLY, LANES, LN2_HI, LN2_LO,
    ROUND,
};

/// Output columns accumulated together (one register each).
const COLUMNS_AT_ONCE: usize = 16;

#[target_feature(enable = "avx512f")]
pub(super) unsafe fn attend(head: &Head<'_>, out: &mut [f32], scratch: &mut Scratch) {
    attend_with::<Avx512>(head, out, scratch);
}

struct Avx512;

impl BlockOps for Avx512 {
    #[inline(always)]
    fn dot_products(queries: &[Lanes], keys: &[f32], scores: &mut [Lanes]) {
        let d = queries.len();
        assert!(keys.len() == scores.len() * d && scores.len() <= BLOCK);
        // SAFETY: only called from `attend`, compiled for AVX-512F; every pointer stays inside
        // its slice (asserted above).
        unsafe {
            let q = queries.as_ptr().cast::<f32>();
            let k = keys.as_ptr();
            let mut acc = [_mm512_setzero_ps(); BLOCK];
            if scores.len() == BLOCK {
                for i in 0..d {
                    let column = _mm512_loadu_ps(q.add(i * LANES));
                    for (key, acc) in acc.iter_mut().enumerate() {
                        *acc = _mm512_fmadd_ps(_mm512_set1_ps(*k.add(key * d + i)), column, *acc);
                    }
                }
            } else {
                for i in 0..d {
                    let column = _mm512_loadu_ps(q.add(i * LANES));
                    for (key, acc) in acc.iter_mut().enumerate().take(scores.len()) {
                        *acc = _mm512_fmadd_ps(_mm512_set1_ps(*k.add(key * d + i)), column, *acc);
                    }
                }
            }
            for (score, acc) in scores.iter_mut().zip(&acc) {
                _mm512_storeu_ps(score.as_mut_ptr(), *acc);
            }
        }
    }

    #[inline(always)]
    fn exponentiate(scores: &mut [Lanes], max: &Lanes) -> Lanes {
        // SAFETY: as above; every load and store is one whole row.
        unsafe {
            let max = _mm512_loadu_ps(max.as_ptr());
            let round = _mm512_set1_ps(ROUND);
            let mut sums = _mm512_setzero_ps();
            for row in scores.iter_mut() {
                let s = _mm512_loadu_ps(row.as_ptr());
                // a NaN in either operand gives the second: NaN stays NaN, as in `exp`
                let x = _mm512_max_ps(_mm512_set1_ps(EXP_FLOOR), _mm512_sub_ps(s, max));
                let scaled = _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E));
                let n = _mm512_sub_ps(_mm512_add_ps(scaled, round), round);
                let r = _mm512_fmadd_ps(n, _mm512_set1_ps(-LN2_HI), x);
                let r = _mm512_fmadd_ps(n, _mm512_set1_ps(-LN2_LO), r);
                let mut p = _mm512_set1_ps(EXP_POLY[0]);
                for &c in &EXP_POLY[1..] {
                    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
                }
                let two_n = _mm512_slli_epi32::<23>(_mm512_add_epi32(
                    _mm512_cvtps_epi32(n),
                    _mm512_set1_epi32(127),
                ));
                let p = _mm512_mul_ps(p, _mm512_castsi512_ps(two_n));
                let seen = _mm512_cmp_ps_mask::<_CMP_NEQ_UQ>(s, _mm512_set1_ps(f32::NEG_INFINITY));
                let p = _mm512_maskz_mov_ps(seen, p);
                _mm512_storeu_ps(row.as_mut_ptr(), p);
                sums = _mm512_add_ps(sums, p);
            }
            let mut out = [0.0; LANES];
            _mm512_storeu_ps(out.as_mut_ptr(), sums);
            out
        }
    }

    #[inline(always)]
    fn accumulate(sums: &mut [Lanes], rescale: Option<&Lanes>, probs: &[Lanes], values: &[f32]) {
        let d = sums.len();
        assert!(values.len() == probs.len() * d);
        // SAFETY: as above; every pointer stays inside its slice (asserted).
        unsafe {
            let o = sums.as_mut_ptr().cast::<f32>();
            let v = values.as_ptr();
            let mut first = 0;
            while first < d {
                let width = COLUMNS_AT_ONCE.min(d - first);
                let mut acc = [_mm512_setzero_ps(); COLUMNS_AT_ONCE];
                for (c, acc) in acc.iter_mut().enumerate().take(width) {
                    *acc = _mm512_loadu_ps(o.add((first + c) * LANES));
                }
                if let Some(rescale) = rescale {
                    let r = _mm512_loadu_ps(rescale.as_ptr());
                    for acc in acc.iter_mut().take(width) {
                        *acc = _mm512_mul_ps(*acc, r);
                    }
                }
                if width == COLUMNS_AT_ONCE {
                    for (k, p) in probs.iter().enumerate() {
                        let p = _mm512_loadu_ps(p.as_ptr());
                        let value = v.add(k * d + first);
                        for (c, acc) in acc.iter_mut().enumerate() {
                            *acc = _mm512_fmadd_ps(p, _mm512_set1_ps(*value.add(c)), *acc);
                        }
                    }
                } else {
                    for (k, p) in probs.iter().enumerate() {
                        let p = _mm512_loadu_ps(p.as_ptr());
                        let value = v.add(k * d + first);
                        for (c, acc) in acc.iter_mut().enumerate().take(width) {
                            *acc = _mm512_fmadd_ps(p, _mm512_set1_ps(*value.add(c)), *acc);
                        }
                    }
                }
                for (c, acc) in acc.iter().enumerate().take(width) {
                    _mm512_storeu_ps(o.add((first + c) * LANES), *acc);
                }
                first += width;
            }
        }
    }

    #[inline(always)]
    fn prefetch(keys: *const f32, values: *const f32, len: usize) {
        for line in (0..len).step_by(16) {
            // SAFETY: a prefetch never faults; the addresses are inside the cache anyway.
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(keys.wrapping_add(line).cast());
                _mm_prefetch::<_MM_HINT_T0>(values.wrapping_add(line).cast());
            }
        }
    }
}
