//! Speech to text: whisper.cpp through whisper-rs.
