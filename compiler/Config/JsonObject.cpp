//===- JsonObject.cpp - typed access to one JSON object of a config -------===//

#include "compiler/Config/JsonObject.h"

#include <charconv>
#include <cmath>
#include <vector>

using nlohmann::json;

namespace decc {

std::string formatNumber(double v) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, r.ptr);
}

namespace {
/// Whether `value` nests more than `limit` deep, found without recursion
/// (a hostile config can nest 100k deep; dump() and copies recurse).
bool nestsDeeper(const json &value, int limit) {
  std::vector<std::pair<const json *, int>> stack = {{&value, 0}};
  while (!stack.empty()) {
    auto [v, depth] = stack.back();
    stack.pop_back();
    if (depth > limit)
      return true;
    if (v->is_structured())
      for (const json &child : *v)
        stack.push_back({&child, depth + 1});
  }
  return false;
}
} // namespace

std::string describe(const json &value) {
  constexpr int kPrintableDepth = 16;
  if (nestsDeeper(value, kPrintableDepth))
    return std::string(value.type_name()) + " nested more than " +
           std::to_string(kPrintableDepth) + " deep";
  std::string text = value.dump();
  if (text.size() > 40)
    text = text.substr(0, 37) + "...";
  if (value.is_object() || value.is_array() || value.is_null())
    return std::string(value.type_name()) + (value.is_null() ? "" : " " + text);
  return std::string(value.type_name()) + " " + text;
}

void JsonObject::fail(const std::string &message) const {
  throw ConfigError(message);
}

void JsonObject::wrongType(const std::string &key, const char *expected) const {
  fail("key '" + keyPath(key) + "' must be " + expected + ", got " +
       describe(node.at(key)));
}

bool JsonObject::has(const std::string &key) const {
  auto it = node.find(key);
  return it != node.end() && !it->is_null();
}

std::optional<std::string>
JsonObject::firstOf(std::initializer_list<const char *> keys) const {
  for (const char *k : keys)
    if (has(k))
      return std::string(k);
  return std::nullopt;
}

const json &JsonObject::at(const std::string &key) const {
  if (!has(key))
    fail("missing required key '" + keyPath(key) + "'");
  return node.at(key);
}

int64_t JsonObject::toInteger(const std::string &key, const json &v) const {
  if (v.is_number_unsigned()) {
    if (v.get<uint64_t>() > uint64_t(INT64_MAX))
      fail("key '" + keyPath(key) + "' is too large: " + v.dump());
    return int64_t(v.get<uint64_t>());
  }
  if (v.is_number_integer())
    return v.get<int64_t>();
  // Some writers save integral values as floats (4096.0); accept exactly those.
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e18)
      return int64_t(d);
  }
  fail("key '" + keyPath(key) + "' must be an integer, got " + describe(v));
}

int64_t JsonObject::integer(const std::string &key) const {
  return toInteger(key, at(key));
}

int64_t JsonObject::integer(const std::string &key, int64_t fallback) const {
  return has(key) ? integer(key) : fallback;
}

double JsonObject::number(const std::string &key) const {
  const json &v = at(key);
  if (!v.is_number())
    wrongType(key, "a number");
  double d = v.get<double>();
  if (!std::isfinite(d))
    fail("key '" + keyPath(key) + "' must be finite, got " + v.dump());
  return d;
}

double JsonObject::number(const std::string &key, double fallback) const {
  return has(key) ? number(key) : fallback;
}

bool JsonObject::boolean(const std::string &key, bool fallback) const {
  if (!has(key))
    return fallback;
  const json &v = node.at(key);
  if (!v.is_boolean())
    wrongType(key, "true or false");
  return v.get<bool>();
}

std::string JsonObject::string(const std::string &key) const {
  const json &v = at(key);
  if (!v.is_string())
    wrongType(key, "a string");
  return v.get<std::string>();
}

std::string JsonObject::string(const std::string &key,
                               const std::string &fallback) const {
  return has(key) ? string(key) : fallback;
}

std::optional<JsonObject> JsonObject::object(const std::string &key) const {
  if (!has(key))
    return std::nullopt;
  const json &v = node.at(key);
  if (!v.is_object())
    wrongType(key, "an object");
  return JsonObject(v, keyPath(key) + ".");
}

std::vector<double> JsonObject::numbers(const std::string &key) const {
  const json &v = at(key);
  if (!v.is_array())
    wrongType(key, "a list of numbers");
  std::vector<double> out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_number())
      fail("key '" + keyPath(key) + "' must be a list of numbers, entry " +
           std::to_string(i) + " is " + describe(v[i]));
    out.push_back(v[i].get<double>());
  }
  return out;
}

std::vector<int64_t> JsonObject::integers(const std::string &key) const {
  const json &v = at(key);
  if (!v.is_array())
    return {integer(key)};
  std::vector<int64_t> out;
  for (size_t i = 0; i < v.size(); ++i)
    out.push_back(toInteger(key + "[" + std::to_string(i) + "]", v[i]));
  return out;
}

int64_t JsonObject::integerIn(const std::string &key, int64_t lo,
                              int64_t hi) const {
  int64_t v = integer(key);
  if (v < lo || v > hi)
    fail(keyPath(key) + " " + std::to_string(v) + " is out of range [" +
         std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return v;
}

int64_t JsonObject::integerIn(const std::string &key, int64_t fallback,
                              int64_t lo, int64_t hi) const {
  return has(key) ? integerIn(key, lo, hi) : fallback;
}

} // namespace decc
