/*
 * A multi-turn NPC dialogue through the gptrt C API: a persona prefilled once and forked into NPCs,
 * turns streamed through the poll API that run only their new tokens, turn-by-turn replies equal
 * to one pass over the whole transcript, save to a buffer and restore (with and without the KV
 * cache), damaged states refused with the session still usable, and batched sessions.
 *
 *   dialogue_test MODEL_DIR [quick]
 *
 * `quick` (for valgrind, where each forward pass is slow) runs the NPC dialogue once (sampled)
 * with two NPCs instead of greedy and sampled with three.
 *
 * Ends with `N passed, M failed` and exits 1 on any failure (sdk/gptrt-capi/tests/dialogue.rs runs
 * it; scripts/test-c.sh runs it under valgrind).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gptrt.h"

static int passed = 0;
static int failed = 0;

#define CHECK(cond, ...)                                                                   \
    do {                                                                                   \
        if (cond) {                                                                        \
            passed++;                                                                      \
        } else {                                                                           \
            failed++;                                                                      \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                    \
            printf(__VA_ARGS__);                                                           \
            printf(" [last error: %s]\n", gptrt_last_error_message());                     \
        }                                                                                  \
    } while (0)

#define EXPECT(call, want)                                                                 \
    do {                                                                                   \
        gptrt_status_t got_ = (call);                                                      \
        CHECK(got_ == (want), "%s returned %s, expected %s", #call, gptrt_status_name(got_), \
              gptrt_status_name(want));                                                    \
    } while (0)

#define OK(call) EXPECT(call, GPTRT_OK)

enum { MAX_IDS = 512, MAX_TEXT = 4096, NPCS = 3, TURNS = 3 };

static const char *PERSONA = "A quiet innkeeper who answers in riddles.";
static const char *LINES[TURNS] = {"\nUser: hello\nBot:", "\nUser: any rooms?\nBot:",
                                   "\nUser: how much?\nBot:"};

typedef struct {
    uint32_t ids[MAX_IDS];
    size_t count;
    char text[MAX_TEXT];
} reply_t;

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static gptrt_generation_options_t *options_for(size_t max_new, int sample) {
    gptrt_generation_options_t *options = NULL;
    OK(gptrt_generation_options_new(&options));
    OK(gptrt_generation_options_set_max_new_tokens(options, max_new));
    if (sample) {
        OK(gptrt_generation_options_set_do_sample(options, true));
        OK(gptrt_generation_options_set_seed(options, 11));
    }
    return options;
}

/* Poll a started turn to its end, as a frame loop would: text and ids, never blocking. */
static void poll_turn(gptrt_session_t *session, reply_t *reply) {
    size_t text_len = 0;
    reply->count = 0;
    for (;;) {
        gptrt_session_state_t text_state = GPTRT_SESSION_IDLE, ids_state = GPTRT_SESSION_IDLE;
        size_t n = 0, got = 0;
        OK(gptrt_session_poll(session, reply->text + text_len, MAX_TEXT - text_len, &n, &text_state));
        text_len += n;
        OK(gptrt_session_poll_tokens(session, reply->ids + reply->count, MAX_IDS - reply->count, &got,
                                     &ids_state));
        reply->count += got;
        if (text_state != GPTRT_SESSION_RUNNING && ids_state != GPTRT_SESSION_RUNNING) {
            CHECK(text_state == GPTRT_SESSION_FINISHED, "turn state %d", (int)text_state);
            break;
        }
        sleep_ms(1);
    }
}

/* The reply one pass over `ids` gives: a fresh session handed the whole transcript. */
static void one_pass(gptrt_model_t *model, const uint32_t *ids, size_t count,
                     const gptrt_generation_options_t *options, reply_t *reply) {
    gptrt_session_t *fresh = NULL;
    OK(gptrt_session_new(model, &fresh));
    size_t kept = 99;
    OK(gptrt_session_set_tokens(fresh, ids, count, &kept));
    CHECK(kept == 0, "a fresh session kept %zu tokens", kept);
    OK(gptrt_session_generate_turn(fresh, options, NULL, NULL));
    OK(gptrt_session_token_ids(fresh, reply->ids, MAX_IDS, &reply->count));
    gptrt_session_free(fresh);
}

static size_t context_ids(gptrt_session_t *session, uint32_t *ids) {
    size_t count = 0;
    OK(gptrt_session_context_tokens(session, ids, MAX_IDS, &count));
    return count;
}

static int npc_count = NPCS;

