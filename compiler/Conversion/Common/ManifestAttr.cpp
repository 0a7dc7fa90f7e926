//===- ManifestAttr.cpp - the manifest as an attribute of the IR ----------===//
//
// The attribute is the manifest's JSON mapped node for node (objects to
// dictionaries, arrays to arrays, integers to i64, numbers to f64, strings,
// booleans), so contract/ManifestJson.cpp stays the only code that knows
// the fields.
//
//===----------------------------------------------------------------------===//

#include "compiler/Conversion/Common/ManifestAttr.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"

#include "llvm/Support/ErrorHandling.h"
#include "llvm/Support/JSON.h"

using namespace mlir;

namespace decc {

namespace {

Attribute toAttr(Builder &b, const llvm::json::Value &v) {
  if (const llvm::json::Object *o = v.getAsObject()) {
    SmallVector<NamedAttribute> entries;
    for (const auto &[key, value] : *o)
      entries.push_back(b.getNamedAttr(key.str(), toAttr(b, value)));
    return b.getDictionaryAttr(entries);
  }
  if (const llvm::json::Array *a = v.getAsArray()) {
    SmallVector<Attribute> elements;
    for (const llvm::json::Value &e : *a)
      elements.push_back(toAttr(b, e));
    return b.getArrayAttr(elements);
  }
  if (std::optional<bool> flag = v.getAsBoolean())
    return b.getBoolAttr(*flag);
  if (std::optional<int64_t> i = v.getAsInteger())
    return b.getI64IntegerAttr(*i);
  if (std::optional<double> d = v.getAsNumber())
    return b.getF64FloatAttr(*d);
  if (std::optional<llvm::StringRef> s = v.getAsString())
    return b.getStringAttr(*s);
  return b.getUnitAttr(); // null
}

std::optional<llvm::json::Value> toJson(Attribute a) {
  if (auto dict = dyn_cast<DictionaryAttr>(a)) {
    llvm::json::Object o;
    for (NamedAttribute entry : dict) {
      std::optional<llvm::json::Value> v = toJson(entry.getValue());
      if (!v)
        return std::nullopt;
      o[entry.getName().getValue()] = std::move(*v);
    }
    return llvm::json::Value(std::move(o));
  }
  if (auto array = dyn_cast<ArrayAttr>(a)) {
    llvm::json::Array out;
    for (Attribute e : array) {
      std::optional<llvm::json::Value> v = toJson(e);
      if (!v)
        return std::nullopt;
      out.push_back(std::move(*v));
    }
    return llvm::json::Value(std::move(out));
  }
  if (auto flag = dyn_cast<BoolAttr>(a))
    return llvm::json::Value(flag.getValue());
  if (auto i = dyn_cast<IntegerAttr>(a))
    return llvm::json::Value(i.getValue().getSExtValue());
  if (auto f = dyn_cast<FloatAttr>(a))
    return llvm::json::Value(f.getValueAsDouble());
  if (auto s = dyn_cast<StringAttr>(a))
    return llvm::json::Value(s.getValue().str());
  if (isa<UnitAttr>(a))
    return llvm::json::Value(nullptr);
  return std::nullopt;
}

} // namespace

void setManifestAttr(ModuleOp module, const contract::Manifest &manifest) {
  llvm::Expected<llvm::json::Value> json =
      llvm::json::parse(contract::toJson(manifest));
  if (!json)
    llvm::report_fatal_error("the manifest writer wrote invalid JSON: " +
                             llvm::Twine(llvm::toString(json.takeError())));
  Builder b(module.getContext());
  module->setAttr(kManifestAttrName, toAttr(b, *json));
}

FailureOr<contract::Manifest> getManifestAttr(ModuleOp module) {
  Attribute attr = module->getAttr(kManifestAttrName);
  if (!attr)
    return module.emitError()
           << "the module has no " << kManifestAttrName << " (was it lowered?)";
  std::optional<llvm::json::Value> json = toJson(attr);
  if (!json)
    return module.emitError()
           << kManifestAttrName << " holds an attribute JSON cannot hold";
  std::string text;
  llvm::raw_string_ostream(text) << *json;
  contract::Manifest manifest;
  std::string error;
  if (!contract::parseManifest(text, manifest, error))
    return module.emitError() << kManifestAttrName << ": " << error;
  return manifest;
}

} // namespace decc
