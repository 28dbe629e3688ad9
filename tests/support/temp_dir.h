// Test helper: a fresh directory under $TMPDIR (or /tmp), removed with its contents at scope end.
#ifndef ZERORUN_TESTS_SUPPORT_TEMP_DIR_H_
#define ZERORUN_TESTS_SUPPORT_TEMP_DIR_H_

#include <string>

namespace zerorun::testing {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // Writes `text` to path()/name (creating the folders in `name`) and returns the full path.
  std::string Write(const std::string& name, const std::string& text) const;
  // Names in path(), sorted (to assert that nothing was created).
  std::string Listing() const;

 private:
  std::string path_;
};

// The whole of the file at `path` ("" when it cannot be read).
std::string ReadText(const std::string& path);

}  // namespace zerorun::testing

#endif  // ZERORUN_TESTS_SUPPORT_TEMP_DIR_H_
