//===- ChatFormat.cpp - a model's own chat prompt format ------------------===//

#include "runtime/ChatFormat.h"

#include "runtime/Error.h"

#include <nlohmann/json.hpp>

#include <fstream>

namespace decc::rt {

ChatFormat ChatFormat::load(const std::string &dir) {
  std::string path = dir + "/tokenizer_config.json";
  std::ifstream in(path);
  if (!in)
    throw Error("--chat needs the model's chat template; " + path +
                " does not exist");
  nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    throw Error(path + ": not valid JSON");
  if (!j.contains("chat_template") || !j["chat_template"].is_string())
    throw Error(path + " has no chat_template");
  std::string tpl = j["chat_template"].get<std::string>();
  ChatFormat f;
  auto has = [&](const char *s) { return tpl.find(s) != std::string::npos; };
  if (has("<|im_start|>") && has("<|im_end|>")) {
    f.kind = "chatml";
    // Qwen2.5 opens with a system turn of its own when the conversation
    // has none: the template spells it as '<|im_start|>system\n...<|im_end|>'.
    const std::string open = "'<|im_start|>system\\n";
    size_t at = tpl.find(open);
    while (at != std::string::npos) {
      size_t begin = at + open.size();
      size_t end = tpl.find("<|im_end|>", begin);
      if (end != std::string::npos && tpl.compare(begin, 1, "'") != 0) {
        f.defaultSystem = tpl.substr(begin, end - begin);
        break;
      }
      at = tpl.find(open, begin);
    }
    if (tpl.rfind("{{ bos_token }}", 0) == 0) {
      // A string, or an added token's object with its text in "content"
      // (anything else used to escape as nlohmann's type_error: found by
      // decc-fuzz-chat-format).
      const nlohmann::json &b = j.contains("bos_token") ? j["bos_token"]
                                                        : nlohmann::json();
      if (b.is_string())
        f.bosPrefix = b.get<std::string>();
      else if (b.is_object() && b.contains("content") &&
               b["content"].is_string())
        f.bosPrefix = b["content"].get<std::string>();
      else
        throw Error(path + ": the chat template starts with {{ bos_token }} "
                           "but bos_token is not a string (nor an object "
                           "with a string 'content')");
    }
  } else if (has("<|user|>") && has("<|assistant|>") && has("<|end|>")) {
    f.kind = "phi3";
  } else {
    throw Error("the chat template in " + path +
                " is not one decc knows (ChatML as InternLM2 and Qwen2 write "
                "it, or Phi-3's)");
  }
  return f;
}

std::string ChatFormat::render(const std::vector<ChatMessage> &messages) const {
  std::string out = bosPrefix;
  if (!defaultSystem.empty() &&
      (messages.empty() || messages.front().role != "system"))
    out += "<|im_start|>system\n" + defaultSystem + "<|im_end|>\n";
  for (const ChatMessage &m : messages) {
    if (kind == "chatml")
      out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
    else if (m.role == "system" || m.role == "user" || m.role == "assistant")
      out += "<|" + m.role + "|>\n" + m.content + "<|end|>\n";
  }
  out += kind == "chatml" ? "<|im_start|>assistant\n" : "<|assistant|>\n";
  return out;
}

} // namespace decc::rt
