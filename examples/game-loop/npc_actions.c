/*
 * NPCs that act: each NPC's next action comes back as JSON matching a schema (the grammar plugin,
 * org.gptrt.grammar), so the game can act on it without parsing free text. Eight NPC sessions
 * over one model are polled from a frame loop as in game_loop.c; each turn's output is the JSON
 * alone and ends with stop reason grammar_complete.
 *
 *   npc_actions MODEL_DIR GRAMMAR_PLUGIN_LIBRARY [TURNS] [batched]
 *
 * GRAMMAR_PLUGIN_LIBRARY: target/debug/libgptrt_plugin_grammar.so after
 * `cargo build -p gptrt-plugin-grammar`. Build lines: README.md, "Constrained output".
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gptrt.h"

enum { NPC_COUNT = 8 };

/* What an NPC may do: the game's action vocabulary, a target, and bounded numbers. */
static const char *ACTION_SCHEMA =
    "{\"type\": \"object\", \"properties\": {"
    "\"action\": {\"enum\": [\"attack\", \"flee\", \"talk\", \"trade\", \"wait\"]},"
    "\"target\": {\"type\": [\"string\", \"null\"], \"maxLength\": 12},"
    "\"mood\": {\"enum\": [\"calm\", \"angry\", \"afraid\"]},"
    "\"steps\": {\"type\": \"integer\", \"minimum\": 0, \"maximum\": 9}},"
    "\"required\": [\"action\", \"target\", \"mood\", \"steps\"], \"additionalProperties\": false}";

static const char *NAMES[NPC_COUNT] = {"Guard", "Innkeeper", "Smith", "Bard",
                                       "Merchant", "Priest", "Child", "Stranger"};

static void check(gptrt_status_t status, const char *what) {
    if (status != GPTRT_OK) {
        fprintf(stderr, "%s failed: %s: %s\n", what, gptrt_status_name(status), gptrt_last_error_message());
        exit(1);
    }
}

static void sleep_frame(void) {
    struct timespec frame = {0, 16666667L}; /* 60 Hz */
    nanosleep(&frame, NULL);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL_DIR GRAMMAR_PLUGIN_LIBRARY [TURNS] [batched]\n", argv[0]);
        return 2;
    }
    int turns = argc > 3 ? atoi(argv[3]) : 2;
    int batched = argc > 4 && strcmp(argv[4], "batched") == 0;
    gptrt_runtime_t *runtime = NULL;
    gptrt_model_t *model = NULL;
    gptrt_plugin_host_t *host = NULL;
    gptrt_batcher_t *batcher = NULL;
    gptrt_generation_options_t *options = NULL;
    gptrt_session_t *sessions[NPC_COUNT] = {NULL};
    int done[NPC_COUNT] = {0}, turn[NPC_COUNT] = {0}, talking[NPC_COUNT] = {0};
    char text[NPC_COUNT][512];
    size_t len[NPC_COUNT] = {0};

    check(gptrt_runtime_new(NULL, &runtime), "gptrt_runtime_new");
    check(gptrt_model_load(runtime, argv[1], &model), "gptrt_model_load");
    check(gptrt_plugin_host_new(NULL, &host), "gptrt_plugin_host_new");
    check(gptrt_plugin_host_load(host, argv[2]), "gptrt_plugin_host_load");
    check(gptrt_generation_options_from_model(model, &options), "options");
    if (batched) {
        check(gptrt_batcher_new(model, &batcher), "gptrt_batcher_new");
    }
    for (int i = 0; i < NPC_COUNT; i++) {
        check(batched ? gptrt_session_new_batched(batcher, &sessions[i]) : gptrt_session_new(model, &sessions[i]),
              "session");
        /* A bad schema would fail here, while loading, not in the middle of the game. */
        check(gptrt_session_constrain(sessions[i], host, "json_schema", ACTION_SCHEMA), "gptrt_session_constrain");
    }

    int remaining = NPC_COUNT;
    for (int frame = 0; remaining > 0 && frame < 60 * 120; frame++) {
        for (int i = 0; i < NPC_COUNT; i++) {
            if (done[i]) continue;
            gptrt_session_state_t state = GPTRT_SESSION_IDLE;
            if (!talking[i]) {
                char prompt[128];
                snprintf(prompt, sizeof prompt, "The %s sees the player. The %s's next move:", NAMES[i], NAMES[i]);
                check(gptrt_generation_options_set_seed(options, (uint64_t)(i * 100 + turn[i])), "seed");
                check(gptrt_session_start(sessions[i], prompt, options), "gptrt_session_start");
                len[i] = 0;
                talking[i] = 1;
                continue;
            }
            char chunk[256];
            size_t got = 0;
            check(gptrt_session_poll(sessions[i], chunk, sizeof chunk, &got, &state), "gptrt_session_poll");
            if (len[i] + got < sizeof text[i]) {
                memcpy(text[i] + len[i], chunk, got);
                len[i] += got;
            }
            text[i][len[i]] = '\0';
            if (state == GPTRT_SESSION_RUNNING) continue;
            talking[i] = 0;
            if (state == GPTRT_SESSION_FAILED) {
                check(gptrt_session_wait(sessions[i]), NAMES[i]);
            }
            char result[4096];
            size_t size = 0;
            check(gptrt_session_result_json(sessions[i], result, sizeof result, &size), "result");
            const char *stop = strstr(result, "\"stop_reason\":");
            char reason[40] = "?";
            if (stop) sscanf(stop, "\"stop_reason\":\"%39[a-z_]", reason);
            /* The game would parse text[i] with its JSON reader and act on it. */
            printf("%-9s turn %d: %s [%s]\n", NAMES[i], turn[i] + 1, text[i], reason);
            /* Otherwise the next frame starts the NPC's next turn. */
            if (++turn[i] >= turns) {
                done[i] = 1;
                remaining--;
            }
        }
        sleep_frame();
    }
    for (int i = 0; i < NPC_COUNT; i++) gptrt_session_free(sessions[i]);
    gptrt_batcher_free(batcher);
    gptrt_generation_options_free(options);
    gptrt_plugin_host_free(host);
    gptrt_model_free(model);
    gptrt_runtime_free(runtime);
    return remaining == 0 ? 0 : 1;
}
