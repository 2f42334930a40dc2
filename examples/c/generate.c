/*
 * Generate text with the gptrt C API, streaming each token through a callback.
 *
 *   generate [MODEL_DIR] [PROMPT] [MAX_NEW_TOKENS]
 *
 * MODEL_DIR defaults to $GPTRT_MODEL, else the tiny test model (run from the repository root).
 * Prints the text as it is generated, then the token ids and the stop reason.
 * Build lines: README.md, "C and C++".
 */
#include <stdio.h>
#include <stdlib.h>

#include "gptrt.h"

/* Print the failed call, its status and gptrt's message, and leave. */
static void check(gptrt_status_t status, const char *what) {
    if (status != GPTRT_OK) {
        fprintf(stderr, "%s failed: %s: %s\n", what, gptrt_status_name(status),
                gptrt_last_error_message());
        exit(1);
    }
}

/* Called on this thread for each new token; returning false would stop generation. */
static bool on_token(void *user_data, const gptrt_token_event_t *event) {
    size_t *count = (size_t *)user_data;
    fwrite(event->text, 1, event->text_len, stdout);
    fflush(stdout);
    *count += 1;
    return true;
}

int main(int argc, char **argv) {
    const char *model_dir = argc > 1 ? argv[1] : getenv("GPTRT_MODEL");
    const char *prompt = argc > 2 ? argv[2] : "Once upon a time";
    size_t max_new_tokens = argc > 3 ? (size_t)strtoul(argv[3], NULL, 10) : 24;
    if (model_dir == NULL || model_dir[0] == '\0') {
        model_dir = "models/fixtures/tiny-random-gpt2/single";
    }

    gptrt_runtime_t *runtime = NULL;
    gptrt_model_t *model = NULL;
    gptrt_generation_options_t *options = NULL;
    gptrt_session_t *session = NULL;

    check(gptrt_runtime_new(NULL, &runtime), "gptrt_runtime_new"); /* NULL: default options */
    check(gptrt_model_load(runtime, model_dir, &model), "gptrt_model_load");
    check(gptrt_generation_options_from_model(model, &options), "gptrt_generation_options_from_model");
    check(gptrt_generation_options_set_max_new_tokens(options, max_new_tokens), "set max_new_tokens");
    check(gptrt_session_new(model, &session), "gptrt_session_new");

    printf("%s", prompt);
    size_t streamed = 0;
    check(gptrt_session_generate(session, prompt, options, on_token, &streamed), "gptrt_session_generate");
    printf("\n");

    /* The result: ask for the size first, then copy. */
    size_t count = 0;
    gptrt_status_t status = gptrt_session_token_ids(session, NULL, 0, &count);
    if (status != GPTRT_ERROR_BUFFER_TOO_SMALL && status != GPTRT_OK) {
        check(status, "gptrt_session_token_ids");
    }
    uint32_t *ids = malloc((count ? count : 1) * sizeof *ids);
    if (ids == NULL) {
        return 1;
    }
    check(gptrt_session_token_ids(session, ids, count, &count), "gptrt_session_token_ids");
    gptrt_stop_reason_t reason;
    check(gptrt_session_stop_reason(session, &reason), "gptrt_session_stop_reason");

    printf("ids:");
    for (size_t i = 0; i < count; i++) {
        printf(" %u", (unsigned)ids[i]);
    }
    printf("\n%zu tokens (%zu streamed), stop: %s\n", count, streamed, gptrt_stop_reason_name(reason));
    free(ids);

    gptrt_session_free(session);
    gptrt_generation_options_free(options);
    gptrt_model_free(model);
    gptrt_runtime_free(runtime);
    return 0;
}
