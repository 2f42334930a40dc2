/* Constrained output from C: the grammar plugin by named options (gptrt_session_constrain), a
 * sampler at a chosen stage (gptrt_session_add_sampler_at), and a bad schema as a status.
 * Usage: grammar_test MODEL_DIR GRAMMAR_PLUGIN_LIBRARY */
#include <stdio.h>
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

static const char *SCHEMA =
    "{\"type\": \"object\", \"properties\": {"
    "\"action\": {\"enum\": [\"attack\", \"flee\", \"talk\"]},"
    "\"hp\": {\"type\": \"integer\", \"minimum\": 0, \"maximum\": 100}},"
    "\"required\": [\"action\", \"hp\"], \"additionalProperties\": false}";

int main(int argc, char **argv) {
    gptrt_runtime_t *runtime = NULL;
    gptrt_model_t *model = NULL;
    gptrt_plugin_host_t *host = NULL;
    gptrt_session_t *session = NULL;
    gptrt_generation_options_t *options = NULL;
    gptrt_status_t status;
    char text[4096];
    size_t size = 0;

    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL_DIR GRAMMAR_PLUGIN_LIBRARY\n", argv[0]);
        return 2;
    }
    CHECK(gptrt_runtime_new(NULL, &runtime));
    CHECK(gptrt_model_load(runtime, argv[1], &model));
    CHECK(gptrt_plugin_host_new(NULL, &host));
    CHECK(gptrt_plugin_host_load(host, argv[2]));
    CHECK(gptrt_generation_options_from_model(model, &options));
    CHECK(gptrt_generation_options_set_int(options, "seed", 4));
    CHECK(gptrt_session_new(model, &session));

    CHECK(gptrt_session_constrain(session, host, "json_schema", SCHEMA));
    CHECK(gptrt_session_generate(session, "The guard:", options, NULL, NULL));
    CHECK(gptrt_session_text(session, text, sizeof text, &size));
    printf("json: %s\n", text);
    CHECK(gptrt_session_result_json(session, text, sizeof text, &size));
    printf("result: %s\n", text);

    /* The same plugin by id, at an explicit stage, with a regex. */
    CHECK(gptrt_session_clear_samplers(session));
    CHECK(gptrt_session_add_sampler_at(session, host, "org.gptrt.grammar", "processor",
                                       "{\"regex\": \"(yes|no)!\"}"));
    CHECK(gptrt_session_generate(session, "Answer:", options, NULL, NULL));
    CHECK(gptrt_session_text(session, text, sizeof text, &size));
    printf("regex: %s\n", text);

    status = gptrt_session_constrain(session, host, "json_schema", "{\"type\": \"objekt\"}");
    printf("bad-schema: %s %s\n", gptrt_status_name(status), gptrt_last_error_message());
    status = gptrt_session_constrain(session, host, "xml", "<a/>");
    printf("bad-kind: %s %s\n", gptrt_status_name(status), gptrt_last_error_message());
    status = gptrt_session_add_sampler_at(session, host, "org.gptrt.grammar", "middle", NULL);
    printf("bad-stage: %s %s\n", gptrt_status_name(status), gptrt_last_error_message());

    gptrt_session_free(session);
    gptrt_generation_options_free(options);
    gptrt_plugin_host_free(host);
    gptrt_model_free(model);
    gptrt_runtime_free(runtime);
    return 0;
}
