//! The candidates for the next token, and the one order every part of gptrt sorts them in.

/// One token under consideration. Same layout as the plugin ABI's `GptrtCandidate`, so sampler
/// plugins work on the host's buffer without a copy.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// Token id.
    pub id: u32,
    /// Current (processed) logit.
    pub logit: f32,
    /// Probability; valid only after [`Candidates::softmax`].
    pub p: f32,
}

/// The candidates for the next token. Starts as the whole vocabulary in id order.
#[derive(Debug, Clone, Default)]
pub struct Candidates {
    items: Vec<Candidate>,
    /// Items are sorted by descending logit (ties: lower id first).
    sorted: bool,
    /// `items[i].id == i` for every i (the whole vocabulary in id order).
    indexed: bool,
    /// Set by a selector: the index of the chosen item.
    selected: Option<usize>,
    /// Scratch space reused between tokens.
    scratch: Vec<Candidate>,
}

/// The one ranking everywhere in gptrt (the chain, greedy, beam search, logprobs): the higher
/// score first, the lower id (or index) first on ties, as `torch.topk` orders them.
pub(crate) fn best_first<I: Ord>(a: (f32, I), b: (f32, I)) -> std::cmp::Ordering {
    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
}

fn by_logit_desc(a: &Candidate, b: &Candidate) -> std::cmp::Ordering {
    best_first((a.logit, a.id), (b.logit, b.id))
}

impl Candidates {
    /// Candidates for a whole vocabulary of logits (reuses the buffers).
    pub fn reset(&mut self, logits: &[f32]) {
        self.items.clear();
        self.items
            .extend(logits.iter().enumerate().map(|(id, &logit)| Candidate {
                id: id as u32,
                logit,
                p: 0.0,
            }));
        self.sorted = false;
        self.indexed = true;
        self.selected = None;
    }

    /// Build from explicit candidates (any order).
    pub fn from_items(items: Vec<Candidate>) -> Candidates {
        let indexed = items.iter().enumerate().all(|(i, c)| c.id as usize == i);
        Candidates {
            items,
            sorted: false,
            indexed,
            selected: None,
            scratch: Vec::new(),
        }
    }

    /// The candidates, in their current order.
    pub fn items(&self) -> &[Candidate] {
        &self.items
    }

    /// Mutable access; marks the order as unknown.
    pub fn items_mut(&mut self) -> &mut Vec<Candidate> {
        self.sorted = false;
        self.indexed = false;
        self.selected = None;
        &mut self.items
    }

    /// Number of candidates.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether no candidate is left.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Whether the items are sorted by descending logit.
    pub fn is_sorted(&self) -> bool {
        self.sorted
    }

    /// Whether the items are the whole vocabulary in id order (`items()[i].id == i`).
    pub fn is_indexed(&self) -> bool {
        self.indexed
    }

    /// The candidate for a token id, if it is still a candidate. Its logit may change: the
    /// candidates count as unsorted afterwards.
    pub fn get_mut(&mut self, id: u32) -> Option<&mut Candidate> {
        self.sorted = false;
        self.selected = None;
        if self.indexed {
            return self.items.get_mut(id as usize);
        }
        self.items.iter_mut().find(|c| c.id == id)
    }

    /// Rewrite every logit (`f` sees the candidate); ids stay, the order is unknown afterwards.
    pub fn set_logits(&mut self, mut f: impl FnMut(&Candidate) -> f32) {
        self.items.iter_mut().for_each(|c| c.logit = f(c));
        self.sorted = false;
        self.selected = None;
    }

    /// Apply `f`, which must be strictly increasing over the logits present (a positive scale, a
    /// shift), to every logit: the order, and so every flag, stays.
    pub fn map_logits_keeping_order(&mut self, mut f: impl FnMut(f32) -> f32) {
        self.items.iter_mut().for_each(|c| c.logit = f(c.logit));
    }

    /// Replace the candidates with what `build` writes into `out` from the current ones (in any
    /// order; `out` is a reused buffer, empty on entry).
    pub(crate) fn rebuild(&mut self, build: impl FnOnce(&[Candidate], &mut Vec<Candidate>)) {
        self.scratch.clear();
        build(&self.items, &mut self.scratch);
        std::mem::swap(&mut self.items, &mut self.scratch);
        self.sorted = false;
        self.indexed = false;
        self.selected = None;
    }

