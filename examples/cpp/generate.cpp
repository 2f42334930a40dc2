// Generate text with the C++ wrapper (include/gptrt.hpp): RAII handles, exceptions, a lambda for
// streaming.
//
//   generate_cpp [MODEL_DIR] [PROMPT] [MAX_NEW_TOKENS]
//
// MODEL_DIR defaults to $GPTRT_MODEL, else the tiny test model (run from the repository root).
// Build lines: README.md, "C and C++".
#include <cstdlib>
#include <iostream>
#include <string>

#include "gptrt.hpp"

int main(int argc, char **argv) {
    const char *env_model = std::getenv("GPTRT_MODEL");
    std::string model_dir = argc > 1 ? argv[1] : (env_model && *env_model ? env_model : "models/fixtures/tiny-random-gpt2/single");
    std::string prompt = argc > 2 ? argv[2] : "Once upon a time";
    size_t max_new_tokens = argc > 3 ? std::stoul(argv[3]) : 24;

    try {
        gptrt::Runtime runtime; // default options: ONNX Runtime found as documented in gptrt.h
        gptrt::Model model(runtime, model_dir);
        gptrt::GenerationOptions options(model); // the folder's generation_config.json
        options.max_new_tokens(max_new_tokens);

        gptrt::Session session(model);
        std::cout << prompt;
        session.generate(prompt, options, [](const gptrt::Token &token) {
            std::cout << token.text << std::flush;
            return true; // false stops
        });
        std::cout << "\nids:";
        for (uint32_t id : session.token_ids()) {
            std::cout << ' ' << id;
        }
        std::cout << '\n'
                  << session.token_ids().size() << " tokens, stop: " << gptrt_stop_reason_name(session.stop_reason())
                  << ", layout: " << model.layout() << ", provider: " << model.execution_provider() << '\n';
    } catch (const gptrt::Error &error) {
        std::cerr << "gptrt: " << error.what() << '\n';
        return 1;
    }
    return 0;
}
