// JSON-with-comments parsing on nlohmann's SAX interface, with a line counter fed by the input
// iterator so every key knows its line (nlohmann itself reports lines only for syntax errors).
#include "dsconfig/config_json.h"

#include <fstream>
#include <iterator>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "dsconfig/input_limits.h"

namespace zerorun::dsconfig {
namespace {

// Index of the closing quote of the string literal that opens at `open`, or the end.
size_t SkipString(const std::string& text, size_t open) {
  size_t i = open + 1;
  while (i < text.size() && text[i] != '"') i += text[i] == '\\' ? 2 : 1;
  return i;
}

// Replaces '#', '//' and '/* */' comments with spaces (newlines kept, so lines do not move) and
// drops commas that directly precede '}' or ']'.
std::string StripCommentsAndTrailingCommas(absl::string_view text) {
  std::string out(text);
  for (size_t i = 0; i < out.size(); ++i) {
    const char c = out[i];
    const char next = i + 1 < out.size() ? out[i + 1] : '\0';
    if (c == '"') {
      i = SkipString(out, i);
    } else if (c == '#' || (c == '/' && next == '/')) {
      while (i < out.size() && out[i] != '\n') out[i++] = ' ';
    } else if (c == '/' && next == '*') {
      const size_t end = out.find("*/", i + 2);
      const size_t stop = end == std::string::npos ? out.size() : end + 2;
      for (; i < stop; ++i) {
        if (out[i] != '\n') out[i] = ' ';
      }
      --i;
    }
  }
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == '"') {
      i = SkipString(out, i);
    } else if (out[i] == ',') {
      const size_t j = out.find_first_not_of(" \t\r\n", i + 1);
      if (j != std::string::npos && (out[j] == '}' || out[j] == ']')) out[i] = ' ';
    }
  }
  return out;
}

// Forward iterator over the text that counts the newlines it has stepped over.
class CountingIterator {
 public:
  using iterator_category = std::forward_iterator_tag;
  using value_type = char;
  using difference_type = std::ptrdiff_t;
  using pointer = const char*;
  using reference = const char&;

  CountingIterator(const char* p, int* lines) : p_(p), lines_(lines) {}
  reference operator*() const { return *p_; }
  CountingIterator& operator++() {
    if (*p_ == '\n') ++*lines_;
    ++p_;
    return *this;
  }
  CountingIterator operator++(int) {
    CountingIterator copy = *this;
    ++*this;
    return copy;
  }
  bool operator==(const CountingIterator& other) const { return p_ == other.p_; }
  bool operator!=(const CountingIterator& other) const { return p_ != other.p_; }

 private:
  const char* p_;
  int* lines_;
};

// Builds the DOM while recording each key's line and rejecting duplicates.
class TrackingSax {
 public:
  using json = nlohmann::json;
  TrackingSax(JsonDocument* doc, const int* newlines) : doc_(doc), newlines_(newlines) {}

  bool null() { return Put(nullptr); }
  bool boolean(bool v) { return Put(v); }
  bool number_integer(json::number_integer_t v) { return Put(v); }
  bool number_unsigned(json::number_unsigned_t v) { return Put(v); }
  bool number_float(json::number_float_t v, const json::string_t&) { return Put(v); }
  bool string(json::string_t& v) { return Put(v); }
  bool binary(json::binary_t&) { return Put(nullptr); }
  bool start_object(std::size_t) { return Open(json::object()); }
  bool start_array(std::size_t) { return Open(json::array()); }
  bool end_object() { return Close(); }
  bool end_array() { return Close(); }

  bool key(json::string_t& k) {
    Frame& frame = stack_.back();
    const int line = *newlines_ + 1;  // The lexer has just consumed the key's closing quote.
    std::string dotted = frame.path.empty() ? k : absl::StrCat(frame.path, ".", k);
    auto [it, inserted] = frame.key_lines.emplace(k, line);
    if (!inserted) {
      error_ =
          absl::StrCat(doc_->path, ":", line, ": Duplicate keys in DeepSpeed config: [", k, "] (",
                       dotted, " at lines ", it->second, " and ", line, "). Fix: keep one of them");
      return false;
    }
    doc_->key_lines[dotted] = line;
    frame.key = k;
    return true;
  }

  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& ex) {
    std::string what = ex.what();
    const size_t at = what.find("parse error");
    if (at != std::string::npos) what = what.substr(at);
    error_ = absl::StrCat(doc_->path, ":", *newlines_ + 1, ": not valid JSON: ", what,
                          ". zerorun reads JSON with comments and trailing commas; quote every "
                          "key and string (hjson's unquoted forms are not accepted)");
    return false;
  }

  const std::string& error() const { return error_; }

 private:
  struct Frame {
    json* value;
    std::string path;
    std::string key;
    std::map<std::string, int> key_lines;
  };

  json* Slot() {
    if (stack_.empty()) return &doc_->root;
    Frame& frame = stack_.back();
    if (frame.value->is_array()) {
      frame.value->push_back(nullptr);
      return &frame.value->back();
    }
    return &(*frame.value)[frame.key];
  }

  std::string ChildPath() const {
    if (stack_.empty()) return "";
    const Frame& frame = stack_.back();
    const std::string part =
        frame.value->is_array() ? std::to_string(frame.value->size() - 1) : frame.key;
    return frame.path.empty() ? part : absl::StrCat(frame.path, ".", part);
  }

  template <typename T>
  bool Put(T&& v) {
    *Slot() = json(std::forward<T>(v));
    return true;
  }

  bool Open(json empty) {
    json* slot = Slot();
    *slot = std::move(empty);
    stack_.push_back(Frame{slot, ChildPath(), "", {}});
    return true;
  }

  bool Close() {
    stack_.pop_back();
    return true;
  }

  JsonDocument* doc_;
  const int* newlines_;
  std::vector<Frame> stack_;
  std::string error_;
};

}  // namespace

int JsonDocument::LineOf(const std::string& dotted_key) const {
  std::string key = dotted_key;
  while (!key.empty()) {
    auto it = key_lines.find(key);
    if (it != key_lines.end()) return it->second;
    const size_t dot = key.rfind('.');
    if (dot == std::string::npos) break;
    key.resize(dot);
  }
  return 0;
}

std::string JsonDocument::Where(const std::string& dotted_key) const {
  const int line = LineOf(dotted_key);
  return line > 0 ? absl::StrCat(path, ":", line) : path;
}

absl::StatusOr<JsonDocument> ParseConfigJson(absl::string_view path, absl::string_view text) {
  if (absl::Status s = CheckInputText(path, text, "DeepSpeed config"); !s.ok()) return s;
  JsonDocument doc;
  doc.path = std::string(path);
  const std::string clean = StripCommentsAndTrailingCommas(text);
  int newlines = 0;
  TrackingSax sax(&doc, &newlines);
  CountingIterator first(clean.data(), &newlines);
  CountingIterator last(clean.data() + clean.size(), &newlines);
  const bool ok = nlohmann::json::sax_parse(first, last, &sax);
  if (!ok) return absl::InvalidArgumentError(sax.error());
  if (!doc.root.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": a DeepSpeed config must be a JSON object ({...}), found ", doc.root.type_name()));
  }
  return doc;
}

std::string Dump(const nlohmann::json& value, int indent) {
  return value.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

absl::StatusOr<JsonDocument> LoadConfigJson(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("DeepSpeed config ", path,
                                            " does not exist or cannot be read. Fix: pass "
                                            "--config with the path of your ds_config.json"));
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  return ParseConfigJson(path, buffer.str());
}

}  // namespace zerorun::dsconfig