    /// Softmax over the candidates, then keep the most probable ones, best first, while
    /// `keep(mass_before, candidate)` says so (at least `min_keep`). Selection grows
    /// geometrically, so a peaked distribution never sorts the whole vocabulary.
    pub(crate) fn keep_by_cumulative_mass(
        &mut self,
        min_keep: usize,
        keep: impl Fn(f32, &Candidate) -> bool,
    ) {
        self.softmax();
        let total = self.len();
        let mut window = 64.min(total);
        let kept = loop {
            let top = self.top_scratch(window);
            let mut mass = 0.0f32;
            let mut kept = None;
            for (i, c) in top.iter().enumerate() {
                if i >= min_keep && !keep(mass, c) {
                    kept = Some(i);
                    break;
                }
                mass += c.p;
            }
            match kept {
                Some(n) => break n,
                None if window == total => break total,
                None => window = (window * 8).min(total),
            }
        };
        // The scratch buffer holds the best `window` candidates, best first.
        self.scratch.truncate(kept);
        std::mem::swap(&mut self.items, &mut self.scratch);
        self.sorted = true;
        self.indexed = false;
        self.selected = None;
    }

    /// Add `delta` to a token's logit (no-op when it is no longer a candidate).
    pub fn add_logit(&mut self, id: u32, delta: f32) {
        if let Some(c) = self.get_mut(id) {
            c.logit += delta;
        }
    }

    /// Ban a token: its logit becomes `-inf`.
    pub fn ban(&mut self, id: u32) {
        if let Some(c) = self.get_mut(id) {
            c.logit = f32::NEG_INFINITY;
        }
    }

    /// Sort by descending logit, lower id first on ties.
    pub fn sort(&mut self) {
        if !self.sorted {
            self.items.sort_unstable_by(by_logit_desc);
            self.sorted = true;
            self.indexed = false;
        }
    }

    /// Keep the `n` best candidates (sorted), using selection rather than a full sort.
    pub fn keep_top(&mut self, n: usize) {
        if n < self.items.len() {
            self.items.select_nth_unstable_by(n, by_logit_desc);
            self.items.truncate(n);
            self.sorted = false;
            self.indexed = false;
        }
        self.sort();
    }

    /// Compute `p` for every candidate (softmax over the current logits, in f32 like torch).
    pub fn softmax(&mut self) {
        let max = self
            .items
            .iter()
            .map(|c| c.logit)
            .fold(f32::NEG_INFINITY, f32::max);
        if max == f32::NEG_INFINITY {
            // Every token is banned: uniform, so warpers keep working; the chain refuses the
            // choice afterwards.
            let p = 1.0 / self.items.len().max(1) as f32;
            self.items.iter_mut().for_each(|c| c.p = p);
            return;
        }
        let mut sum = 0.0f32;
        for c in &mut self.items {
            c.p = (c.logit - max).exp();
            sum += c.p;
        }
        for c in &mut self.items {
            c.p /= sum;
        }
    }

    /// Drop every candidate for which `remove` says so.
    pub fn retain(&mut self, mut keep: impl FnMut(&Candidate) -> bool) {
        let before = self.items.len();
        self.items.retain(|c| keep(c));
        if self.items.len() != before {
            self.indexed = false;
            self.selected = None;
        }
    }

    /// Record the selector's choice (an index into [`Candidates::items`]).
    pub fn select(&mut self, index: usize) {
        self.selected = Some(index);
    }

    /// The chosen token, once a selector ran.
    pub fn selected(&self) -> Option<u32> {
        self.selected_candidate().map(|c| c.id)
    }

    /// The chosen candidate, once a selector ran.
    pub fn selected_candidate(&self) -> Option<&Candidate> {
        self.selected.and_then(|i| self.items.get(i))
    }

    /// Write the candidates back as a full logits vector (`-inf` for dropped tokens).
    pub fn to_logits(&self, vocab_size: usize) -> Vec<f32> {
        let mut out = vec![f32::NEG_INFINITY; vocab_size];
        for c in &self.items {
            if let Some(slot) = out.get_mut(c.id as usize) {
                *slot = c.logit;
            }
        }
        out
    }

    /// The `n` best candidates by logit, best first, in a reused scratch buffer.
    pub(crate) fn top_scratch(&mut self, n: usize) -> &[Candidate] {
        self.scratch.clear();
        self.scratch.extend_from_slice(&self.items);
        let n = n.min(self.scratch.len());
        if n < self.scratch.len() && n > 0 {
            self.scratch.select_nth_unstable_by(n - 1, by_logit_desc);
            self.scratch.truncate(n);
        }
        self.scratch.sort_unstable_by(by_logit_desc);
        &self.scratch
    }
}
