#pragma once
#include "cli/options.hpp"

namespace odigos {
// Runs odigos-trace with parsed options; returns the process exit code.
int run_tracer(const Options& opt, const char* self_exe);
int run(int argc, char** argv);
} // namespace odigos
