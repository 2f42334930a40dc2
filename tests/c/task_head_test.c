/* Task-head instances from C: made once, run many times. The classify plugin reads its trained
 * head at gptrt_task_head_new; the head's files are then deleted, and the instance still runs
 * (while a one-shot gptrt_task_head_run, which reads them again, fails).
 * Usage: task_head_test MODEL_DIR CLASSIFY_PLUGIN_LIBRARY HEAD_DIR */
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

int main(int argc, char **argv) {
    gptrt_runtime_t *runtime = NULL;
    gptrt_model_t *model = NULL;
    gptrt_plugin_host_t *host = NULL;
    gptrt_task_head_t *head = NULL, *zero_shot = NULL;
    gptrt_status_t status;
    char config[4096], path[4096];
    char *output = NULL;
    const char *input = "{\"texts\": [\"Hello world\", \"a longer text than the first\"]}";

    if (argc != 4) {
        fprintf(stderr, "usage: %s MODEL_DIR CLASSIFY_PLUGIN_LIBRARY HEAD_DIR\n", argv[0]);
        return 2;
    }
    CHECK(gptrt_runtime_new(NULL, &runtime));
    CHECK(gptrt_model_load(runtime, argv[1], &model));
    CHECK(gptrt_plugin_host_new(NULL, &host));
    CHECK(gptrt_plugin_host_load(host, argv[2]));

    snprintf(config, sizeof config, "{\"head\": \"%s\"}", argv[3]);
    CHECK(gptrt_task_head_new(host, model, "org.gptrt.classify", config, &head));
    snprintf(path, sizeof path, "%s/head.safetensors", argv[3]);
    if (remove(path) != 0) return 3;
    snprintf(path, sizeof path, "%s/labels.json", argv[3]);
    if (remove(path) != 0) return 3;

    CHECK(gptrt_task_head_call(head, input, &output));
    printf("first: %s\n", output);
    gptrt_string_free(output);
    status = gptrt_task_head_call(head, "{\"text\": \"\"}", &output);
    printf("bad-input: %s %s\n", gptrt_status_name(status), gptrt_last_error_message());
    CHECK(gptrt_task_head_call(head, input, &output));
    printf("second: %s\n", output);
    gptrt_string_free(output);

    status = gptrt_task_head_run(host, model, "org.gptrt.classify", config, input, &output);
    printf("one-shot-after-delete: %s %s\n", gptrt_status_name(status), gptrt_last_error_message());

    CHECK(gptrt_task_head_new(host, model, "org.gptrt.classify",
                              "{\"labels\": [\"yes\", \"no\"]}", &zero_shot));
    CHECK(gptrt_task_head_call(zero_shot, "{\"text\": \"Is it?\"}", &output));
    printf("zero-shot: %s\n", output);
    gptrt_string_free(output);
    status = gptrt_task_head_new(host, model, "org.gptrt.classify", "{\"labels\": [\"one\"]}", &zero_shot);
    printf("bad-config: %s %s\n", gptrt_status_name(status), gptrt_last_error_message());
    status = gptrt_task_head_call(NULL, input, &output);
    printf("null-head: %s\n", gptrt_status_name(status));

    gptrt_task_head_free(head);
    gptrt_task_head_free(head); /* freeing twice is ignored */
    gptrt_task_head_free(zero_shot);
    gptrt_plugin_host_free(host);
    gptrt_model_free(model);
    gptrt_runtime_free(runtime);
    return 0;
}
