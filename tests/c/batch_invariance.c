/*
 * Whether a model's batched sessions get what they get alone, as the C API reports it.
 *
 *   batch_invariance MODEL_DIR          prints `info: MODEL_INFO_JSON` (gptrt_model_info_json:
 *                                       `batch_invariant`, `batch_dependent_ops`, `batching`)
 *   batch_invariance MODEL_DIR tokens   also runs six prompts of different lengths alone and as
 *                                       six batched sessions started together, with the model's
 *                                       generation_config.json and seed 7, then the same greedy,
 *                                       and prints `sampling: N of 6 equal` and `greedy: ...`
 *
 * sdk/gptrt-capi/tests/c_api.rs checks it on the demo model (batch-invariant) and on a dynamic
 * int8 graph (not). Ends with `N passed, M failed`.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gptrt.h"

static int passed = 0;
static int failed = 0;

#define OK(call)                                                                                   \
    do {                                                                                           \
        gptrt_status_t got_ = (call);                                                              \
        if (got_ == GPTRT_OK) {                                                                    \
            passed++;                                                                              \
        } else {                                                                                   \
            failed++;                                                                              \
            printf("FAIL %s:%d: %s returned %s: %s\n", __FILE__, __LINE__, #call,                  \
                   gptrt_status_name(got_), gptrt_last_error_message());                           \
        }                                                                                          \
    } while (0)

#define ROWS 6
#define MAX_IDS 512

static const char *const PROMPTS[ROWS] = {
    "Once",
    "And God said unto Moses, Go in unto Pharaoh, and tell him, Thus saith the LORD God",
    "The President of the United States",
    "It is a truth universally acknowledged, that a single man",
    "Mr. Bennet was",
    "Call me Ishmael. Some years ago",
};

static char *read_file(const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *file = fopen(path, "rb");
    if (file == NULL) {
        return NULL;
    }
    char *text = calloc(1, 1 << 16);
    if (text != NULL) {
        size_t got = fread(text, 1, (1 << 16) - 1, file);
        text[got] = '\0';
    }
    fclose(file);
    return text;
}

/* The ids a finished session generated; returns how many (0 on failure). */
static size_t ids_of(const gptrt_session_t *session, uint32_t *ids) {
    size_t count = 0;
    OK(gptrt_session_token_ids(session, ids, MAX_IDS, &count));
    return count;
}

/* Six prompts alone, then together in one batcher; prints how many rows got their solo ids. */
static void compare(const gptrt_model_t *model, const gptrt_generation_options_t *options,
                    const char *name) {
    static uint32_t solo[ROWS][MAX_IDS];
    static uint32_t batched[MAX_IDS];
    size_t solo_count[ROWS] = {0};
    gptrt_session_t *alone = NULL;
    OK(gptrt_session_new(model, &alone));
    for (int i = 0; i < ROWS && alone != NULL; i++) {
        OK(gptrt_session_generate(alone, PROMPTS[i], options, NULL, NULL));
        solo_count[i] = ids_of(alone, solo[i]);
    }
    gptrt_session_free(alone);

    gptrt_batcher_t *batcher = NULL;
    gptrt_session_t *sessions[ROWS] = {NULL};
    OK(gptrt_batcher_new(model, &batcher));
    for (int i = 0; i < ROWS && batcher != NULL; i++) {
        OK(gptrt_session_new_batched(batcher, &sessions[i]));
    }
    for (int i = 0; i < ROWS; i++) {
        if (sessions[i] != NULL) {
            OK(gptrt_session_start(sessions[i], PROMPTS[i], options));
        }
    }
    int equal = 0;
    for (int i = 0; i < ROWS; i++) {
        if (sessions[i] == NULL) {
            continue;
        }
        OK(gptrt_session_wait(sessions[i]));
        size_t count = ids_of(sessions[i], batched);
        if (count > 0 && count == solo_count[i] &&
            memcmp(batched, solo[i], count * sizeof(uint32_t)) == 0) {
            equal++;
        }
        gptrt_session_free(sessions[i]);
    }
    gptrt_batcher_free(batcher);
    printf("%s: %d of %d equal\n", name, equal, ROWS);
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
    size_t size = 0;
    /* asks for the size: GPTRT_ERROR_BUFFER_TOO_SMALL */
    gptrt_model_info_json(model, NULL, 0, &size);
    char *info = malloc(size);
    if (info == NULL) {
        return 2;
    }
    OK(gptrt_model_info_json(model, info, size, &size));
    printf("info: %s\n", info);
    free(info);

    if (argc > 2 && strcmp(argv[2], "tokens") == 0) {
        char *defaults = read_file(argv[1], "generation_config.json");
        gptrt_generation_options_t *sampling = NULL;
        gptrt_generation_options_t *greedy = NULL;
        OK(gptrt_generation_options_from_json(defaults, &sampling));
        free(defaults);
        if (sampling != NULL) {
            OK(gptrt_generation_options_set_seed(sampling, 7));
            OK(gptrt_generation_options_clone(sampling, &greedy));
        }
        if (greedy != NULL) {
            OK(gptrt_generation_options_set_do_sample(greedy, false));
            compare(model, sampling, "sampling");
            compare(model, greedy, "greedy");
        }
        gptrt_generation_options_free(sampling);
        gptrt_generation_options_free(greedy);
    }
    gptrt_model_free(model);
    gptrt_runtime_free(runtime);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
