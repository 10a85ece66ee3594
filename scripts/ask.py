#!/usr/bin/env python3
"""Ask a compiled model one question through MLCEngine, as the seed guide's last step does.

usage: ask.py MODEL_DIR MODEL_LIB QUESTION
"""
import sys

from llmc import MLCEngine


def main() -> None:
    model, lib, question = sys.argv[1:4]
    engine = MLCEngine(model=model, model_lib=lib)
    print(f"user: {question}")
    print("assistant: ", end="", flush=True)
    for chunk in engine.chat.completions.create(messages=[{"role": "user", "content": question}], stream=True,
                                                temperature=0, max_tokens=64):
        print(chunk.choices[0].delta.content or "", end="", flush=True)
    print()


if __name__ == "__main__":
    main()
