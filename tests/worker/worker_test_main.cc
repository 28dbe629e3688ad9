// Catch2 main for the worker tests: JobRunner re-executes this binary as each rank's supervisor.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "rank_supervisor.h"

int main(int argc, char** argv) {
  if (const int code = zerorun::worker::MaybeRunRankSupervisor(argc, argv); code >= 0) return code;
  return Catch::Session().run(argc, argv);
}
