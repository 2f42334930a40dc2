// Task-head instances from C++ (gptrt::PluginHost, gptrt::TaskHead): made once, run many times;
// failures are gptrt::Error with the C status and message; a dialogue reply streams to a lambda,
// and an exception the lambda throws reaches the caller.
// Usage: task_head_test_cpp MODEL_DIR CLASSIFY_PLUGIN_LIBRARY DIALOGUE_PLUGIN_LIBRARY
#include <cstdio>
#include <iostream>
#include <stdexcept>
#include <string>
#include <string_view>

#include "gptrt.hpp"

int main(int argc, char **argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: %s MODEL_DIR CLASSIFY_PLUGIN_LIBRARY DIALOGUE_PLUGIN_LIBRARY\n", argv[0]);
        return 2;
    }
    gptrt::Runtime runtime;
    gptrt::Model model(runtime, argv[1]);
    gptrt::PluginHost host;
    host.load(argv[2]);
    host.load(argv[3]);
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
    // A classifier writes nothing while it runs; a dialogue streams its reply.
    int calls = 0;
    head.run(R"({"text": "Is it?"})", [&](std::string_view) { return ++calls > 0; });
    std::cout << "classify-pieces: " << calls << "\n";
    gptrt::TaskHead npc(host, model, "org.gptrt.dialogue", R"({"persona": "Hi.", "max_new_tokens": 8, "do_sample": false})");
    std::string streamed;
    calls = 0;
    auto collect = [&](std::string_view text) {
        streamed += text;
        calls++;
        return true;
    };
    std::string reply = npc.run(R"({"say": "hello"})", collect); // a named callable, by reference
    std::cout << "dialogue: " << reply << "\n";
    std::cout << "dialogue-pieces: " << calls << "\n";
    std::cout << "dialogue-streamed-length: " << streamed.size() << "\n";
    try {
        npc.run(R"({"say": "again"})", [](std::string_view) -> bool { throw std::runtime_error("from the lambda"); });
        std::cout << "thrown: nothing\n";
    } catch (const std::runtime_error &error) {
        std::cout << "thrown: " << error.what() << "\n";
    }
    std::cout << "after-throw: " << npc.run(R"({"say": "still there?"})") << "\n";
    return 0;
}
