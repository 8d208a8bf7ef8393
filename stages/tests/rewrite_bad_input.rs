//! Bad input: a GGUF of an unsupported architecture, truncated GGUF files, an empty line, a
//! 2,000-word line; and a stop request.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Instant;

use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use candle_core::{Device, Tensor};
use revoice_pipeline::{EngineError, RewriteRequest, Rewriter, StopCheck};
use revoice_stages::rewrite::{LlmConfig, LlmRewriter, RewriteError, Style};

fn model(name: &str) -> PathBuf {
    revoice_stages::models::ensure(name).unwrap_or_else(|e| panic!("model {name}: {e}"))
}

fn load(path: PathBuf) -> Result<LlmRewriter, RewriteError> {
    LlmRewriter::load(LlmConfig::new(path, Style::preset("formal").unwrap()))
}

#[test]
fn unsupported_architecture_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny-gpt2.gguf");
    let t = QTensor::quantize(&Tensor::zeros((4, 32), candle_core::DType::F32, &Device::Cpu).unwrap(), GgmlDType::F32).unwrap();
    let arch = gguf_file::Value::String("gpt2".into());
    let mut f = std::fs::File::create(&path).unwrap();
    gguf_file::write(&mut f, &[("general.architecture", &arch)], &[("token_embd.weight", &t)]).unwrap();
    drop(f);
    let err = load(path.clone()).err().expect("a gpt2 file must be refused");
    let msg = err.to_string();
    assert!(matches!(err, RewriteError::UnsupportedArchitecture { .. }), "{msg}");
    assert!(msg.contains("gpt2") && msg.contains("tiny-gpt2.gguf") && msg.contains("qwen2"), "{msg}");
}

#[test]
fn truncated_files_are_refused_clearly() {
    let source = model("smollm2-135m-instruct");
    let dir = tempfile::tempdir().unwrap();
    for keep in [100usize, 20 << 20] {
        let path = dir.path().join(format!("cut-{keep}.gguf"));
        let mut head = vec![0u8; keep];
        std::fs::File::open(&source).unwrap().read_exact(&mut head).unwrap();
        std::fs::File::create(&path).unwrap().write_all(&head).unwrap();
        let err = load(path).err().expect("a truncated file must be refused");
        let msg = err.to_string();
        assert!(matches!(err, RewriteError::BadModel { .. }), "{msg}");
        assert!(msg.contains(&format!("cut-{keep}.gguf")) && msg.contains("truncated"), "{msg}");
        assert!(!msg.contains('\n'), "one line, no backtrace: {msg}");
    }
    let err = load(dir.path().join("absent.gguf")).err().unwrap();
    assert!(matches!(err, RewriteError::Io { .. }), "{err}");
}

#[test]
fn empty_line_long_line_and_stop() {
    let mut rw = load(model("smollm2-135m-instruct")).unwrap();
    let never = StopCheck::never();
    let empty = RewriteRequest { text: "   ", context: &[], budget: None };
    assert!(matches!(rw.rewrite(&empty, &mut |_| {}, &never), Err(EngineError::BadInput(_))));

    // 2,000 words: rewritten in pieces of at most 40 words, every number kept.
    let sentence = "On day 7 the crew from Lagos did not stop working until the pump was fixed. ";
    let words_each = sentence.split_whitespace().count();
    let text = sentence.repeat(2000 / words_each + 1);
    let started = Instant::now();
    let mut clauses = 0;
    let req = RewriteRequest { text: &text, context: &[], budget: None };
    let out = rw.rewrite(&req, &mut |_| clauses += 1, &never).unwrap();
    eprintln!("2,000 words in {:.1} s, {clauses} clauses", started.elapsed().as_secs_f32());
    let sevens = out.matches('7').count();
    assert_eq!(sevens, text.matches('7').count(), "a number was lost: {out}");
    assert!(out.split_whitespace().count() > 1000, "{out}");

    // A stop request ends the work with Stopped.
    let cancel = tokio_util::sync::CancellationToken::new();
    cancel.cancel();
    let stop = StopCheck::with_cancel(cancel);
    let req = RewriteRequest { text: "Please tell Omar the shop opens at 8.", context: &[], budget: None };
    assert!(matches!(rw.rewrite(&req, &mut |_| {}, &stop), Err(EngineError::Stopped)));
}
