"""make_hostile.py OUT: the inputs fuzzing and an attacker's review found
(issue 12), one file each, for the fuzz harnesses' regression run."""
import json
import os
import struct
import sys

out = sys.argv[1]
DEEP = 100000


def put(kind, name, data):
    os.makedirs(os.path.join(out, kind), exist_ok=True)
    with open(os.path.join(out, kind, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def safetensors(header_text, body=b""):
    text = header_text.encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + body


llama = {"model_type": "llama", "hidden_size": 128, "intermediate_size": 344,
         "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
         "vocab_size": 512, "max_position_embeddings": 256}
put("config", "deep-type.json", '{"model_type": ' + "[" * DEEP + "]" * DEEP + "}")
put("config", "theta-overflow.json", json.dumps(llama)[:-1] + ', "rope_theta": 1e400}')
put("config", "yarn-mscale.json", json.dumps(dict(llama, rope_scaling={
    "rope_type": "yarn", "factor": 4.0, "mscale": -20, "mscale_all_dim": 1})))
put("config", "heads-huge.json", json.dumps(dict(llama, num_attention_heads=2**62)))

f32 = {"dtype": "F32", "shape": [1]}
put("safetensors", "duplicate", safetensors(
    '{"a": %s, "a": %s}' % (json.dumps(dict(f32, data_offsets=[0, 4])),
                            json.dumps(dict(f32, data_offsets=[4, 8]))), bytes(8)))
put("safetensors", "overlap", safetensors(json.dumps({
    "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
    "b": dict(f32, data_offsets=[4, 8])}), bytes(8)))
put("safetensors", "deep-shape", safetensors(
    '{"a": {"dtype": "F32", "shape": ' + "[" * DEEP + "]" * DEEP +
    ', "data_offsets": [0, 4]}}', bytes(4)))
put("safetensors", "unaligned", safetensors(json.dumps({"a": dict(f32, data_offsets=[2, 6])}), bytes(8)))
put("safetensors", "lying-length", struct.pack("<Q", 2**64 - 1) + b"{}")

bpe = {"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": []}}
put("tokenizer", "deep-pre-tokenizer.json",
    json.dumps(bpe)[:-1] + ', "pre_tokenizer": ' + "[" * DEEP + "]" * DEEP + "}")
put("tokenizer", "vocab-array.json", json.dumps({"model": {"type": "BPE", "vocab": [], "merges": []}}))
put("tokenizer", "vocab-id.json", json.dumps({"model": {"type": "BPE", "vocab": {"a": 2**40}, "merges": []}}))

put("prompt", "nul.txt", b"ab\x00cd")
put("prompt", "bad-utf8.txt", b"Once \xff upon")
put("prompt", "long-word.txt", "abcdefghij" * 2000)

# SentencePiece models: truncated and garbled protobufs.
put("sentencepiece", "empty.model", b"")
put("sentencepiece", "garbage.model", b"\x0a\xff\xff\xff\xff\x0f" + b"\x00" * 64)
put("sentencepiece", "deep-length.model", b"\x0a" + b"\x80" * 9 + b"\x01")

# Chat templates: no template, a template of the wrong type, null tokens.
put("chat", "no-template.json", "{}")
put("chat", "template-number.json", '{"chat_template": 5}')
put("chat", "bos-null.json",
    '{"chat_template": "{{ bos_token }}<|im_start|>", "bos_token": null}')
put("chat", "deep.json", '{"chat_template": ' + "[" * DEEP + "]" * DEEP + "}")
put("chat", "not-json.json", '{"chat_template": "<|im_start|>')
# Found by decc-fuzz-chat-format: a ChatML template opening with the BOS
# token, and a bos_token that is neither a string nor an object.
chatml = "{{ bos_token }}{% for m in messages %}<|im_start|>{{ m.role }}<|im_end|>{% endfor %}"
for name, bos in (("bos-number", 5), ("bos-null", None), ("bos-array", [1]),
                  ("bos-content-number", {"content": 7})):
    put("chat", name + "-chatml.json",
        json.dumps({"chat_template": chatml, "bos_token": bos}))


def args(*words):
    return b"\0".join(w.encode() for w in words)


# Command lines (NUL-separated): the options issue 12 found.
put("args", "threads-huge", args("--threads", "100000"))
put("args", "threads-wrap", args("--threads", "4294967297"))
put("args", "temperature-nan", args("--temperature", "nan"))
put("args", "context-negative", args("--max-context", "-5"))
put("args", "new-tokens-max", args("--max-new-tokens", "9223372036854775807"))
put("args", "prompt-ids-bad", args("--prompt-ids", "1,,2,-3,99999999999999999999"))
put("args", "sweep", args("--benchmark-prefill", "0,128", "--benchmark-decode", "512,"))
put("args", "no-value", args("--weights"))
# Found by decc-fuzz-command-line: a switch with an inline value (the usage
# printed and the process exited for --help=...).
put("args", "help-value", args("--help=\xff" + "h" * 40))
put("args", "chat-value", args("--chat=no", "--ignore-eos=false"))
