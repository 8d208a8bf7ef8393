//! The tokenizer and chat template, both built from a GGUF file's metadata.
//!
//! candle's `TokenizerFromGguf` matches the official tokenizer for Qwen2 (`pre = qwen2`). For
//! GGUF files whose `tokenizer.ggml.pre` it does not know (SmolLM2 says `smollm`) it falls back
//! to GPT-2's pre-tokenizer, which adds a space in front of every piece (so `user` after
//! `<|im_start|>` becomes ` user`) and merges digits. SmolLM2's own tokenizer is byte-level
//! BPE with no prefix space and each digit on its own: that is what we build for it.

use std::path::Path;

use candle_core::quantized::gguf_file;
use candle_core::quantized::tokenizer::TokenizerFromGguf;
use tokenizers::Tokenizer;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;

use super::RewriteError;

/// `tokenizer.ggml.pre` values candle's builder handles itself.
const CANDLE_KNOWN_PRE: &[&str] = &["qwen2", "smaug-bpe", "lfm2", "llama3"];

/// One message of a chat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// A tokenizer that also renders ChatML conversations (the template both supported models use).
pub struct ChatTokenizer {
    inner: Tokenizer,
    im_start: u32,
    im_end: u32,
    newline: Vec<u32>,
    /// Tokens that end the answer.
    stop: Vec<u32>,
}

fn bad(path: &Path, reason: impl Into<String>) -> RewriteError {
    RewriteError::BadModel { path: path.to_path_buf(), reason: reason.into() }
}

impl ChatTokenizer {
    pub fn from_gguf(ct: &gguf_file::Content, path: &Path) -> Result<Self, RewriteError> {
        let template = ct
            .metadata
            .get("tokenizer.chat_template")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .ok_or_else(|| bad(path, "no chat template in the metadata (`tokenizer.chat_template`); use an instruction-tuned GGUF"))?;
        if !template.contains("<|im_start|>") || !template.contains("<|im_end|>") {
            return Err(bad(path, "its chat template is not ChatML (`<|im_start|>`); only ChatML models are supported"));
        }
        let mut inner = <Tokenizer as TokenizerFromGguf>::from_gguf(ct)
            .map_err(|e| bad(path, format!("cannot build its tokenizer ({})", super::model::first_line(&e))))?;
        let pre = ct.metadata.get("tokenizer.ggml.pre").and_then(|v| v.to_string().ok()).cloned().unwrap_or_default();
        if !CANDLE_KNOWN_PRE.contains(&pre.as_str()) {
            tracing::debug!(pre = %pre, "byte-level BPE tokenizer without prefix space, digits split");
            inner.with_pre_tokenizer(Some(Sequence::new(vec![
                Digits::new(true).into(),
                ByteLevel::new(false, true, true).into(),
            ])));
            inner.with_decoder(Some(ByteLevelDecoder::new(false, true, true)));
            inner.with_post_processor(None::<tokenizers::processors::PostProcessorWrapper>);
        }
        let id = |t: &str| inner.token_to_id(t).ok_or_else(|| bad(path, format!("vocabulary lacks `{t}`")));
        let im_start = id("<|im_start|>")?;
        let im_end = id("<|im_end|>")?;
        let mut stop = vec![im_end];
        if let Some(eos) = ct.metadata.get("tokenizer.ggml.eos_token_id").and_then(|v| v.to_u32().ok()) {
            stop.push(eos);
        }
        if let Some(eot) = inner.token_to_id("<|endoftext|>") {
            stop.push(eot);
        }
        let mut this = Self { inner, im_start, im_end, newline: Vec::new(), stop };
        this.newline = this.encode("\n").map_err(|e| bad(path, e.to_string()))?;
        Ok(this)
    }

    /// Token ids of plain text (special-token markers in it are defused first).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, RewriteError> {
        let text = text.replace("<|", "< |");
        let enc = self.inner.encode(text.as_str(), false).map_err(|e| RewriteError::Tokenizer(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text of `ids`, special tokens left out.
    pub fn decode(&self, ids: &[u32]) -> Result<String, RewriteError> {
        self.inner.decode(ids, true).map_err(|e| RewriteError::Tokenizer(e.to_string()))
    }

    pub fn is_stop(&self, id: u32) -> bool {
        self.stop.contains(&id)
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// `<|im_start|>role\ncontent<|im_end|>\n`
    pub fn message(&self, role: Role, content: &str) -> Result<Vec<u32>, RewriteError> {
        let mut out = vec![self.im_start];
        out.extend(self.encode(&format!("{}\n{}", role.name(), content))?);
        out.push(self.im_end);
        out.extend_from_slice(&self.newline);
        Ok(out)
    }

    /// `<|im_start|>assistant\n`: where the model's answer begins.
    pub fn assistant_start(&self) -> Result<Vec<u32>, RewriteError> {
        let mut out = vec![self.im_start];
        out.extend(self.encode("assistant\n")?);
        Ok(out)
    }
}
