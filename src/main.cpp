// odigos-trace: a thin entry point over the odigos_core library.
#include "cli/app.hpp"

int main(int argc, char** argv) { return odigos::run(argc, argv); }
