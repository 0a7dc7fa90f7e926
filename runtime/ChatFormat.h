//===- ChatFormat.h - a model's own chat prompt format ----------*- C++ -*-===//
//
// The chat formats decc knows, recognized from the `chat_template` of the
// model folder's tokenizer_config.json: ChatML (`<|im_start|>role ...
// <|im_end|>`: InternLM2's after BOS, Qwen2.5's with its default system
// turn) and Phi-3's (`<|user|>` ...
// `<|end|>`). The lit tests render the real templates with Jinja and compare.
//
//===----------------------------------------------------------------------===//

#ifndef DECC_RUNTIME_CHATFORMAT_H
#define DECC_RUNTIME_CHATFORMAT_H

#include <string>
#include <vector>

namespace decc::rt {

struct ChatMessage {
  std::string role; // system, user or assistant
  std::string content;
};

class ChatFormat {
public:
  /// The format of model folder `dir`; throws Error if its tokenizer
  /// config has no chat template or one decc does not know.
  static ChatFormat load(const std::string &dir);

  /// The prompt text of `messages`, ending with the assistant's turn.
  std::string render(const std::vector<ChatMessage> &messages) const;

  const std::string &name() const { return kind; }

private:
  std::string kind;          // "chatml" or "phi3"
  std::string bosPrefix;     // the text of BOS when the template starts with it
  std::string defaultSystem; // Qwen2.5's system turn when none is given
};

} // namespace decc::rt

#endif // DECC_RUNTIME_CHATFORMAT_H
