//! GGUF re-quantization on the real LLMs: slow quant types are gone, the metadata is the
//! same, and the model still says the same thing (greedy tokens) as the original.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use candle_core::quantized::gguf_file::Content;
use candle_core::quantized::tokenizer::TokenizerFromGguf;
use candle_core::quantized::GgmlDType;
use candle_core::{Device, Tensor};
use candle_transformers::models::{quantized_llama, quantized_qwen2};
use revoice_stages::models::{self, requant::needs_requant};

const PROMPT: &str = "<|im_start|>system\nYou rewrite text politely.<|im_end|>\n<|im_start|>user\nRewrite: give me the report now.<|im_end|>\n<|im_start|>assistant\n";

fn read(path: &Path) -> (Content, BufReader<File>) {
    let mut r = BufReader::new(File::open(path).unwrap());
    let c = Content::read(&mut r).unwrap();
    (c, r)
}

fn type_counts(c: &Content) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for t in c.tensor_infos.values() {
        *m.entry(format!("{:?}", t.ggml_dtype)).or_insert(0) += 1;
    }
    m
}

fn same_metadata(a: &Content, b: &Content) {
    let keys = |c: &Content| {
        let mut k: Vec<String> = c.metadata.keys().filter(|k| *k != "general.alignment").cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(a), keys(b));
    for k in keys(a) {
        assert_eq!(format!("{:?}", a.metadata[&k]), format!("{:?}", b.metadata[&k]), "metadata {k}");
    }
    assert_eq!(a.tensor_infos.len(), b.tensor_infos.len());
    for (name, t) in &a.tensor_infos {
        assert_eq!(t.shape, b.tensor_infos[name].shape, "{name}");
    }
}

enum Llm {
    Qwen2(quantized_qwen2::ModelWeights),
    Llama(quantized_llama::ModelWeights),
}

impl Llm {
    fn forward(&mut self, x: &Tensor, pos: usize) -> Tensor {
        match self {
            Llm::Qwen2(m) => m.forward(x, pos).unwrap(),
            Llm::Llama(m) => m.forward(x, pos).unwrap(),
        }
    }
}

/// Greedy continuation of PROMPT: `n` token ids.
fn greedy(path: &Path, n: usize) -> Vec<u32> {
    let dev = Device::Cpu;
    let (content, mut reader) = read(path);
    let tokenizer = tokenizers::Tokenizer::from_gguf(&content).unwrap();
    let arch = content.metadata["general.architecture"].to_string().unwrap().clone();
    let mut model = match arch.as_str() {
        "qwen2" => Llm::Qwen2(quantized_qwen2::ModelWeights::from_gguf(content, &mut reader, &dev).unwrap()),
        "llama" => Llm::Llama(quantized_llama::ModelWeights::from_gguf(content, &mut reader, &dev).unwrap()),
        other => panic!("unexpected architecture {other}"),
    };
    let prompt = tokenizer.encode(PROMPT, false).unwrap().get_ids().to_vec();
    let mut out = Vec::new();
    let mut input = prompt.clone();
    let mut pos = 0;
    for _ in 0..n {
        let x = Tensor::new(input.as_slice(), &dev).unwrap().unsqueeze(0).unwrap();
        let logits = model.forward(&x, pos).squeeze(0).unwrap().to_dtype(candle_core::DType::F32).unwrap();
        let next = logits.argmax(0).unwrap().to_scalar::<u32>().unwrap();
        pos += input.len();
        out.push(next);
        input = vec![next];
    }
    eprintln!("{}: {:?} = {:?}", path.display(), out, tokenizer.decode(&out, false).unwrap());
    out
}

fn check_pair(original: &str, fast: &str, slow_type: GgmlDType) {
    let orig_path = models::ensure(original).unwrap();
    let fast_path = models::ensure(fast).unwrap();
    let (a, _) = read(&orig_path);
    let (b, _) = read(&fast_path);
    let (ca, cb) = (type_counts(&a), type_counts(&b));
    eprintln!("{original}: {ca:?}\n{fast}: {cb:?}");
    assert!(ca.contains_key(&format!("{slow_type:?}")), "the original has {slow_type:?} tensors");
    assert!(b.tensor_infos.values().all(|t| !needs_requant(t.ggml_dtype)), "{cb:?}");
    same_metadata(&a, &b);

    let n = 10;
    let (ta, tb) = (greedy(&orig_path, n), greedy(&fast_path, n));
    assert_eq!(ta[..8], tb[..8], "first 8 greedy tokens differ");
}

#[test]
fn requantized_qwen_says_what_the_original_says() {
    check_pair("qwen2.5-coder-0.5b-instruct-original", "qwen2.5-coder-0.5b-instruct", GgmlDType::Q5_0);
}

#[test]
fn requantized_smollm2_says_what_the_original_says() {
    check_pair("smollm2-135m-instruct-original", "smollm2-135m-instruct", GgmlDType::Q4_1);
}
