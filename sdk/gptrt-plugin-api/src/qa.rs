//! The pieces of question answering that the SDK (`gptrt::tasks`) and `plugins/qa` share: the
//! prompt and the candidate answer spans of extractive answering.

/// The prompt: the context, then the question, then `Answer:` (each trimmed).
pub const QA_TEMPLATE: &str = "{context}\nQuestion: {question}\nAnswer:";

/// [`QA_TEMPLATE`] filled in. The context and question are placed as they are, so text in them
/// that looks like a placeholder stays as written.
pub fn qa_prompt(context: &str, question: &str) -> String {
    // Split once around each placeholder: replacing them one after the other would also replace
    // a `{question}` that the context brought in.
    let (before, rest) = QA_TEMPLATE
        .split_once("{context}")
        .unwrap_or((QA_TEMPLATE, ""));
    let (between, after) = rest.split_once("{question}").unwrap_or((rest, ""));
    format!(
        "{before}{}{between}{}{after}",
        context.trim(),
        question.trim()
    )
}

/// Byte ranges of every run of 1..=`max_words` whitespace-separated words of `text`, plus each
/// run without its trailing punctuation, each distinct text once (its first occurrence).
pub fn answer_spans(text: &str, max_words: usize) -> Vec<(usize, usize)> {
    let mut words = Vec::new();
    let mut start = None;
    for (at, c) in text
        .char_indices()
        .chain(std::iter::once((text.len(), ' ')))
    {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                words.push((s, at));
                start = None;
            }
            (false, None) => start = Some(at),
            _ => {}
        }
    }
    let mut seen = std::collections::HashSet::new();
    let mut spans = Vec::new();
    for first in 0..words.len() {
        for last in first..words.len().min(first + max_words) {
            let (begin, end) = (words[first].0, words[last].1);
            let trimmed = begin
                + text[begin..end]
                    .trim_end_matches(|c: char| c.is_ascii_punctuation() && c != '%' && c != '$')
                    .len();
            for stop in [end, trimmed] {
                if stop > begin && seen.insert(&text[begin..stop]) {
                    spans.push((begin, stop));
                }
            }
        }
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_are_word_runs_with_and_without_trailing_punctuation() {
        let text = "Paris is big. Paris!";
        let spans: Vec<&str> = answer_spans(text, 2)
            .into_iter()
            .map(|(s, e)| &text[s..e])
            .collect();
        assert_eq!(
            spans,
            [
                "Paris",
                "Paris is",
                "is",
                "is big.",
                "is big",
                "big.",
                "big",
                "big. Paris!",
                "big. Paris",
                "Paris!"
            ]
        );
    }

    #[test]
    fn the_prompt_is_the_template_and_keeps_placeholder_like_text() {
        assert_eq!(
            qa_prompt(" The sky is blue. ", "What colour? "),
            QA_TEMPLATE
                .replace("{context}", "The sky is blue.")
                .replace("{question}", "What colour?")
        );
        assert_eq!(
            qa_prompt("Write {question} here.", "Where?"),
            "Write {question} here.\nQuestion: Where?\nAnswer:"
        );
    }
}
