//! Text to speech: Piper voices through ONNX Runtime, espeak-ng phonemes and voice, voice profiles.
