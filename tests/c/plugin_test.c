/* Plugins from C: load the shipped plugin libraries, put a plugin sampler in a session's chain,
 * run a task head, and get statuses (not crashes) for bad plugin calls.
 * Usage: plugin_test MODEL_DIR RUST_PLUGIN_LIBRARY C_PLUGIN_LIBRARY */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gptrt.h"

#define CHECK(call)                                                                        \
    do {                                                                                   \
        gptrt_status_t status_ = (call);                                                   \
        if (status_ != GPTRT_OK) {                                                         \
            fprintf(stderr, "%s: %s: %s\n", #call, gptrt_status_name(status_),             \
                    gptrt_last_error_message());                                           \
            return 1;                                                                      \
        }                                                                                  \
    } while (0)

static int print_ids(const char *label, gptrt_session_t *session) {
    uint32_t ids[64];
    size_t count = 0, i;
    CHECK(gptrt_session_token_ids(session, ids, 64, &count));
    printf("%s:", label);
    for (i = 0; i < count; i++) printf(" %u", ids[i]);
    printf("\n");
    return 0;
}

int main(int argc, char **argv) {
    gptrt_runtime_t *runtime = NULL;
    gptrt_model_t *model = NULL;
    gptrt_plugin_host_t *host = NULL;
    gptrt_session_t *session = NULL;
    gptrt_generation_options_t *options = NULL;
    gptrt_status_t status;
    char info[2048];
    size_t size = 0;
    char *output = NULL;

    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL_DIR PLUGIN_LIBRARY...\n", argv[0]);
        return 2;
    }
    CHECK(gptrt_runtime_new(NULL, &runtime));
    CHECK(gptrt_model_load(runtime, argv[1], &model));
    CHECK(gptrt_plugin_host_new(NULL, &host));
    for (int i = 2; i < argc; i++) {
        CHECK(gptrt_plugin_host_load(host, argv[i]));
    }
    CHECK(gptrt_plugin_host_info_json(host, info, sizeof info, &size));
    printf("plugins: %s\n", info);

    CHECK(gptrt_generation_options_new(&options));
    CHECK(gptrt_generation_options_set_max_new_tokens(options, 8));
    CHECK(gptrt_session_new(model, &session));
    CHECK(gptrt_session_generate(session, "Hello world", options, NULL, NULL));
    if (print_ids("plain", session)) return 1;

    /* XTC with threshold 0 and probability 1 removes every top choice but the least likely. */
    CHECK(gptrt_session_add_sampler(session, host, "org.gptrt.xtc", "{\"threshold\": 0.0, \"probability\": 1.0}"));
    CHECK(gptrt_session_generate(session, "Hello world", options, NULL, NULL));
    if (print_ids("xtc", session)) return 1;
    CHECK(gptrt_session_clear_samplers(session));
    CHECK(gptrt_session_generate(session, "Hello world", options, NULL, NULL));
    if (print_ids("cleared", session)) return 1;

    CHECK(gptrt_task_head_run(host, model, "org.gptrt.choice", NULL,
                              "{\"prompt\": \"Hello\", \"choices\": [\" world\", \" there\"]}", &output));
    printf("task: %s\n", output);
    gptrt_string_free(output);

    /* Bad calls: statuses and messages, never a crash. */
    status = gptrt_session_add_sampler(session, host, "org.example.missing", NULL);
    printf("bad-id: %s %s\n", gptrt_status_name(status), gptrt_last_error_message());
    status = gptrt_plugin_host_load(host, "/nonexistent/libplugin.so");
    printf("bad-load: %s\n", gptrt_status_name(status));
    status = gptrt_task_head_run(host, model, "org.gptrt.choice", NULL, "{\"prompt\": 3}", &output);
    printf("bad-input: %s %s\n", gptrt_status_name(status), gptrt_last_error_message());
    status = gptrt_session_add_sampler(session, NULL, "org.gptrt.xtc", NULL);
    printf("null-host: %s\n", gptrt_status_name(status));
    gptrt_string_free(NULL);

    gptrt_session_free(session);
    gptrt_generation_options_free(options);
    gptrt_plugin_host_free(host);
    gptrt_plugin_host_free(host); /* freeing twice is ignored */
    gptrt_model_free(model);
    gptrt_runtime_free(runtime);
    return 0;
}
