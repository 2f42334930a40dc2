#!/usr/bin/env bash
# A long scripted chat that overflows the window many times: tokens run and time to first token per
# turn with the default overflow rule (drop down to half the turns' room, --overflow-keep 0.5)
# against dropping only what each turn needs (--overflow-keep 1).
#   benchmarks/dialogue_overflow.sh [MODEL_DIR] [TURNS]      (cargo build --release -p gptrt-cli first)
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-models/demo-dialogue}
turns=${2:-40}
script=$(mktemp)
trap 'rm -f "$script"' EXIT
lines=("Good morning! Did you sleep well?" "What shall we do today?"
  "Is the weather fine enough for a walk?" "Have you heard from our brother?"
  "What do you think of the new neighbours?" "Shall we visit the Middletons?"
  "Do you like the colonel?" "Why are you so quiet?" "Tell me about your drawing."
  "What did mother say?")
for ((i = 0; i < turns; i++)); do echo "${lines[i % ${#lines[@]}]}"; done > "$script"
for keep in 0.5 1; do
  target/release/gptrt chat --model "$model" \
    --persona "You are Elinor Dashwood, talking with your sister Marianne at Barton Cottage." \
    --script "$script" --max-new-tokens 40 --seed 7 --overflow-keep "$keep" --json 2>/dev/null |
    python3 -c '
import json, statistics, sys
turns = [json.loads(line) for line in sys.stdin]
ttft = [t["time_to_first_token_ms"] for t in turns]
print(json.dumps({"overflow_keep": float(sys.argv[1]), "turns": len(turns),
                  "overflows": sum(1 for t in turns if t["dropped_turns"]),
                  "tokens_run": sum(t["prompt_tokens_processed"] for t in turns),
                  "ttft_ms_mean": round(statistics.mean(ttft), 1),
                  "ttft_ms_median": round(statistics.median(ttft), 1),
                  "ttft_ms_max": round(max(ttft), 1)}))' "$keep"
done