static void test_npcs(gptrt_model_t *model, int sample) {
    gptrt_generation_options_t *options = options_for(6, sample);
    gptrt_session_t *persona = NULL;
    OK(gptrt_session_new(model, &persona));
    size_t persona_tokens = 0, ran = 0;
    OK(gptrt_session_append_text(persona, PERSONA, &persona_tokens));
    OK(gptrt_session_prefill(persona, &ran));
    CHECK(ran == persona_tokens && ran > 0, "prefill ran %zu of %zu", ran, persona_tokens);

    gptrt_session_t *npcs[NPCS] = {NULL};
    for (int n = 0; n < npc_count; n++) {
        OK(gptrt_session_fork(persona, &npcs[n]));
        OK(gptrt_session_reseed(npcs[n], (uint64_t)n));
        size_t length = 0, cached = 0;
        uint64_t run = 1;
        OK(gptrt_session_context_counts(npcs[n], &length, &cached, &run));
        CHECK(length == persona_tokens && cached == persona_tokens && run == 0,
              "fork %d: %zu tokens, %zu cached, %llu run", n, length, cached, (unsigned long long)run);
    }
    for (int turn = 0; turn < TURNS; turn++) {
        static uint32_t full[NPCS][MAX_IDS];
        size_t full_count[NPCS], added[NPCS];
        uint64_t before[NPCS];
        for (int n = 0; n < npc_count; n++) {
            OK(gptrt_session_append_text(npcs[n], LINES[turn], &added[n]));
            full_count[n] = context_ids(npcs[n], full[n]);
            OK(gptrt_session_context_counts(npcs[n], NULL, NULL, &before[n]));
            OK(gptrt_session_start_turn(npcs[n], options));
        }
        for (int n = 0; n < npc_count; n++) {
            static reply_t streamed, expected;
            poll_turn(npcs[n], &streamed);
            one_pass(model, full[n], full_count[n], options, &expected);
            CHECK(streamed.count == expected.count &&
                      memcmp(streamed.ids, expected.ids, streamed.count * sizeof(uint32_t)) == 0,
                  "npc %d turn %d (sample %d): turn-by-turn differs from one pass", n, turn, sample);
            uint64_t after = 0;
            OK(gptrt_session_context_counts(npcs[n], NULL, NULL, &after));
            /* the new line, the last reply's last token (from turn 2 on), one per further token */
            size_t want = added[n] + (turn > 0 ? 1 : 0) + streamed.count - 1;
            CHECK(after - before[n] == want, "npc %d turn %d ran %llu positions, expected %zu", n,
                  turn, (unsigned long long)(after - before[n]), want);
        }
    }
    for (int n = 0; n < npc_count; n++) {
        gptrt_session_free(npcs[n]);
    }
    gptrt_session_free(persona);
    gptrt_generation_options_free(options);
}

