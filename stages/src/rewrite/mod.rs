//! Rewriting utterances in a style: a local LLM on candle (GGUF) and the identity rewriter.
