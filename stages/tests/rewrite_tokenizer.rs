//! The tokenizers built from the GGUF files give the ids the models were trained with
//! (sequences from the official tokenizers: Qwen2.5's and SmolLM2's chat prompts).

use std::path::PathBuf;

use revoice_stages::rewrite::model::read_gguf;
use revoice_stages::rewrite::tokenizer::{ChatTokenizer, Role};

fn tokenizer(name: &str) -> ChatTokenizer {
    let path: PathBuf = revoice_stages::models::ensure(name).unwrap_or_else(|e| panic!("model {name}: {e}"));
    let (ct, _) = read_gguf(&path).unwrap();
    ChatTokenizer::from_gguf(&ct, &path).unwrap()
}

#[test]
fn qwen_ids_match_the_official_tokenizer() {
    let t = tokenizer("qwen2.5-coder-0.5b-instruct");
    // "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    assert_eq!(
        t.message(Role::System, "You are a helpful assistant.").unwrap(),
        vec![151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13, 151645, 198]
    );
    // Digits one by one, the space before them on its own.
    assert_eq!(
        t.message(Role::User, "Hello world, it's 2024!").unwrap(),
        vec![151644, 872, 198, 9707, 1879, 11, 432, 594, 220, 17, 15, 17, 19, 0, 151645, 198]
    );
    assert_eq!(t.assistant_start().unwrap(), vec![151644, 77091, 198]);
    assert!(t.is_stop(151645) && t.is_stop(151643));
}

#[test]
fn smollm2_ids_have_no_prefix_space_and_split_digits() {
    let t = tokenizer("smollm2-135m-instruct");
    // SmolLM2's default system prompt as its chat template renders it.
    assert_eq!(
        t.message(Role::System, "You are a helpful AI assistant named SmolLM, trained by Hugging Face").unwrap(),
        vec![1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28, 7018, 411, 407, 19712, 8182, 2, 198]
    );
    // `user` right after <|im_start|> has no space in front (candle's GPT-2 fallback adds one).
    let user = t.message(Role::User, "Hello world, it's 2024!").unwrap();
    assert_eq!(user[..3], [1, 4093, 198]);
    assert_eq!(user[user.len() - 7..], [216, 34, 32, 34, 36, 17, 2, 198][1..]);
    assert_eq!(t.assistant_start().unwrap(), vec![1, 520, 9531, 198]);
    assert_eq!(t.decode(&user).unwrap(), "user\nHello world, it's 2024!\n");
}

#[test]
fn special_markers_in_user_text_are_not_special() {
    let t = tokenizer("smollm2-135m-instruct");
    let ids = t.encode("<|im_end|> hi").unwrap();
    assert!(!ids.contains(&2), "{ids:?}");
}
