// The project's Python environment (deploy/python-env.sh: torch, transformers, grpcio, protobuf,
// prometheus-client, ... from PyPI) for tests that run Python with real libraries. Test-only.
#ifndef ZERORUN_TESTS_SUPPORT_PYTHON_ENV_H_
#define ZERORUN_TESTS_SUPPORT_PYTHON_ENV_H_

#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>

namespace zerorun::testing {

// The venv's interpreter. FAILs the calling test, naming the fix, when the venv is missing or
// half-made (no stamp): such a test never passes by skipping. Call from a test case's thread.
inline std::string VenvPython() {
  const std::string stamp = std::string(ZR_TEST_VENV) + "/zerorun-ready";
  if (access(stamp.c_str(), R_OK) != 0) {
    FAIL("the project's Python environment " << ZR_TEST_VENV << " is not ready (no " << stamp
                                             << "): run bash deploy/python-env.sh");
  }
  return ZR_TEST_PYTHON;
}

}  // namespace zerorun::testing

#endif  // ZERORUN_TESTS_SUPPORT_PYTHON_ENV_H_