static void test_save_restore(gptrt_model_t *model) {
    gptrt_generation_options_t *options = options_for(5, 1);
    gptrt_session_t *npc = NULL;
    OK(gptrt_session_new(model, &npc));
    OK(gptrt_session_reseed(npc, 5));
    OK(gptrt_session_append_text(npc, PERSONA, NULL));
    OK(gptrt_session_append_text(npc, LINES[0], NULL));
    OK(gptrt_session_generate_turn(npc, options, NULL, NULL));

    int kvs[3] = {GPTRT_SAVED_KV_NONE, GPTRT_SAVED_KV_F32, GPTRT_SAVED_KV_F16};
    uint8_t *states[3] = {NULL};
    size_t sizes[3] = {0};
    for (int k = 0; k < 3; k++) {
        EXPECT(gptrt_session_save(npc, kvs[k], NULL, 0, &sizes[k]), GPTRT_ERROR_BUFFER_TOO_SMALL);
        states[k] = malloc(sizes[k]);
        size_t written = 0;
        OK(gptrt_session_save(npc, kvs[k], states[k], sizes[k], &written));
        CHECK(written == sizes[k], "saved %zu of %zu bytes", written, sizes[k]);
    }
    CHECK(sizes[0] < sizes[2] && sizes[2] < sizes[1], "sizes %zu %zu %zu", sizes[0], sizes[1],
          sizes[2]);
    EXPECT(gptrt_session_save(npc, 7, NULL, 0, &sizes[0]), GPTRT_ERROR_INVALID_ARGUMENT);

    /* continuing directly */
    static reply_t direct, again;
    OK(gptrt_session_append_text(npc, LINES[1], NULL));
    OK(gptrt_session_generate_turn(npc, options, NULL, NULL));
    OK(gptrt_session_token_ids(npc, direct.ids, MAX_IDS, &direct.count));

    for (int k = 0; k < 3; k++) {
        gptrt_session_t *restored = NULL;
        OK(gptrt_session_new(model, &restored));
        OK(gptrt_session_restore(restored, states[k], sizes[k]));
        size_t cached = 0;
        OK(gptrt_session_context_counts(restored, NULL, &cached, NULL));
        CHECK((k == 0) == (cached == 0), "kv %d: %zu cached after restore", k, cached);
        OK(gptrt_session_append_text(restored, LINES[1], NULL));
        OK(gptrt_session_start_turn(restored, options));
        poll_turn(restored, &again);
        CHECK(again.count == direct.count &&
                  memcmp(again.ids, direct.ids, again.count * sizeof(uint32_t)) == 0,
              "kv %d: restore + continue differs from continuing", k);
        gptrt_session_free(restored);
    }

    /* damaged and truncated states: refused, the session keeps what it held */
    size_t before = 0, after = 0;
    OK(gptrt_session_context_counts(npc, &before, NULL, NULL));
    states[1][sizes[1] / 2] ^= 0x10;
    EXPECT(gptrt_session_restore(npc, states[1], sizes[1]), GPTRT_ERROR_SAVED_STATE);
    CHECK(strstr(gptrt_last_error_message(), "checksum") != NULL, "damaged: %s",
          gptrt_last_error_message());
    EXPECT(gptrt_session_restore(npc, states[0], sizes[0] - 3), GPTRT_ERROR_SAVED_STATE);
    CHECK(strstr(gptrt_last_error_message(), "truncated") != NULL, "truncated: %s",
          gptrt_last_error_message());
    EXPECT(gptrt_session_restore(npc, NULL, 10), GPTRT_ERROR_NULL_POINTER);
    OK(gptrt_session_context_counts(npc, &after, NULL, NULL));
    CHECK(before == after, "a refused restore changed the session (%zu -> %zu)", before, after);
    OK(gptrt_session_append_text(npc, LINES[2], NULL));
    OK(gptrt_session_generate_turn(npc, options, NULL, NULL));

    /* rewind: back to before the last turn, nothing runs again */
    OK(gptrt_session_rewind(npc, before));
    size_t cached = 0;
    OK(gptrt_session_context_counts(npc, &after, &cached, NULL));
    CHECK(after == before && cached == before, "rewind: %zu tokens, %zu cached", after, cached);

    for (int k = 0; k < 3; k++) {
        free(states[k]);
    }
    gptrt_session_free(npc);
    gptrt_generation_options_free(options);
}

static void test_batched(gptrt_model_t *model) {
    gptrt_generation_options_t *options = options_for(5, 0);
    gptrt_batcher_t *batcher = NULL;
    OK(gptrt_batcher_new(model, &batcher));
    gptrt_session_t *sessions[2] = {NULL};
    for (int s = 0; s < 2; s++) {
        OK(gptrt_session_new_batched(batcher, &sessions[s]));
        OK(gptrt_session_append_text(sessions[s], PERSONA, NULL));
    }
    for (int turn = 0; turn < 2; turn++) {
        static uint32_t full[2][MAX_IDS];
        size_t counts[2];
        for (int s = 0; s < 2; s++) {
            OK(gptrt_session_append_text(sessions[s], LINES[turn + s], NULL));
            counts[s] = context_ids(sessions[s], full[s]);
            OK(gptrt_session_start_turn(sessions[s], options));
        }
        for (int s = 0; s < 2; s++) {
            static reply_t streamed, expected;
            poll_turn(sessions[s], &streamed);
            one_pass(model, full[s], counts[s], options, &expected);
            CHECK(streamed.count == expected.count &&
                      memcmp(streamed.ids, expected.ids, streamed.count * sizeof(uint32_t)) == 0,
                  "batched session %d turn %d differs from one pass", s, turn);
        }
    }
    for (int s = 0; s < 2; s++) {
        gptrt_session_free(sessions[s]);
    }
    gptrt_batcher_free(batcher);
    gptrt_generation_options_free(options);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL_DIR\n", argv[0]);
        return 2;
    }
    gptrt_runtime_t *runtime = NULL;
    gptrt_model_t *model = NULL;
    gptrt_status_t status = gptrt_runtime_new(NULL, &runtime);
    if (status == GPTRT_OK) {
        status = gptrt_model_load(runtime, argv[1], &model);
    }
    if (status != GPTRT_OK) {
        fprintf(stderr, "setup failed: %s: %s\n", gptrt_status_name(status), gptrt_last_error_message());
        return 1;
    }
    int quick = argc > 2 && strcmp(argv[2], "quick") == 0;
    if (quick) {
        npc_count = 2;
    } else {
        test_npcs(model, 0);
    }
    test_npcs(model, 1);
    test_save_restore(model);
    test_batched(model);
    gptrt_model_free(model);
    gptrt_runtime_free(runtime);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
