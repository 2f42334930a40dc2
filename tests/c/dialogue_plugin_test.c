/* The dialogue task head (plugins/dialogue, org.gptrt.dialogue) from C: an instance keeps its
 * dialogue across gptrt_task_head_call, its state saves to base64 and continues in a new
 * instance, a reply streams to a callback as it is made (and stops when the callback says so), and
 * a bad action is refused by name.
 * Usage: dialogue_plugin_test MODEL_DIR DIALOGUE_PLUGIN_LIBRARY */
#include <stdbool.h>
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

/* Collects the text a call streams; stops the call after `stop_after` pieces (0: never). With
 * `reenter`, the first piece also calls that instance again, which must be refused as busy. */
struct stream {
    char text[4096];
    size_t len;
    int pieces;
    int stop_after;
    gptrt_task_head_t *reenter;
    gptrt_status_t reentered;
};

static bool on_text(void *user_data, const char *text, size_t len) {
    struct stream *stream = user_data;
    if (stream->reenter != NULL && stream->pieces == 0) {
        char *nested = NULL;
        stream->reentered = gptrt_task_head_call(stream->reenter, "{\"say\": \"nested\"}", &nested);
        if (stream->reentered == GPTRT_OK) gptrt_string_free(nested);
    }
    if (text[len] != '\0' || stream->len + len >= sizeof stream->text) return false;
    memcpy(stream->text + stream->len, text, len + 1);
    stream->len += len;
    stream->pieces++;
    return stream->stop_after == 0 || stream->pieces < stream->stop_after;
}

/* The streamed text on one line, newlines and backslashes escaped. */
static void print_stream(const char *label, const struct stream *stream) {
    printf("%s: %d ", label, stream->pieces);
    for (size_t i = 0; i < stream->len; i++) {
        if (stream->text[i] == '\n') printf("\\n");
        else if (stream->text[i] == '\\') printf("\\\\");
        else putchar(stream->text[i]);
    }
    printf("\n");
}

static const char *CONFIG = "{\"persona\": \"Hi.\", \"max_new_tokens\": 6, \"do_sample\": false}";

int main(int argc, char **argv) {
    gptrt_runtime_t *runtime = NULL;
    gptrt_model_t *model = NULL;
    gptrt_plugin_host_t *host = NULL;
    gptrt_task_head_t *first = NULL, *second = NULL;
    gptrt_status_t status;
    char *output = NULL, *saved = NULL, *restore = NULL;
    const char *state, *end;
    size_t len;

    if (argc != 3) {
        fprintf(stderr, "usage: %s MODEL_DIR DIALOGUE_PLUGIN_LIBRARY\n", argv[0]);
        return 2;
    }
    CHECK(gptrt_runtime_new(NULL, &runtime));
    CHECK(gptrt_model_load(runtime, argv[1], &model));
    CHECK(gptrt_plugin_host_new(NULL, &host));
    CHECK(gptrt_plugin_host_load(host, argv[2]));
    CHECK(gptrt_task_head_new(host, model, "org.gptrt.dialogue", CONFIG, &first));

    CHECK(gptrt_task_head_call(first, "{\"say\": \"one\"}", &output));
    printf("turn1: %s\n", output);
    gptrt_string_free(output);
    CHECK(gptrt_task_head_call(first, "{\"say\": \"two\"}", &output));
    printf("turn2: %s\n", output);
    gptrt_string_free(output);

    /* {"state":"BASE64"} -> {"restore":"BASE64"} */
    CHECK(gptrt_task_head_call(first, "{\"save\": true}", &saved));
    state = strstr(saved, "\"state\":\"");
    if (state == NULL) return 3;
    state += strlen("\"state\":\"");
    end = strchr(state, '"');
    if (end == NULL) return 3;
    len = (size_t)(end - state);
    restore = malloc(len + 32);
    if (restore == NULL) return 3;
    snprintf(restore, len + 32, "{\"restore\": \"%.*s\"}", (int)len, state);
    gptrt_string_free(saved);

    CHECK(gptrt_task_head_new(host, model, "org.gptrt.dialogue", CONFIG, &second));
    CHECK(gptrt_task_head_call(second, restore, &output));
    printf("restored: %s\n", output);
    gptrt_string_free(output);
    free(restore);

    CHECK(gptrt_task_head_call(first, "{\"say\": \"three\"}", &output));
    printf("original3: %s\n", output);
    gptrt_string_free(output);
    /* The first instance goes before the second runs on: their sessions are their own. */
    gptrt_task_head_free(first);
    CHECK(gptrt_task_head_call(second, "{\"say\": \"three\"}", &output));
    printf("restored3: %s\n", output);
    gptrt_string_free(output);

    /* The reply streams as it is made; a callback that returns false stops it. */
    struct stream whole = {.stop_after = 0, .reenter = second}, cut = {.stop_after = 1};
    CHECK(gptrt_task_head_call_streaming(second, "{\"say\": \"four\"}", on_text, &whole, &output));
    printf("streamed4: %s\n", output);
    print_stream("pieces4", &whole);
    printf("reentered: %s\n", gptrt_status_name(whole.reentered));
    gptrt_string_free(output);
    CHECK(gptrt_task_head_call_streaming(second, "{\"say\": \"five\"}", on_text, &cut, &output));
    printf("streamed5: %s\n", output);
    print_stream("pieces5", &cut);
    gptrt_string_free(output);

    status = gptrt_task_head_call(second, "{\"shout\": \"hey\"}", &output);
    printf("bad-action: %s %s\n", gptrt_status_name(status), gptrt_last_error_message());

    gptrt_task_head_free(second);
    gptrt_plugin_host_free(host);
    gptrt_model_free(model);
    gptrt_runtime_free(runtime);
    return 0;
}
