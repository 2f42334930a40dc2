/*
 * A game-loop host: 8 NPCs talk at once, all sharing one model, advanced from a single-threaded
 * 60 Hz frame loop with gptrt's poll API. Generation runs on gptrt's worker threads; each frame
 * the loop takes whatever text is ready from every NPC without ever waiting for it, and measures
 * how long it spent inside gptrt calls. At the end it prints the worst and mean of that time per
 * frame and what each NPC said.
 *
 *   game_loop [MODEL_DIR] [LINES_PER_NPC] [MAX_NEW_TOKENS] [batched]
 *
 * With `batched`, the NPCs' sessions share one gptrt_batcher_t: every NPC that is talking advances
 * in the same forward pass (one worker thread instead of eight taking turns), and the batcher's
 * statistics are printed at the end. Nothing else in the loop changes.
 *
 * MODEL_DIR defaults to $GPTRT_MODEL, else the tiny test model (run from the repository root).
 * Build lines: README.md, "C and C++".
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gptrt.h"

enum { NPC_COUNT = 8, TEXT_CAPACITY = 16384, MAX_FRAMES = 60 * 120 };

static const long FRAME_NS = 16666667L; /* 60 Hz */

typedef struct {
    const char *name;
    const char *opening;
    gptrt_session_t *session;
    char text[TEXT_CAPACITY]; /* everything the NPC said, line after line */
    size_t len;
    int lines;
    size_t tokens;
    int done;
} npc_t;

static npc_t npcs[NPC_COUNT] = {
    {"Guard", "Guard: Halt! Who goes there?", NULL, "", 0, 0, 0, 0},
    {"Innkeeper", "Innkeeper: Welcome, traveller. A room for the night?", NULL, "", 0, 0, 0, 0},
    {"Smith", "Smith: Fine steel, forged this very morning.", NULL, "", 0, 0, 0, 0},
    {"Bard", "Bard: Gather round, I have a song about the dragon.", NULL, "", 0, 0, 0, 0},
    {"Merchant", "Merchant: Silks and spices from across the sea!", NULL, "", 0, 0, 0, 0},
    {"Priest", "Priest: The old gods are restless tonight.", NULL, "", 0, 0, 0, 0},
    {"Child", "Child: Have you seen my cat? She ran off.", NULL, "", 0, 0, 0, 0},
    {"Stranger", "Stranger: You should not be here.", NULL, "", 0, 0, 0, 0},
};

/* Time spent inside gptrt calls during the current frame, in nanoseconds. */
static long long frame_gptrt_ns = 0;

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long long timed_start;
static gptrt_status_t timed_status;

/* Run one gptrt call and add its duration to this frame's gptrt time (the comma operator
 * sequences the clock reads around the call). */
#define TIMED(call)                                                                                \
    (timed_start = now_ns(), timed_status = (call), frame_gptrt_ns += now_ns() - timed_start,      \
     timed_status)

static void check(gptrt_status_t status, const char *what) {
    if (status != GPTRT_OK) {
        fprintf(stderr, "%s failed: %s: %s\n", what, gptrt_status_name(status), gptrt_last_error_message());
        exit(1);
    }
}

static void append(npc_t *npc, const char *text, size_t len) {
    if (npc->len + len >= TEXT_CAPACITY) {
        len = TEXT_CAPACITY - 1 - npc->len;
    }
    memcpy(npc->text + npc->len, text, len);
    npc->len += len;
    npc->text[npc->len] = '\0';
}

