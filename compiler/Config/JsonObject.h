//===- JsonObject.h - typed access to one JSON object of a config -*- C++
//-*-===//
//
// Every accessor checks the JSON type and throws ConfigError with the key's
// full path on a mismatch; the loader catches it at the top. A key that is
// absent and one that is null mean the same: "not set".
//
//===----------------------------------------------------------------------===//

#ifndef DECC_CONFIG_JSONOBJECT_H
#define DECC_CONFIG_JSONOBJECT_H

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace decc {

struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class JsonObject {
public:
  /// `path` prefixes every key in messages ("llm_config.").
  JsonObject(const nlohmann::json &json, std::string path)
      : node(json), path(std::move(path)) {}

  bool has(const std::string &key) const;
  /// The first of `keys` that is set, or nullopt.
  std::optional<std::string>
  firstOf(std::initializer_list<const char *> keys) const;

  int64_t integer(const std::string &key) const;
  int64_t integer(const std::string &key, int64_t fallback) const;
  double number(const std::string &key) const;
  double number(const std::string &key, double fallback) const;
  bool boolean(const std::string &key, bool fallback) const;
  std::string string(const std::string &key) const;
  std::string string(const std::string &key, const std::string &fallback) const;
  /// Absent or null: nullopt; anything but an object: an error.
  std::optional<JsonObject> object(const std::string &key) const;
  std::vector<double> numbers(const std::string &key) const;
  /// One integer or a list of them (eos_token_id takes both forms).
  std::vector<int64_t> integers(const std::string &key) const;

  /// An integer that must lie in [lo, hi].
  int64_t integerIn(const std::string &key, int64_t lo, int64_t hi) const;
  int64_t integerIn(const std::string &key, int64_t fallback, int64_t lo,
                    int64_t hi) const;

  std::string keyPath(const std::string &key) const { return path + key; }
  const std::string &prefix() const { return path; }
  [[noreturn]] void fail(const std::string &message) const;

private:
  const nlohmann::json &at(const std::string &key) const;
  [[noreturn]] void wrongType(const std::string &key,
                              const char *expected) const;
  int64_t toInteger(const std::string &key, const nlohmann::json &v) const;

  const nlohmann::json &node;
  std::string path;
};

/// The shortest text that reads back as `v`, for messages ("0.3", "-2").
std::string formatNumber(double v);

/// Describes a JSON value for messages: `string "32"`, `number 2.5`.
std::string describe(const nlohmann::json &value);

} // namespace decc

#endif // DECC_CONFIG_JSONOBJECT_H
