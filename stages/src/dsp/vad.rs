//! Voice activity detection (Silero VAD through ONNX Runtime).