static int compare_ll(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    const char *model_dir = argc > 1 ? argv[1] : getenv("GPTRT_MODEL");
    int lines_per_npc = argc > 2 ? atoi(argv[2]) : 3;
    size_t max_new_tokens = argc > 3 ? (size_t)strtoul(argv[3], NULL, 10) : 24;
    int batched = argc > 4 && strcmp(argv[4], "batched") == 0;
    if (model_dir == NULL || model_dir[0] == '\0') {
        model_dir = "models/fixtures/tiny-random-gpt2/single";
    }
    if (lines_per_npc < 1) {
        lines_per_npc = 1;
    }

    /* One intra-op thread: generation keeps one core busy and leaves the other to the game. */
    gptrt_runtime_options_t runtime_options = gptrt_runtime_options_default();
    runtime_options.intra_threads = 1;
    gptrt_runtime_t *runtime = NULL;
    gptrt_model_t *model = NULL;
    gptrt_generation_options_t *options = NULL;
    gptrt_batcher_t *batcher = NULL;
    check(gptrt_runtime_new(&runtime_options, &runtime), "gptrt_runtime_new");
    check(gptrt_model_load(runtime, model_dir, &model), "gptrt_model_load");
    check(gptrt_generation_options_from_model(model, &options), "gptrt_generation_options_from_model");
    check(gptrt_generation_options_set_max_new_tokens(options, max_new_tokens), "max_new_tokens");
    check(gptrt_generation_options_set_do_sample(options, true), "do_sample");
    check(gptrt_generation_options_set_top_k(options, 40), "top_k");
    check(gptrt_generation_options_set_temperature(options, 0.9f), "temperature");
    const char *newline[] = {"\n"}; /* an NPC's line ends at the end of the line */
    check(gptrt_generation_options_set_stop_strings(options, newline, 1), "stop_strings");
    /* A long conversation keeps its most recent part when it outgrows the context window. */
    check(gptrt_generation_options_set_truncate_prompt(options, true), "truncate_prompt");

    /* One session per NPC, all over the same model: each with an idle worker thread of its own,
     * or all stepping together in one batcher. */
    if (batched) {
        check(gptrt_batcher_new(model, &batcher), "gptrt_batcher_new");
    }
    for (int i = 0; i < NPC_COUNT; i++) {
        if (batched) {
            check(gptrt_session_new_batched(batcher, &npcs[i].session), "gptrt_session_new_batched");
        } else {
            check(gptrt_session_new(model, &npcs[i].session), "gptrt_session_new");
        }
    }

    /* Loading is done: from here on every gptrt call is inside the frame loop and timed. */
    long long *frame_times = calloc(MAX_FRAMES, sizeof *frame_times);
    if (frame_times == NULL) {
        return 1;
    }
    int frames = 0;
    int remaining = NPC_COUNT;
    int failures = 0;
    long long started = now_ns();
    long long next_frame = started;
    int cancelled_npc = NPC_COUNT - 1;

    while (remaining > 0 && frames < MAX_FRAMES) {
        frame_gptrt_ns = 0;
        for (int i = 0; i < NPC_COUNT; i++) {
            npc_t *npc = &npcs[i];
            if (npc->done) {
                continue;
            }
            if (npc->lines == 0 && npc->len == 0) {
                /* First frame: every NPC starts talking (the seed makes each run repeatable). */
                check(TIMED(gptrt_generation_options_set_seed(options, (uint64_t)i)), "seed");
                check(TIMED(gptrt_session_start(npc->session, npc->opening, options)), "gptrt_session_start");
                append(npc, npc->opening, strlen(npc->opening));
                continue;
            }
            char chunk[256];
            size_t len = 0;
            gptrt_session_state_t state = GPTRT_SESSION_RUNNING;
            check(TIMED(gptrt_session_poll(npc->session, chunk, sizeof chunk, &len, &state)), "gptrt_session_poll");
            append(npc, chunk, len);
            if (state == GPTRT_SESSION_RUNNING) {
                continue;
            }
            /* The line is over (FINISHED, or FAILED: then the result calls report why). */
            size_t count = 0;
            gptrt_status_t status = TIMED(gptrt_session_token_ids(npc->session, NULL, 0, &count));
            if (status != GPTRT_OK && status != GPTRT_ERROR_BUFFER_TOO_SMALL) {
                fprintf(stderr, "NPC %d (%s): %s: %s\n", i, npc->name, gptrt_status_name(status),
                        gptrt_last_error_message());
                failures++;
                npc->done = 1;
                remaining--;
                continue;
            }
            gptrt_stop_reason_t reason = GPTRT_STOP_OTHER;
            check(TIMED(gptrt_session_stop_reason(npc->session, &reason)), "gptrt_session_stop_reason");
            npc->tokens += count;
            npc->lines += 1;
            char stop[48];
            snprintf(stop, sizeof stop, " [%s]\n", gptrt_stop_reason_name(reason));
            append(npc, stop, strlen(stop));
            if (npc->lines >= lines_per_npc || (i == cancelled_npc && reason == GPTRT_STOP_CANCELLED)) {
                npc->done = 1;
                remaining--;
                continue;
            }
            /* The NPC goes on: the next line continues the conversation. */
            char prompt[TEXT_CAPACITY + 64];
            snprintf(prompt, sizeof prompt, "%s%s:", npc->text, npc->name);
            append(npc, npc->name, strlen(npc->name));
            append(npc, ":", 1);
            check(TIMED(gptrt_session_start(npc->session, prompt, options)), "gptrt_session_start");
        }
        /* The player walks away from the stranger mid-sentence: cancel, never wait. */
        if (frames == 3) {
            check(TIMED(gptrt_session_cancel(npcs[cancelled_npc].session)), "gptrt_session_cancel");
        }
        frame_times[frames++] = frame_gptrt_ns;

        /* Sleep to the next 60 Hz tick (game logic and rendering would run here). */
        next_frame += FRAME_NS;
        long long now = now_ns();
        if (next_frame > now) {
            struct timespec ts = {(time_t)(next_frame / 1000000000LL), (long)(next_frame % 1000000000LL)};
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        } else {
            next_frame = now; /* a late frame does not make the next ones rush */
        }
    }
    double seconds = (double)(now_ns() - started) / 1e9;

    long long worst = 0, total = 0;
    for (int f = 0; f < frames; f++) {
        total += frame_times[f];
        if (frame_times[f] > worst) {
            worst = frame_times[f];
        }
    }
    qsort(frame_times, (size_t)frames, sizeof *frame_times, compare_ll);
    long long p99 = frames > 0 ? frame_times[(frames * 99) / 100 < frames ? (frames * 99) / 100 : frames - 1] : 0;
    size_t tokens = 0;
    for (int i = 0; i < NPC_COUNT; i++) {
        tokens += npcs[i].tokens;
    }

    for (int i = 0; i < NPC_COUNT; i++) {
        printf("--- NPC %d, %s (%d lines, %zu tokens)\n%s", i, npcs[i].name, npcs[i].lines, npcs[i].tokens,
               npcs[i].text);
    }
    printf("---\n");
    printf("npcs: %d, frames: %d, seconds: %.2f, tokens: %zu (%.0f tokens/s over all NPCs)\n", NPC_COUNT, frames,
           seconds, tokens, seconds > 0 ? (double)tokens / seconds : 0.0);
    printf("time inside gptrt calls per frame: worst %.3f ms, p99 %.3f ms, mean %.3f ms (frame budget 16.667 ms)\n",
           (double)worst / 1e6, (double)p99 / 1e6, frames > 0 ? (double)total / frames / 1e6 : 0.0);
    if (batcher != NULL) {
        char stats[256];
        size_t size = 0;
        check(gptrt_batcher_stats_json(batcher, stats, sizeof stats, &size), "gptrt_batcher_stats_json");
        printf("batcher: %s\n", stats);
    }

    for (int i = 0; i < NPC_COUNT; i++) {
        gptrt_session_free(npcs[i].session);
    }
    gptrt_batcher_free(batcher);
    free(frame_times);
    gptrt_generation_options_free(options);
    gptrt_model_free(model);
    gptrt_runtime_free(runtime);
    return remaining == 0 && failures == 0 ? 0 : 1;
}
