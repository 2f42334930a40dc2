// Task-head instances from C++ (gptrt::PluginHost, gptrt::TaskHead): made once, run many times;
// failures are gptrt::Error with the C status and message.
// Usage: task_head_test_cpp MODEL_DIR CLASSIFY_PLUGIN_LIBRARY
#include <cstdio>
#include <iostream>

#include "gptrt.hpp"

int main(int argc, char **argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s MODEL_DIR CLASSIFY_PLUGIN_LIBRARY\n", argv[0]);
        return 2;
    }
    gptrt::Runtime runtime;
    gptrt::Model model(runtime, argv[1]);
    gptrt::PluginHost host;
    host.load(argv[2]);
    gptrt::TaskHead head(host, model, "org.gptrt.classify", R"({"labels": ["yes", "no"], "calibrate": true})");
    std::cout << "first: " << head.run(R"({"text": "Is it?"})") << "\n";
    std::cout << "second: " << head.run(R"({"text": "Is it?"})") << "\n";
    try {
        head.run(R"({"text": ""})");
        std::cout << "bad-input: no error\n";
    } catch (const gptrt::Error &error) {
        std::cout << "bad-input: " << error.what() << "\n";
    }
    try {
        gptrt::TaskHead bad(host, model, "org.gptrt.classify", R"({"head": "/nonexistent"})");
        std::cout << "bad-config: no error\n";
    } catch (const gptrt::Error &error) {
        std::cout << "bad-config: " << error.what() << "\n";
    }
    return 0;
}
